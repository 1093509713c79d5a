//! Stage 2, tokenise: text to token ids and back, and chat prompt templates.
