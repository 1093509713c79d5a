//! Engines compose load, tokenise and infer into the capabilities the pipeline needs.

pub mod embedder;
pub mod llm;
pub mod marian;
pub mod tasks;

pub use crate::infer::{DecodeStats, RepetitionGuard, StopReason};
pub use crate::tokenize::{ChatMessage, Role};
pub use embedder::{EmbedError, Embedder};
pub use llm::{GenerateOptions, Generation, LlmEngine, TokenEvent};
pub use marian::{MarianEngine, MarianTranslator};

use crate::infer::InferError;
use crate::tokenize::TokenizeError;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} is not a readable GGUF file: {source}", path.display())]
    Gguf {
        path: PathBuf,
        source: candle_core::Error,
    },
    #[error("{}: tokenizer: {source}", path.display())]
    Tokenizer {
        path: PathBuf,
        source: TokenizeError,
    },
    #[error("{}: model: {source}", path.display())]
    Model { path: PathBuf, source: InferError },
    #[error("cannot build the prompt: {0}")]
    Prompt(#[source] TokenizeError),
    #[error("generation failed: {0}")]
    Generate(#[source] InferError),
}

impl EngineError {
    pub fn kind(&self) -> crate::failure::FailureKind {
        use crate::failure::FailureKind;
        match self {
            EngineError::Io { .. } => FailureKind::ModelMissing,
            EngineError::Gguf { .. }
            | EngineError::Tokenizer { .. }
            | EngineError::Model { .. } => FailureKind::ModelCorrupt,
            EngineError::Prompt(_) | EngineError::Generate(_) => FailureKind::Other,
        }
    }
}

/// Sets how many CPU threads candle uses, by the only mechanism candle 0.11 reads: the
/// `RAYON_NUM_THREADS` variable (rayon's global pool, which runs the f32 matrix products) and
/// `CANDLE_NUM_THREADS` (candle's own pool, which runs the quantised matrix products). Both are
/// read once, when the first tensor operation runs, so this must be called at the start of
/// `main`, before any model is loaded and before other threads exist (it changes the process
/// environment).
pub fn set_cpu_threads(threads: std::num::NonZeroUsize) {
    let n = threads.to_string();
    std::env::set_var("RAYON_NUM_THREADS", &n);
    std::env::set_var("CANDLE_NUM_THREADS", &n);
}

/// The number of threads candle's CPU kernels will use (or use already).
pub fn cpu_threads() -> usize {
    candle_core::utils::get_num_threads()
}
