//! What the language model is shown to summarise: the article, or its key passages when it is long.

use super::*;

/// What the language model is given to summarise.
#[derive(Debug, Clone, PartialEq)]
pub struct SummarySource {
    pub text: String,
    /// Sentences of the article left out to fit the prompt budget (0: the whole article).
    pub omitted: usize,
}

/// The article's body paragraphs if they fit in `budget` tokens; otherwise its most relevant
/// sentences with their neighbours (a sentence alone often leans on the one before it), in
/// article order, with `[…]` where text was left out. Trailer lines are never included.
pub fn summary_source<S: AsRef<str>, E>(
    paragraphs: &[S],
    sentences: &[ArticleSentence],
    relevance: &[f32],
    budget: usize,
    count_tokens: &dyn Fn(&str) -> Result<usize, E>,
) -> Result<SummarySource, E> {
    let body: Vec<usize> = (0..sentences.len())
        .filter(|&i| sentences[i].content)
        .collect();
    // The paragraphs verbatim, so that what the model reads is exactly the article.
    let whole = paragraphs
        .iter()
        .enumerate()
        .filter(|&(p, _)| body_paragraph(sentences, p))
        .map(|(_, text)| text.as_ref().trim())
        .collect::<Vec<_>>()
        .join("\n\n");
    if count_tokens(&whole)? <= budget {
        return Ok(SummarySource {
            text: whole,
            omitted: 0,
        });
    }
    let mut by_relevance = body.clone();
    by_relevance.sort_by(|&a, &b| relevance[b].total_cmp(&relevance[a]));
    let mut keep = vec![false; sentences.len()];
    for &i in &by_relevance {
        let mut trial = keep.clone();
        for j in [i.wrapping_sub(1), i, i + 1] {
            if j < sentences.len()
                && sentences[j].content
                && sentences[j].paragraph == sentences[i].paragraph
            {
                trial[j] = true;
            }
        }
        if count_tokens(&render(sentences, &trial))? <= budget {
            keep = trial;
            continue;
        }
        // The neighbours do not fit: the sentence alone may.
        let mut alone = keep.clone();
        alone[i] = true;
        if count_tokens(&render(sentences, &alone))? <= budget {
            keep = alone;
        }
    }
    let omitted = body.iter().filter(|&&i| !keep[i]).count();
    Ok(SummarySource {
        text: render(sentences, &keep),
        omitted,
    })
}

/// Does the paragraph hold any body sentence? (Trailer lines hold none.)
pub(super) fn body_paragraph(sentences: &[ArticleSentence], paragraph: usize) -> bool {
    sentences
        .iter()
        .any(|s| s.paragraph == paragraph && s.content)
}

/// The kept sentences, paragraphs separated by blank lines, `[…]` marking gaps inside one.
pub(super) fn render(sentences: &[ArticleSentence], keep: &[bool]) -> String {
    let mut paragraphs: Vec<String> = Vec::new();
    let mut current: Option<usize> = None;
    let mut previous_kept = false;
    for (i, s) in sentences.iter().enumerate() {
        if current != Some(s.paragraph) {
            current = Some(s.paragraph);
            paragraphs.push(String::new());
            previous_kept = true;
        }
        let text = paragraphs.last_mut().expect("pushed above");
        if keep[i] {
            if !previous_kept && !text.is_empty() {
                text.push_str(" […]");
            }
            if !text.is_empty() {
                text.push(' ');
            }
            text.push_str(&s.text);
            previous_kept = true;
        } else {
            previous_kept = false;
        }
    }
    paragraphs.retain(|p| !p.is_empty());
    paragraphs.join("\n\n")
}
