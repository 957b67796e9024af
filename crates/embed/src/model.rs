//! Inference: the BERT encoder from candle-transformers on the CPU, the Hugging Face tokenizer,
//! mean pooling over real tokens and L2 normalisation (the sentence-transformers recipe the
//! model was trained for).

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config, DTYPE};
use tokenizers::{Encoding, Tokenizer, TruncationParams};

use crate::EmbedError;
use crate::query::QueryEncoder;

/// The longest input the model sees, in word pieces including `[CLS]` and `[SEP]`: the
/// `max_seq_length` sentence-transformers trained all-MiniLM-L6-v2 with. The bundled
/// `tokenizer.json` says 128, which would silently drop half of every chunk.
const MAX_TOKENS: usize = 256;
/// Inputs per forward pass. At 256 tokens the attention scores of one batch take
/// 8 × 12 heads × 256² × 4 bytes ≈ 25 MB, under glibc's 32 MB ceiling for reusing freed heap
/// memory: larger batches made every op mmap, fault in and zero fresh pages (measured: batch 32
/// spent 35% of its time in the kernel and needed ~15% more CPU per chunk than batch 8).
const BATCH: usize = 8;
/// Forward passes run at once. candle's CPU kernels use a second core only inside matrix
/// products, so one worker per core keeps both busy; more would only share the same cores and
/// add a batch's memory (~100 MB) each.
const MAX_WORKERS: usize = 4;
/// Inputs tokenised at a time. Encodings of a whole corpus would not be bounded; within a window
/// inputs are sorted by length so each batch pads to about its own length.
const WINDOW: usize = 32 * BATCH;
/// Text past this many bytes is not even tokenised: 256 word pieces never need more (a piece is
/// at most one 100-character word), and tokenising a multi-megabyte input only to truncate it
/// would stall the caller.
const MAX_INPUT_BYTES: usize = 64 * 1024;

/// A loaded all-MiniLM-L6-v2: tokenizer and weights in memory, ready to embed. `Send + Sync`, so
/// one instance can be shared behind an `Arc` by every ingestion and search task.
pub struct LocalEmbedder {
    model: BertModel,
    /// The same model quantised, for questions: see `query.rs`. `None` when it could not be
    /// built; questions then go through the f32 encoder.
    query: Option<QueryEncoder>,
    tokenizer: Tokenizer,
    device: Device,
    dimensions: usize,
    pad_id: u32,
}

impl std::fmt::Debug for LocalEmbedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalEmbedder")
            .field("model", &crate::MODEL_ID)
            .field("dimensions", &self.dimensions)
            .finish_non_exhaustive()
    }
}

