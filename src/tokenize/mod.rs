//! Stage 2, tokenise: text to token ids and back, and chat prompt templates.

pub mod chat;
pub mod gguf;
pub mod spm;
pub mod utf8;

pub use chat::{ChatMessage, ChatTemplate, Role, Segment};
pub use gguf::GgufTokenizer;
pub use spm::{MarianTokenizer, SpmModel};
pub use utf8::Utf8Stream;

/// What a vocabulary entry is. SentencePiece's model proto (`ModelProto.SentencePiece.Type`)
/// and GGUF's `tokenizer.ggml.token_type` (llama.cpp's `llama_token_type`) number the kinds the
/// same way, 1 to 6.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    Normal,
    Unknown,
    /// Chat and document markup such as `<|im_start|>`: only ever produced by templates.
    Control,
    /// Added tokens that are matched in plain text, such as `<tool_call>`.
    UserDefined,
    Unused,
    Byte,
}

impl TokenKind {
    pub fn from_code(code: u64) -> Option<Self> {
        Some(match code {
            1 => Self::Normal,
            2 => Self::Unknown,
            3 => Self::Control,
            4 => Self::UserDefined,
            5 => Self::Unused,
            6 => Self::Byte,
            _ => return None,
        })
    }

    /// Whether the token stands for text in the output (as opposed to markup).
    pub fn is_text(self) -> bool {
        matches!(self, Self::Normal | Self::UserDefined | Self::Byte)
    }
}

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

impl TokenizeError {
    pub fn kind(&self) -> crate::failure::FailureKind {
        use crate::failure::FailureKind;
        match self {
            TokenizeError::MissingMetadata(_)
            | TokenizeError::BadMetadata { .. }
            | TokenizeError::Unsupported(_)
            | TokenizeError::ChatTemplate(_)
            | TokenizeError::MissingControlToken(_) => FailureKind::ModelCorrupt,
            TokenizeError::EmptyChat | TokenizeError::Tokenizers(_) => FailureKind::Other,
        }
    }
}
