//! Stage 2, tokenise: text to token ids and back, and chat prompt templates.

pub mod chat;
pub mod gguf;
pub mod spm;
pub mod utf8;

pub use chat::{ChatMessage, ChatTemplate, Role, Segment};
pub use gguf::{GgufTokenizer, TokenKind};
pub use spm::{MarianTokenizer, SpmModel};
pub use utf8::Utf8Stream;

/// Why a tokeniser or a chat template could not be built or used.
#[derive(Debug, thiserror::Error)]
pub enum TokenizeError {
    #[error("GGUF metadata key `{0}` is missing")]
    MissingMetadata(&'static str),
    #[error("GGUF metadata key `{key}` is malformed: {reason}")]
    BadMetadata { key: &'static str, reason: String },
    #[error("unsupported tokenizer: {0}")]
    Unsupported(String),
    #[error("chat template not supported: {0}")]
    ChatTemplate(String),
    #[error("the vocabulary has no control token `{0}`")]
    MissingControlToken(String),
    #[error("a chat needs at least one message")]
    EmptyChat,
    #[error(transparent)]
    Tokenizers(#[from] tokenizers::Error),
}
