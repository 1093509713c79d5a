//! Stage 3, infer: model definitions and the decoding loops that drive them.

pub mod beam;
pub mod decode;
pub mod kquant;
#[cfg(target_arch = "x86_64")]
mod kquant_tiles;
pub mod marian;
pub mod qwen2;
mod team;

pub use decode::{
    CausalLm, DecodeOptions, DecodeStats, Decoded, PromptLookup, RepetitionGuard, Step, StopReason,
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
