//! Stage 3, infer: model definitions and the decoding loops that drive them.
//!
//! Arrows go down only: `qwen2/` uses `kernels/` and `team.rs`; `decode.rs` and `beam.rs` use
//! `kernels/` (argmax); `kernels/` uses `cpu.rs` (the CPU level every SIMD kernel dispatches
//! on) and `team.rs` (the threads), never a model; `cpu.rs` and `team.rs` use nothing of
//! infer. `marian.rs` is built on candle's layers alone.

pub mod beam;
pub mod cpu;
pub mod decode;
pub mod kernels;
pub mod marian;
pub mod qwen2;
mod team;

pub use decode::{
    CausalLm, DecodeOptions, DecodeStats, Decoded, PromptLookup, RepetitionGuard, SequenceRows,
    Started, Step, StopReason,
};
pub use qwen2::{Qwen2, Qwen2Config};

#[derive(Debug, thiserror::Error)]
pub enum InferError {
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    #[error("GGUF metadata key `{0}` is missing or not a number")]
    MissingMetadata(String),
    #[error("inconsistent model hyperparameters: {0}")]
    Config(String),
    #[error("cannot prepare a weight matrix: {0}")]
    Matrix(#[from] kernels::MatrixError),
    #[error("unsupported architecture `{0}` (expected `qwen2`)")]
    Architecture(String),
    #[error("GGUF tensor `{0}` is missing")]
    MissingTensor(String),
    #[error("the file is truncated: its tensors need {needed} bytes, it has {file_len}")]
    Truncated { needed: u64, file_len: u64 },
    #[error("the prompt is empty")]
    EmptyPrompt,
    #[error("{tokens} tokens do not fit in the model's context of {context}")]
    ContextOverflow { tokens: usize, context: usize },
    #[error("forward pass at position {got}, but the KV cache holds {cached} tokens")]
    Position { got: usize, cached: usize },
    #[error("the model returned no usable logits")]
    NoLogits,
}

impl InferError {
    pub fn kind(&self) -> crate::failure::FailureKind {
        use crate::failure::FailureKind;
        match self {
            InferError::MissingMetadata(_)
            | InferError::Config(_)
            | InferError::Matrix(_)
            | InferError::Architecture(_)
            | InferError::MissingTensor(_)
            | InferError::Truncated { .. } => FailureKind::ModelCorrupt,
            InferError::Candle(_)
            | InferError::EmptyPrompt
            | InferError::ContextOverflow { .. }
            | InferError::Position { .. }
            | InferError::NoLogits => FailureKind::Other,
        }
    }
}
