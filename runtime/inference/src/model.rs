//! all-MiniLM-L6-v2 on candle: loaded once from local files, embeds batches of texts the way
//! sentence-transformers does (mean pooling over the attention mask, then L2 normalisation).

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config, DTYPE};
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

/// Length of every embedding.
pub const EMBEDDING_DIM: usize = 384;
/// Tokens per text the model reads (sentence-transformers' `max_seq_length` for this model);
/// longer texts are truncated, and the result says so.
pub const MAX_TOKENS: usize = 256;
/// The files a model directory must hold.
pub const MODEL_FILES: [&str; 3] = ["config.json", "tokenizer.json", "model.safetensors"];

/// Why the model could not be loaded or run.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error(
        "model file {} is missing; run runtime/inference/fetch-model.sh, or point --model-dir \
         (WEFT_MODEL_DIR) at a directory holding config.json, tokenizer.json and model.safetensors",
        path.display()
    )]
    Missing { path: PathBuf },
    #[error("model file {} is unreadable or corrupt: {reason}", path.display())]
    Corrupt { path: PathBuf, reason: String },
    #[error("inference failed: {0}")]
    Inference(String),
}

/// The default model directory: `$WEFT_MODEL_DIR`, else the cache `fetch-model.sh` fills.
pub fn default_model_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("WEFT_MODEL_DIR") {
        return PathBuf::from(dir);
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from(".cache"));
    cache.join("weft/models/all-MiniLM-L6-v2")
}

/// Embeddings of a batch of texts, in order.
#[derive(Clone, Debug, PartialEq)]
pub struct Embedded {
    /// Unit-length vectors of [`EMBEDDING_DIM`] values.
    pub vectors: Vec<Vec<f32>>,
    /// Whether each text was cut to [`MAX_TOKENS`] tokens.
    pub truncated: Vec<bool>,
}

/// The model and its tokenizer, on one device.
pub struct Embedder {
    model: BertModel,
    tokenizer: Tokenizer,
    device: Device,
}

fn corrupt(path: &Path, reason: impl ToString) -> ModelError {
    ModelError::Corrupt {
        path: path.to_owned(),
        reason: reason.to_string(),
    }
}

fn inference(e: impl ToString) -> ModelError {
    ModelError::Inference(e.to_string())
}

impl Embedder {
    /// Loads the model from `dir`, on the GPU when built with `cuda` and one is present.
    pub fn load(dir: &Path) -> Result<Self, ModelError> {
        let [config_path, tokenizer_path, weights_path] = MODEL_FILES.map(|f| dir.join(f));
        for path in [&config_path, &tokenizer_path, &weights_path] {
            if !path.is_file() {
                return Err(ModelError::Missing { path: path.clone() });
            }
        }
        let config_text =
            std::fs::read_to_string(&config_path).map_err(|e| corrupt(&config_path, e))?;
        let config: Config =
            serde_json::from_str(&config_text).map_err(|e| corrupt(&config_path, e))?;
        let mut tokenizer =
            Tokenizer::from_file(&tokenizer_path).map_err(|e| corrupt(&tokenizer_path, e))?;
        tokenizer.with_padding(Some(PaddingParams {
            strategy: PaddingStrategy::BatchLongest,
            ..PaddingParams::default()
        }));
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: MAX_TOKENS,
                ..TruncationParams::default()
            }))
            .map_err(|e| corrupt(&tokenizer_path, e))?;
        let device = Device::cuda_if_available(0).map_err(inference)?;
        // SAFETY: the file is mapped read-only and not modified while the model lives; a file
        // changed underneath would be a deployment error, as with any mapped model.
        let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[&weights_path], DTYPE, &device) }
            .map_err(|e| corrupt(&weights_path, e))?;
        let model = BertModel::load(vb, &config).map_err(|e| corrupt(&weights_path, e))?;
        Ok(Embedder {
            model,
            tokenizer,
            device,
        })
    }

    /// Embeds `texts` in one forward pass (padded to the longest).
    pub fn embed(&self, texts: &[String]) -> Result<Embedded, ModelError> {
        if texts.is_empty() {
            return Ok(Embedded {
                vectors: Vec::new(),
                truncated: Vec::new(),
            });
        }
        let encodings = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(inference)?;
        let truncated = encodings
            .iter()
            .map(|e| !e.get_overflowing().is_empty())
            .collect();
        let rows = |f: fn(&tokenizers::Encoding) -> &[u32]| -> Result<Tensor, ModelError> {
            let rows = encodings
                .iter()
                .map(|e| Tensor::new(f(e), &self.device))
                .collect::<Result<Vec<_>, _>>()
                .map_err(inference)?;
            Tensor::stack(&rows, 0).map_err(inference)
        };
        let ids = rows(|e| e.get_ids())?;
        let mask = rows(|e| e.get_attention_mask())?;
        let type_ids = ids.zeros_like().map_err(inference)?;
        let hidden = self
            .model
            .forward(&ids, &type_ids, Some(&mask))
            .map_err(inference)?;
        let pooled = mean_pool(&hidden, &mask).map_err(inference)?;
        let norm = pooled
            .sqr()
            .and_then(|s| s.sum_keepdim(1))
            .and_then(|s| s.sqrt())
            .map_err(inference)?;
        let vectors = pooled
            .broadcast_div(&norm)
            .and_then(|v| v.to_vec2::<f32>())
            .map_err(inference)?;
        Ok(Embedded { vectors, truncated })
    }
}

/// Mean of the token vectors that the attention mask keeps.
fn mean_pool(hidden: &Tensor, mask: &Tensor) -> candle_core::Result<Tensor> {
    let mask = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
    let summed = hidden.broadcast_mul(&mask)?.sum(1)?;
    let counts = mask.sum(1)?.clamp(1e-9, f32::MAX)?;
    summed.broadcast_div(&counts)
}

/// Cosine similarity of two unit vectors.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}
