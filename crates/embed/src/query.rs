//! The question encoder: all-MiniLM-L6-v2 again, its 36 weight matrices held as 8-bit blocks
//! (GGML `q8_0`: 32 weights share one scale) and multiplied by candle's quantised kernels.
//!
//! Why a second copy: a search waits for its question's vector. A question is a dozen word
//! pieces, so the f32 encoder spends its time streaming ~42 MB of weights through the cache for
//! very little arithmetic each; at a quarter of the bytes, and with integer dot products, the same
//! question is encoded two to three times faster. Documents keep the f32 encoder: they are long,
//! batched and not waited on, and their stored vectors keep full precision. The two encoders'
//! vectors for one text agree to a cosine of 0.997 or more (measured; the tests ask for 0.98), so
//! questions still land beside the passages that answer them. The copy costs about 60 MB of
//! memory: the f32 word-embedding table is held twice, beside the 8-bit matrices.

use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{Module, Tensor};
use candle_nn::{LayerNorm, VarBuilder};
use candle_transformers::models::bert::{Config, HiddenAct};

/// One encoder layer; the query, key and value projections are fused into one matrix so each
/// layer runs four matrix products instead of six.
struct Layer {
    qkv: Linear8,
    attention_out: Linear8,
    attention_norm: LayerNorm,
    up: Linear8,
    down: Linear8,
    output_norm: LayerNorm,
}

/// `x·Wᵀ + b` with `W` quantised.
struct Linear8 {
    weight: QMatMul,
    bias: Tensor,
    /// Zero columns appended to the input, see [`padded_width`].
    pad: usize,
}

/// candle multiplies 8-bit blocks with VNNI (AVX-512 VNNI: one instruction, 64 byte products;
/// AVX-VNNI: 32) only when the inner dimension is a multiple of 256; otherwise it takes a
/// generic path about five times slower per product (measured on this model). MiniLM's
/// 384-wide projections are therefore padded with zero columns to 512: a third more products,
/// each far cheaper, and exact (zero weights quantise to zero). Without VNNI the generic path is
/// all there is, and padding would only add work.
fn padded_width(width: usize) -> usize {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512vnni")
        || std::arch::is_x86_feature_detected!("avxvnni")
    {
        return width.next_multiple_of(256);
    }
    width
}

impl Linear8 {
    fn new(weight: &Tensor, bias: Tensor) -> candle_core::Result<Self> {
        let width = weight.dim(1)?;
        let pad = padded_width(width) - width;
        let weight = weight.pad_with_zeros(1, 0, pad)?;
        let weight = QMatMul::from_qtensor(QTensor::quantize(&weight, GgmlDType::Q8_0)?)?;
        Ok(Self { weight, bias, pad })
    }

    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let product = if self.pad == 0 {
            self.weight.forward(x)?
        } else {
            self.weight.forward(&x.pad_with_zeros(1, 0, self.pad)?)?
        };
        product.broadcast_add(&self.bias)
    }
}

pub(crate) struct QueryEncoder {
    word_embeddings: Tensor,
    position_embeddings: Tensor,
    /// Every input is one segment, so only the first token-type row is ever added.
    token_type: Tensor,
    embeddings_norm: LayerNorm,
    layers: Vec<Layer>,
    heads: usize,
    head_size: usize,
}

