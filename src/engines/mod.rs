//! Engines compose load, tokenise and infer into the capabilities the pipeline needs. Each
//! loads from the model's files as the store resolves them (`load::ModelFiles`).

pub mod constraint;
pub mod copy_guard;
pub mod embedder;
pub mod llm;
pub mod marian;
pub mod precision_check;
pub mod tasks;

pub use crate::infer::{DecodeStats, RepetitionGuard, StopReason};
pub use crate::tokenize::{ChatMessage, Role};
pub use embedder::{EmbedError, Embedder};
pub use llm::{ChatRequest, GenerateOptions, Generation, LlmEngine, TokenEvent};
pub use marian::{MarianEngine, MarianTranslator};

use crate::infer::InferError;
use crate::load::ModelFiles;
use crate::tokenize::TokenizeError;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("model {model} has no {name} among its files")]
    MissingFile { model: String, name: String },
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
            EngineError::Io { .. } | EngineError::MissingFile { .. } => FailureKind::ModelMissing,
            EngineError::Gguf { .. }
            | EngineError::Tokenizer { .. }
            | EngineError::Model { .. } => FailureKind::ModelCorrupt,
            EngineError::Prompt(_) | EngineError::Generate(_) => FailureKind::Other,
        }
    }
}

/// The path of `name` among a model's files.
fn required<'a>(files: &'a ModelFiles, name: &str) -> Result<&'a Path, EngineError> {
    files.path(name).ok_or_else(|| EngineError::MissingFile {
        model: files.id.clone(),
        name: name.to_string(),
    })
}

/// The process-wide settings inference depends on; `main` makes them once, at its start,
/// before any other thread exists (they change the process environment and the allocator):
/// - the CPU threads: candle 0.11 reads them from `RAYON_NUM_THREADS` (rayon's global pool,
///   which runs the f32 matrix products and sizes precis's own team) and `CANDLE_NUM_THREADS`
///   (candle's pool for quantised products). Without `--threads` they are still set, to
///   candle's default (the physical cores) or the variable the user set: candle reads
///   `RAYON_NUM_THREADS` at every f32 matrix product and, when it is unset, counts the cores by
///   reading `/proc/cpuinfo` each time (a fifth of the time of a tiny Marian model, measured);
/// - glibc's allocator keeps freed large buffers (see `keep_large_allocations`).
pub fn configure_process(threads: Option<std::num::NonZeroUsize>) {
    let n = match threads {
        Some(threads) => threads.get(),
        None => candle_core::utils::get_num_threads(),
    };
    std::env::set_var("RAYON_NUM_THREADS", n.to_string());
    if threads.is_some() || std::env::var_os("CANDLE_NUM_THREADS").is_none() {
        std::env::set_var("CANDLE_NUM_THREADS", n.to_string());
    }
    keep_large_allocations();
}

/// Makes glibc keep freed large buffers for reuse instead of unmapping them: a forward pass
/// allocates activations of the same sizes layer after layer (megabytes each for a prompt, the
/// logits for every token), and with glibc's defaults each one is mapped afresh and its pages
/// faulted in. Measured on the 1.5B model: prompts 4-5% faster, peak RSS 40-70 MiB higher.
fn keep_large_allocations() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            const LIMIT: libc::c_int = 1 << 30;
            // SAFETY: mallopt only sets allocator parameters; any value is valid to pass.
            unsafe {
                libc::mallopt(libc::M_MMAP_THRESHOLD, LIMIT);
                libc::mallopt(libc::M_TRIM_THRESHOLD, LIMIT);
            }
        });
    }
}

/// The number of threads candle's CPU kernels will use (or use already).
pub fn cpu_threads() -> usize {
    candle_core::utils::get_num_threads()
}
