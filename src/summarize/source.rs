//! What the language model is shown to summarise: the article whole, or, when it is longer
//! than one request should be, its sections, each summarised on its own first (map), their
//! summaries then summarised together (reduce).

use super::*;
use crate::text::chunk::chunks_within;

/// What the language model is given to summarise.
#[derive(Debug, Clone, PartialEq)]
pub enum SummarySource {
    /// The article's body paragraphs, verbatim.
    Whole(String),
    /// Consecutive body paragraphs (a paragraph longer than one section cut at sentence
    /// boundaries), each within the budget, in article order.
    Sections(Vec<String>),
}

/// The article's body paragraphs if they fit in `budget` tokens; otherwise the same text cut
/// into sections that each fit. Trailer lines are never included.
pub fn summary_source<S: AsRef<str>, E>(
    paragraphs: &[S],
    sentences: &[ArticleSentence],
    budget: usize,
    count_tokens: &dyn Fn(&str) -> Result<usize, E>,
) -> Result<SummarySource, E> {
    let body: Vec<&str> = paragraphs
        .iter()
        .enumerate()
        .filter(|&(p, _)| body_paragraph(sentences, p))
        .map(|(_, text)| text.as_ref().trim())
        .collect();
    let whole = body.join("\n\n");
    if count_tokens(&whole)? <= budget {
        return Ok(SummarySource::Whole(whole));
    }
    let mut sections: Vec<String> = Vec::new();
    let mut current = String::new();
    for paragraph in body {
        for piece in chunks_within(paragraph, budget, count_tokens)? {
            let joined = if current.is_empty() {
                piece.trim().to_string()
            } else {
                format!("{current}\n\n{}", piece.trim())
            };
            if current.is_empty() || count_tokens(&joined)? <= budget {
                current = joined;
            } else {
                sections.push(std::mem::replace(&mut current, piece.trim().to_string()));
            }
        }
    }
    if !current.is_empty() {
        sections.push(current);
    }
    Ok(SummarySource::Sections(sections))
}

/// Does the paragraph hold any body sentence? (Trailer lines hold none.)
fn body_paragraph(sentences: &[ArticleSentence], paragraph: usize) -> bool {
    sentences
        .iter()
        .any(|s| s.paragraph == paragraph && s.content)
}
