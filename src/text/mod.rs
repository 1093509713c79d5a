//! The text around the models: the user's bytes decoded (input, HTML), the language it is in,
//! paragraphs and sentences, page labels (furniture), chunks that fit a model's context, and the
//! translation put back in place (article). A leaf: any module may use it, and it uses none of precis's stages.

pub mod article;
pub mod chunk;
pub mod furniture;
pub mod html;
pub mod input;
pub mod language;
pub mod segment;

pub use article::{Article, Paragraph};

/// The months' names in English, January first: what the fidelity check reads in a
/// translation, and what constrained decoding watches for.
pub const ENGLISH_MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