impl LocalEmbedder {
    /// Loads from a folder holding `model.safetensors`, `tokenizer.json` and `config.json`.
    pub fn load(model_dir: &Path) -> Result<Self, EmbedError> {
        let config_path = model_dir.join("config.json");
        let config_bytes = read(&config_path)?;
        let config: Config = serde_json::from_slice(&config_bytes).map_err(|e| {
            EmbedError::Load(format!(
                "{} is not a BERT config: {e}",
                config_path.display()
            ))
        })?;

        let tokenizer_path = model_dir.join("tokenizer.json");
        let mut tokenizer = Tokenizer::from_file(&tokenizer_path).map_err(|e| {
            EmbedError::Load(format!(
                "cannot read the tokenizer {}: {e}",
                tokenizer_path.display()
            ))
        })?;
        // The bundled file pads every input to 128 tokens; we pad per batch ourselves and pass
        // the attention mask, so padding here would only add work (and, without a mask, make
        // every embedding look alike).
        let pad_id = tokenizer
            .get_padding()
            .map(|p| p.pad_id)
            .or_else(|| tokenizer.token_to_id("[PAD]"))
            .unwrap_or(0);
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: MAX_TOKENS.min(config.max_position_embeddings),
                ..TruncationParams::default()
            }))
            .map_err(|e| {
                EmbedError::Load(format!(
                    "cannot set truncation on {}: {e}",
                    tokenizer_path.display()
                ))
            })?;

        let weights_path = model_dir.join("model.safetensors");
        let weights = read(&weights_path)?;
        let device = Device::Cpu;
        // Buffered rather than memory-mapped: mapping needs `unsafe`, which the workspace forbids,
        // and the file is only ~90 MB.
        let vb = VarBuilder::from_buffered_safetensors(weights, DTYPE, &device).map_err(|e| {
            EmbedError::Load(format!(
                "{} is not a safetensors file: {e}",
                weights_path.display()
            ))
        })?;
        let query = QueryEncoder::load(&vb, &config)
            .inspect_err(|e| {
                tracing::warn!(error = %e, "the quantised question encoder could not be built; questions use the f32 encoder (slower)");
            })
            .ok();
        let model = BertModel::load(vb, &config).map_err(|e| {
            EmbedError::Load(format!(
                "{} does not hold a BERT model: {e}",
                weights_path.display()
            ))
        })?;

        Ok(Self {
            model,
            query,
            tokenizer,
            device,
            dimensions: config.hidden_size,
            pad_id,
        })
    }

    /// The length of every vector: 384 for this model.
    pub fn dimensions(&self) -> usize {
        self.dimensions
    }

    /// L2-normalised mean-pooled embeddings, in input order. Batches internally; truncates each
    /// input to the model's maximum (256 word pieces for this model); empty input → empty vec.
    ///
    /// Blocking CPU work that uses every core up to four (about 0.2 CPU-seconds per full
    /// 256-token chunk, a few ms per short sentence, in a release build): call it from
    /// `spawn_blocking` or a worker thread, not on the async runtime.
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let mut out = vec![Vec::new(); texts.len()];
        for (window_index, window) in texts.chunks(WINDOW).enumerate() {
            let offset = window_index * WINDOW;
            let inputs: Vec<&str> = window.iter().map(|t| clip(t, MAX_INPUT_BYTES)).collect();
            let encodings = self
                .tokenizer
                .encode_batch(inputs, true)
                .map_err(|e| EmbedError::Inference(format!("cannot tokenise the input: {e}")))?;
            // Shortest first, so each batch of neighbours pads to about its own length; the
            // stable sort keeps equal lengths in input order, which keeps results reproducible.
            let mut order: Vec<usize> = (0..encodings.len()).collect();
            order.sort_by_key(|&i| encodings[i].get_ids().len());
            let batches: Vec<&[usize]> = order.chunks(BATCH).collect();
            for (batch, vectors) in batches.iter().zip(self.run_batches(&batches, &encodings)?) {
                for (&i, vector) in batch.iter().zip(vectors) {
                    out[offset + i] = vector;
                }
            }
        }
        Ok(out)
    }

    /// The vector of one search question, from the quantised encoder: about 4 ms for a short
    /// question on this project's 2-core machine, where [`Self::embed`] takes 10–12 ms. Its
    /// vectors lie at a cosine of 0.997 or more from `embed`'s for the same text (measured on
    /// 200 questions), close enough to search vectors `embed` stored; do not use it to store
    /// vectors.
    pub fn embed_query(&self, text: &str) -> Result<Vec<f32>, EmbedError> {
        let Some(query) = &self.query else {
            return self
                .embed(&[text])?
                .pop()
                .ok_or_else(|| EmbedError::Inference("no vector for the question".into()));
        };
        let encoding = self
            .tokenizer
            .encode(clip(text, MAX_INPUT_BYTES), true)
            .map_err(|e| EmbedError::Inference(format!("cannot tokenise the question: {e}")))?;
        query
            .encode(encoding.get_ids())
            .map_err(|e| EmbedError::Inference(format!("the question's forward pass failed: {e}")))
    }

    /// Runs every batch, on up to `workers` threads pulling the next batch as they finish; results
    /// come back in batch order.
    fn run_batches(
        &self,
        batches: &[&[usize]],
        encodings: &[Encoding],
    ) -> Result<Vec<Vec<Vec<f32>>>, EmbedError> {
        let run = |batch: &[usize]| {
            let rows: Vec<&Encoding> = batch.iter().map(|&i| &encodings[i]).collect();
            self.forward(&rows)
        };
        let workers = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(MAX_WORKERS);
        if workers <= 1 || batches.len() < 2 {
            return batches.iter().map(|b| run(b)).collect();
        }
        let next = AtomicUsize::new(0);
        let mut done = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..workers.min(batches.len()))
                .map(|_| {
                    scope.spawn(|| {
                        let mut mine = Vec::new();
                        loop {
                            let index = next.fetch_add(1, Ordering::Relaxed);
                            let Some(batch) = batches.get(index) else {
                                break mine;
                            };
                            mine.push((index, run(batch)));
                        }
                    })
                })
                .collect();
            let mut all = Vec::with_capacity(batches.len());
            for handle in handles {
                let mine = handle
                    .join()
                    .map_err(|_| EmbedError::Inference("an embedding worker panicked".into()))?;
                all.extend(mine);
            }
            Ok::<_, EmbedError>(all)
        })?;
        done.sort_by_key(|&(index, _)| index);
        done.into_iter().map(|(_, vectors)| vectors).collect()
    }

    /// One forward pass over a batch: pad to the longest row, run the encoder with the attention
    /// mask, pool.
    fn forward(&self, rows: &[&Encoding]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let width = rows.iter().map(|e| e.get_ids().len()).max().unwrap_or(0);
        let mut ids = Vec::with_capacity(rows.len() * width);
        let mut mask = Vec::with_capacity(rows.len() * width);
        for row in rows {
            let real = row.get_ids();
            ids.extend_from_slice(real);
            ids.extend(std::iter::repeat_n(self.pad_id, width - real.len()));
            mask.extend(std::iter::repeat_n(1u32, real.len()));
            mask.extend(std::iter::repeat_n(0u32, width - real.len()));
        }
        let run = || -> candle_core::Result<Vec<Vec<f32>>> {
            let ids = Tensor::from_vec(ids, (rows.len(), width), &self.device)?;
            let mask = Tensor::from_vec(mask, (rows.len(), width), &self.device)?;
            let token_types = ids.zeros_like()?;
            let hidden = self.model.forward(&ids, &token_types, Some(&mask))?;
            mean_pool_normalize(&hidden, &mask)?.to_vec2::<f32>()
        };
        run().map_err(|e| EmbedError::Inference(format!("the forward pass failed: {e}")))
    }
}

