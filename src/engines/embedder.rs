//! Sentence embeddings with a BERT-family encoder (all-MiniLM-L6-v2): mean of the token states
//! over the attention mask, L2-normalised, as sentence-transformers computes them.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

use crate::failure::FailureKind;
use crate::load::ModelFiles;

#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    #[error("model {model} has no {name} among its files")]
    MissingFile { model: String, name: String },
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} is not a BERT configuration: {source}", path.display())]
    Config {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{} is not a usable tokenizer: {message}", path.display())]
    Tokenizer { path: PathBuf, message: String },
    #[error("{} does not hold the weights of this BERT model: {source}", path.display())]
    Weights {
        path: PathBuf,
        source: candle_core::Error,
    },
    #[error("cannot tokenise a sentence for embedding: {0}")]
    Tokenize(String),
    #[error("embedding failed: {0}")]
    Compute(#[from] candle_core::Error),
}

impl EmbedError {
    pub fn kind(&self) -> FailureKind {
        match self {
            EmbedError::Io { .. } | EmbedError::MissingFile { .. } => FailureKind::ModelMissing,
            EmbedError::Config { .. }
            | EmbedError::Tokenizer { .. }
            | EmbedError::Weights { .. } => FailureKind::ModelCorrupt,
            EmbedError::Tokenize(_) | EmbedError::Compute(_) => FailureKind::Other,
        }
    }
}

/// Sentences per forward pass: large enough to amortise the per-call overhead, small enough
/// that the padded batch of a long article stays a few MB.
const BATCH: usize = 32;

pub struct Embedder {
    model: BertModel,
    tokenizer: Tokenizer,
    device: Device,
    dimension: usize,
}

impl Embedder {
    /// Loads the encoder. `max_tokens` is the model's sequence limit (256 for all-MiniLM-L6-v2,
    /// sentence-transformers' `max_seq_length`); longer sentences are truncated, as there.
    pub fn load(
        files: &ModelFiles,
        max_tokens: usize,
        device: &Device,
    ) -> Result<Self, EmbedError> {
        let path = |name: &str| {
            super::required(files, name).map_err(|_| EmbedError::MissingFile {
                model: files.id.clone(),
                name: name.to_string(),
            })
        };
        let (config, tokenizer, weights) = (
            path("config.json")?,
            path("tokenizer.json")?,
            path("model.safetensors")?,
        );
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| EmbedError::Io { path, source }
        };
        let config_text = std::fs::read_to_string(config).map_err(io(config))?;
        let config: Config =
            serde_json::from_str(&config_text).map_err(|source| EmbedError::Config {
                path: config.to_path_buf(),
                source,
            })?;
        let tokenizer_error = |message: String| EmbedError::Tokenizer {
            path: tokenizer.to_path_buf(),
            message,
        };
        let mut tokenizer =
            Tokenizer::from_file(tokenizer).map_err(|e| tokenizer_error(e.to_string()))?;
        // The shipped tokenizer.json pads every input to 128 tokens and truncates there; pad
        // only to the longest sentence of a batch (the mask keeps padding out of the mean) and
        // truncate at the model's real limit, as sentence-transformers does.
        tokenizer.with_padding(Some(PaddingParams {
            strategy: PaddingStrategy::BatchLongest,
            ..PaddingParams::default()
        }));
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: max_tokens.min(config.max_position_embeddings),
                ..TruncationParams::default()
            }))
            .map_err(|e| tokenizer_error(e.to_string()))?;
        // SAFETY: the file is a cache blob precis verified by checksum and never writes
        // afterwards; mapping it avoids holding a second copy of the weights in memory.
        let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[weights], DType::F32, device) }
            .map_err(|source| EmbedError::Weights {
                path: weights.to_path_buf(),
                source,
            })?;
        let model = BertModel::load(vb, &config).map_err(|source| EmbedError::Weights {
            path: weights.to_path_buf(),
            source,
        })?;
        Ok(Self {
            model,
            tokenizer,
            device: device.clone(),
            dimension: config.hidden_size,
        })
    }

    pub fn dimension(&self) -> usize {
        self.dimension
    }

    /// One unit-length vector per text, in the order given.
    pub fn embed<S: AsRef<str>>(&self, texts: &[S]) -> Result<Vec<Vec<f32>>, EmbedError> {
        // Batches of similar length waste less work on padding.
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| texts[i].as_ref().len());
        let mut out = vec![Vec::new(); texts.len()];
        for batch in order.chunks(BATCH) {
            let inputs: Vec<&str> = batch.iter().map(|&i| texts[i].as_ref()).collect();
            let vectors = self.embed_batch(&inputs)?;
            for (&i, v) in batch.iter().zip(vectors) {
                out[i] = v;
            }
        }
        Ok(out)
    }

    fn embed_batch(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let encodings = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| EmbedError::Tokenize(e.to_string()))?;
        let rows = encodings.len();
        let width = encodings.first().map_or(0, |e| e.get_ids().len());
        let mut ids = Vec::with_capacity(rows * width);
        let mut mask = Vec::with_capacity(rows * width);
        for e in &encodings {
            ids.extend_from_slice(e.get_ids());
            mask.extend_from_slice(e.get_attention_mask());
        }
        let ids = Tensor::from_vec(ids, (rows, width), &self.device)?;
        let mask = Tensor::from_vec(mask, (rows, width), &self.device)?;
        let token_types = ids.zeros_like()?;
        let states = self.model.forward(&ids, &token_types, Some(&mask))?;
        // Mean over real tokens only: padding states are not zero and would drag every short
        // sentence towards the same vector.
        let mask = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
        let summed = states.broadcast_mul(&mask)?.sum(1)?;
        let counts = mask.sum(1)?.clamp(1e-9, f64::MAX)?;
        let mean = summed.broadcast_div(&counts)?;
        let norms = mean.sqr()?.sum_keepdim(1)?.sqrt()?.clamp(1e-12, f64::MAX)?;
        Ok(mean.broadcast_div(&norms)?.to_vec2::<f32>()?)
    }
}