impl QueryEncoder {
    /// Builds the quantised copy from the same safetensors the f32 encoder was loaded from.
    pub(crate) fn load(vb: &VarBuilder, config: &Config) -> candle_core::Result<Self> {
        if !matches!(config.hidden_act, HiddenAct::Gelu) {
            candle_core::bail!("the question encoder expects GELU (erf) activations");
        }
        // Checkpoints saved from a `BertForX` head nest the encoder under `bert.`.
        let vb = if vb.contains_tensor("embeddings.word_embeddings.weight") {
            vb.clone()
        } else {
            vb.pp("bert")
        };
        let hidden = config.hidden_size;
        let inner = config.intermediate_size;
        let eps = config.layer_norm_eps;
        let layer_norm = |vb: VarBuilder| -> candle_core::Result<LayerNorm> {
            Ok(LayerNorm::new(
                vb.get(hidden, "weight")?,
                vb.get(hidden, "bias")?,
                eps,
            ))
        };
        let linear = |vb: VarBuilder, rows: usize, cols: usize| -> candle_core::Result<Linear8> {
            Linear8::new(&vb.get((rows, cols), "weight")?, vb.get(rows, "bias")?)
        };

        let e = vb.pp("embeddings");
        let word_embeddings = e.get((config.vocab_size, hidden), "word_embeddings.weight")?;
        let position_embeddings = e.get(
            (config.max_position_embeddings, hidden),
            "position_embeddings.weight",
        )?;
        let token_type = e
            .get(
                (config.type_vocab_size, hidden),
                "token_type_embeddings.weight",
            )?
            .get(0)?;
        let embeddings_norm = layer_norm(e.pp("LayerNorm"))?;

        let mut layers = Vec::with_capacity(config.num_hidden_layers);
        for index in 0..config.num_hidden_layers {
            let l = vb.pp(format!("encoder.layer.{index}"));
            let a = l.pp("attention.self");
            let part = |name: &str| -> candle_core::Result<(Tensor, Tensor)> {
                Ok((
                    a.get((hidden, hidden), &format!("{name}.weight"))?,
                    a.get(hidden, &format!("{name}.bias"))?,
                ))
            };
            let (q, qb) = part("query")?;
            let (k, kb) = part("key")?;
            let (v, vb_) = part("value")?;
            let qkv = Linear8::new(
                &Tensor::cat(&[q, k, v], 0)?,
                Tensor::cat(&[qb, kb, vb_], 0)?,
            )?;
            layers.push(Layer {
                qkv,
                attention_out: linear(l.pp("attention.output.dense"), hidden, hidden)?,
                attention_norm: layer_norm(l.pp("attention.output.LayerNorm"))?,
                up: linear(l.pp("intermediate.dense"), inner, hidden)?,
                down: linear(l.pp("output.dense"), hidden, inner)?,
                output_norm: layer_norm(l.pp("output.LayerNorm"))?,
            });
        }
        Ok(Self {
            word_embeddings,
            position_embeddings,
            token_type,
            embeddings_norm,
            layers,
            heads: config.num_attention_heads,
            head_size: hidden / config.num_attention_heads,
        })
    }

    /// The mean-pooled, unit-length vector of one tokenised input (no padding, so no mask).
    pub(crate) fn encode(&self, ids: &[u32]) -> candle_core::Result<Vec<f32>> {
        let tokens = ids.len();
        let device = self.word_embeddings.device();
        let ids = Tensor::new(ids, device)?;
        let x = self
            .word_embeddings
            .index_select(&ids, 0)?
            .add(&self.position_embeddings.narrow(0, 0, tokens)?)?
            .broadcast_add(&self.token_type)?;
        let mut x = self.embeddings_norm.forward(&x)?;
        let hidden = self.heads * self.head_size;
        let scale = 1.0 / (self.head_size as f64).sqrt();
        for layer in &self.layers {
            let qkv = layer.qkv.forward(&x)?;
            // [tokens, hidden] → [heads, tokens, head_size]
            let split = |i: usize| -> candle_core::Result<Tensor> {
                qkv.narrow(1, i * hidden, hidden)?
                    .reshape((tokens, self.heads, self.head_size))?
                    .transpose(0, 1)?
                    .contiguous()
            };
            let (q, k, v) = (split(0)?, split(1)?, split(2)?);
            let scores = (q.matmul(&k.t()?)? * scale)?;
            let probs = candle_nn::ops::softmax_last_dim(&scores)?;
            let context = probs
                .matmul(&v)?
                .transpose(0, 1)?
                .contiguous()?
                .reshape((tokens, hidden))?;
            let attended = layer
                .attention_norm
                .forward(&(layer.attention_out.forward(&context)? + &x)?)?;
            let inner = layer.up.forward(&attended)?.gelu_erf()?;
            x = layer
                .output_norm
                .forward(&(layer.down.forward(&inner)? + &attended)?)?;
        }
        let mean = x.mean(0)?;
        let norm = mean
            .sqr()?
            .sum_all()?
            .sqrt()?
            .to_scalar::<f32>()?
            .max(1e-12);
        (mean / f64::from(norm))?.to_vec1::<f32>()
    }
}
