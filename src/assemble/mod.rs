//! Stage 4, assemble: the text handling around the models. Paragraphs and sentences of the
//! article, chunks that fit a model's context, and the translation put back in place.

pub mod article;
pub mod chunk;
pub mod fidelity;
pub mod html;
pub mod input;
pub mod language;
pub mod segment;
pub mod summary;
pub mod tfidf;

pub use article::{Article, Paragraph};
