//! Where vectors come from. [`Embedder`] is the seam: the built-in model on the CPU
//! ([`LocalEmbedder`], `tale-embed`) or a provider's model tagged `embedding`
//! ([`ProviderEmbedder`], through `tale-llm`'s OpenAI-dialect `/embeddings` call, which retries
//! 429 and 5xx answers itself). Errors are sentences a user can act on: a document whose chunks
//! cannot be embedded fails with them.

use std::path::Path;
use std::sync::Arc;
use tale_llm::client::{Endpoint, LlmClient, LlmError};

/// Texts per call to the local model: small enough that a long document yields the blocking
/// pool between batches, large enough to keep both cores busy.
const LOCAL_BATCH: usize = 32;
/// Inputs per provider request (OpenAI accepts 2,048; smaller requests fail and retry cheaper).
const PROVIDER_BATCH: usize = 64;
/// Providers reject inputs past their token limit (8,192 for OpenAI's models); a chunk is at
/// most a few thousand characters, so only an overlong query is ever cut.
const PROVIDER_MAX_CHARS: usize = 8_000;

#[async_trait::async_trait]
pub trait Embedder: Send + Sync {
    /// Stored beside every vector: vectors of different models are never compared.
    fn model_id(&self) -> String;
    fn dimensions(&self) -> usize;
    /// One vector per text, in order.
    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, String>;
    /// Whether embedding runs on this machine's cores (and so competes with the rest of a
    /// search for them) rather than waiting on a remote service.
    fn is_local(&self) -> bool {
        false
    }
    /// The vector of a search question. A model may answer it faster than [`Self::embed`] (the
    /// local model uses its quantised copy), as long as the vector searches the ones `embed`
    /// stored.
    async fn embed_query(&self, query: &str) -> Result<Vec<f32>, String> {
        match self.embed(&[query.to_owned()]).await?.pop() {
            Some(vector) => Ok(vector),
            None => Err("the embedding model returned no vector for the query".to_owned()),
        }
    }
}

/// all-MiniLM-L6-v2 on the CPU.
pub struct LocalEmbedder {
    model: Arc<tale_embed::LocalEmbedder>,
}

impl LocalEmbedder {
    /// Loads the model folder (`tale_embed::ensure_model` fetches it) off the async threads.
    pub async fn load(model_dir: &Path) -> Result<Self, String> {
        let dir = model_dir.to_owned();
        let model = tokio::task::spawn_blocking(move || tale_embed::LocalEmbedder::load(&dir))
            .await
            .map_err(|e| format!("loading the local embedding model crashed: {e}"))?
            .map_err(|e| e.to_string())?;
        Ok(LocalEmbedder { model: Arc::new(model) })
    }
}

#[async_trait::async_trait]
impl Embedder for LocalEmbedder {
    fn model_id(&self) -> String {
        format!("local:{}", tale_embed::MODEL_ID)
    }

    fn dimensions(&self) -> usize {
        self.model.dimensions()
    }

    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, String> {
        let mut out = Vec::with_capacity(texts.len());
        for batch in texts.chunks(LOCAL_BATCH) {
            let model = self.model.clone();
            let batch = batch.to_vec();
            let vectors = tokio::task::spawn_blocking(move || {
                let refs: Vec<&str> = batch.iter().map(String::as_str).collect();
                model.embed(&refs)
            })
            .await
            .map_err(|e| format!("the local embedding model crashed: {e}"))?
            .map_err(|e| format!("the local embedding model failed: {e}"))?;
            out.extend(vectors);
        }
        Ok(out)
    }

    fn is_local(&self) -> bool {
        true
    }

    async fn embed_query(&self, query: &str) -> Result<Vec<f32>, String> {
        let (model, query) = (self.model.clone(), query.to_owned());
        tokio::task::spawn_blocking(move || model.embed_query(&query))
            .await
            .map_err(|e| format!("the local embedding model crashed: {e}"))?
            .map_err(|e| format!("the local embedding model failed: {e}"))
    }
}

/// A provider's embedding model, e.g. `openai:text-embedding-3-small`.
pub struct ProviderEmbedder {
    client: Arc<LlmClient>,
    endpoint: Endpoint,
    provider: String,
    model: String,
    /// Asked of models that can shorten their vectors (`dimensions` in the provider file).
    requested: Option<u64>,
    dims: usize,
}

impl ProviderEmbedder {
    /// Learns the vector length from the provider file's `dimensions`, else from one probe call
    /// (which also proves the key works before any document depends on it).
    pub async fn connect(client: Arc<LlmClient>, endpoint: Endpoint, provider: &str, model: &str, dimensions: Option<u64>) -> Result<Self, String> {
        let mut e = ProviderEmbedder { client, endpoint, provider: provider.to_owned(), model: model.to_owned(), requested: dimensions, dims: 0 };
        e.dims = match dimensions.and_then(|d| usize::try_from(d).ok()) {
            Some(d) => d,
            None => e.call(&["dimension probe".to_owned()]).await?.first().map_or(0, Vec::len),
        };
        if e.dims == 0 {
            return Err(format!("embedding provider '{provider}' returned empty vectors for model '{model}'"));
        }
        Ok(e)
    }

    fn explain(&self, e: &LlmError) -> String {
        match e {
            LlmError::Upstream { status, message } => {
                let hint = match status {
                    401 | 403 => " (check the API key in its secrets file)",
                    404 => " (check the model name and the provider's base URL)",
                    429 => " (rate limited even after retries; indexing continues when the document is retried)",
                    _ => "",
                };
                format!("embedding provider '{}' returned {status} for model '{}': {message}{hint}", self.provider, self.model)
            }
            other => format!("embedding provider '{}' failed for model '{}': {other}", self.provider, self.model),
        }
    }

    async fn call(&self, inputs: &[String]) -> Result<Vec<Vec<f32>>, String> {
        let clipped: Vec<String> = inputs.iter().map(|t| t.chars().take(PROVIDER_MAX_CHARS).collect()).collect();
        let r = self.client.embed(&self.endpoint, &self.model, &clipped, self.requested).await.map_err(|e| self.explain(&e))?;
        Ok(r.vectors)
    }
}

#[async_trait::async_trait]
impl Embedder for ProviderEmbedder {
    fn model_id(&self) -> String {
        format!("{}:{}", self.provider, self.model)
    }

    fn dimensions(&self) -> usize {
        self.dims
    }

    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, String> {
        let mut out = Vec::with_capacity(texts.len());
        for batch in texts.chunks(PROVIDER_BATCH) {
            let vectors = self.call(batch).await?;
            if let Some(v) = vectors.iter().find(|v| v.len() != self.dims) {
                return Err(format!("embedding provider '{}' returned {} dimensions for model '{}' where {} were expected", self.provider, v.len(), self.model, self.dims));
            }
            out.extend(vectors);
        }
        Ok(out)
    }
}

/// Whether search can use vectors, and if not, why (the UI and run log show the reason).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "state", rename_all = "camelCase")]
pub enum VectorStatus {
    Ready { model: String },
    Unavailable { reason: String },
}

impl VectorStatus {
    pub fn is_ready(&self) -> bool {
        matches!(self, VectorStatus::Ready { .. })
    }
}

impl std::fmt::Display for VectorStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VectorStatus::Ready { model } => write!(f, "hybrid search (BM25 and vectors from {model})"),
            VectorStatus::Unavailable { reason } => write!(f, "search runs BM25-only: {reason}"),
        }
    }
}