/// Averages the hidden states of real tokens only (padding would pull every vector towards the
/// same point), then scales each row to unit length so a dot product is the cosine.
/// `hidden` is `[batch, tokens, dims]`, `mask` `[batch, tokens]` of 0/1.
fn mean_pool_normalize(hidden: &Tensor, mask: &Tensor) -> candle_core::Result<Tensor> {
    let mask = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
    let summed = hidden.broadcast_mul(&mask)?.sum(1)?;
    let counts = mask.sum(1)?.clamp(1f32, f32::MAX)?;
    let mean = summed.broadcast_div(&counts)?;
    let norms = mean
        .sqr()?
        .sum_keepdim(1)?
        .sqrt()?
        .clamp(1e-12f32, f32::MAX)?;
    mean.broadcast_div(&norms)
}

fn read(path: &Path) -> Result<Vec<u8>, EmbedError> {
    std::fs::read(path)
        .map_err(|e| EmbedError::Load(format!("cannot read {}: {e}", path.display())))
}

/// The longest prefix of `text` within `max` bytes that ends on a character boundary.
fn clip(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pooling_ignores_padding_and_normalises() {
        // Two rows: the first has one real token and one padded token whose state is huge; if
        // padding leaked into the mean the result would point along the second axis.
        let hidden = Tensor::from_vec(
            vec![3f32, 4., 1000., 1000., 1., 0., 0., 1.],
            (2, 2, 2),
            &Device::Cpu,
        )
        .unwrap();
        let mask = Tensor::from_vec(vec![1u32, 0, 1, 1], (2, 2), &Device::Cpu).unwrap();
        let rows = mean_pool_normalize(&hidden, &mask)
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        assert!(
            (rows[0][0] - 0.6).abs() < 1e-6 && (rows[0][1] - 0.8).abs() < 1e-6,
            "{rows:?}"
        );
        let half = std::f32::consts::FRAC_1_SQRT_2;
        assert!(
            (rows[1][0] - half).abs() < 1e-6 && (rows[1][1] - half).abs() < 1e-6,
            "{rows:?}"
        );
    }

    #[test]
    fn clip_keeps_whole_characters() {
        assert_eq!(clip("abc", 10), "abc");
        assert_eq!(clip("aé", 2), "a"); // é is two bytes: never cut through it
        assert_eq!(clip("日本語", 7), "日本");
    }

    #[test]
    fn embedder_is_send_and_sync() {
        fn shared<T: Send + Sync>() {}
        shared::<LocalEmbedder>();
    }
}
