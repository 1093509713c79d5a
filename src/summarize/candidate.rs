//! Judging summary paragraphs by what can be measured, and choosing one: the asked form
//! (sentences, words), support in the article, copying, coverage of the article's key
//! sentences, and fidelity.

use serde::Serialize;
use std::cmp::Ordering;

use super::cosine;
use crate::{engines::tasks::SummaryForm, text::segment::sentences};

/// Share of a summary sentence's words found, in order, in one article sentence above which
/// the summary sentence counts as copied rather than written.
pub const NEAR_COPY: f32 = 0.8;

/// What was measured of one paragraph.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Properties {
    pub sentences: usize,
    pub words: usize,
    /// Sentences no article sentence supports.
    pub unsupported: usize,
    /// Sentences that copy an article sentence ([`NEAR_COPY`]).
    pub near_copies: usize,
    /// Share of sentences that are near copies.
    pub copy_rate: f32,
    /// Sentences that say again what an earlier sentence of the paragraph said.
    pub repeated: usize,
    /// Share of the article's key sentences that some sentence of the paragraph supports.
    pub coverage: f32,
    /// Fidelity findings against the article, attribution included.
    pub findings: usize,
    /// Whether the model ended the paragraph itself (not cut at its token limit or in a loop).
    pub complete: bool,
}

impl Properties {
    /// Why the paragraph does not meet `form` and the checks; empty when it does.
    pub fn shortcomings(&self, form: &SummaryForm) -> Vec<String> {
        let mut reasons = Vec::new();
        if !self.complete {
            reasons.push("stopped before its end".to_string());
        }
        if self.sentences < form.min_sentences || self.sentences > form.max_sentences {
            reasons.push(format!(
                "{} sentences ({} asked)",
                self.sentences,
                form.sentences_phrase()
            ));
        }
        if self.words > form.max_words {
            reasons.push(format!("{} words (at most {})", self.words, form.max_words));
        }
        if self.unsupported > 0 {
            reasons.push(format!("{} unsupported sentence(s)", self.unsupported));
        }
        if self.near_copies > 0 {
            reasons.push(format!(
                "{} sentence(s) copied from the article",
                self.near_copies
            ));
        }
        if self.repeated > 0 {
            reasons.push(format!("{} repeated sentence(s)", self.repeated));
        }
        if self.findings > 0 {
            reasons.push(format!("{} fidelity finding(s)", self.findings));
        }
        reasons
    }
}

/// The index of the paragraph to keep, and whether it meets everything: among those that
/// do, the one that covers most of the article's key sentences; when none does, the one with
/// the fewest shortcomings other than copying (faithfulness and form come first), then the
/// fewest copied sentences, then the best coverage. Ties go to the earlier candidate.
pub fn choose(candidates: &[Properties], form: &SummaryForm) -> Option<(usize, bool)> {
    let best = (0..candidates.len())
        .min_by(|&a, &b| choice_order(&candidates[a], &candidates[b], form))?;
    Some((best, candidates[best].shortcomings(form).is_empty()))
}

/// The order [`choose`] ranks paragraphs in: the fewest shortcomings other than copying, then
/// the fewest copied sentences, then the best coverage.
fn choice_order(a: &Properties, b: &Properties, form: &SummaryForm) -> Ordering {
    let besides_copying =
        |p: &Properties| p.shortcomings(form).len() - usize::from(p.near_copies > 0);
    (besides_copying(a), a.near_copies)
        .cmp(&(besides_copying(b), b.near_copies))
        .then(b.coverage.total_cmp(&a.coverage))
}

/// Of paragraphs whose flagged sentences a rewrite may mend, the one to rewrite: first the
/// fewest shortcomings that a rewrite of its sentences leaves (form, support, an unfinished
/// reply), then as [`choose`] ranks. Ranked by [`choose`] alone, a 2-sentence paragraph with one
/// copy went before two of 4 sentences with copies and findings (one shortcoming each, copying
/// aside; fewer copies), and its rewrite, still 2 sentences, was kept (a CNN/DailyMail article,
/// docs/evaluation.md).
pub fn mend_target(candidates: &[Properties], form: &SummaryForm) -> Option<usize> {
    let lasting = |p: &Properties| {
        p.shortcomings(form).len() - usize::from(p.near_copies > 0) - usize::from(p.findings > 0)
    };
    (0..candidates.len()).min_by(|&a, &b| {
        let (pa, pb) = (&candidates[a], &candidates[b]);
        lasting(pa)
            .cmp(&lasting(pb))
            .then_with(|| choice_order(pa, pb, form))
    })
}

/// The words of a sentence as compared for copying: lowercased, letters and digits only.
fn words(sentence: &str) -> Vec<String> {
    sentence
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// Share of `sentence`'s words that `source` holds in the same order (longest common
/// subsequence of words).
pub fn copied_share(sentence: &str, source: &str) -> f32 {
    let (a, b) = (words(sentence), words(source));
    if a.is_empty() {
        return 0.0;
    }
    let mut row = vec![0usize; b.len() + 1];
    for x in &a {
        let mut diagonal = 0;
        for (j, y) in b.iter().enumerate() {
            let up = row[j + 1];
            row[j + 1] = if x == y {
                diagonal + 1
            } else {
                row[j + 1].max(row[j])
            };
            diagonal = up;
        }
    }
    row[b.len()] as f32 / a.len() as f32
}

/// Is `sentence` a near copy of any of the article's sentences?
pub fn is_near_copy(sentence: &str, article: &[&str]) -> bool {
    article
        .iter()
        .any(|source| copied_share(sentence, source) > NEAR_COPY)
}

/// Share of `key` vectors (the article's key sentences) that some summary sentence vector
/// reaches with a similarity of at least `threshold`.
pub fn coverage(summary: &[Vec<f32>], key: &[&[f32]], threshold: f32) -> f32 {
    if key.is_empty() {
        return 0.0;
    }
    let covered = key
        .iter()
        .filter(|k| summary.iter().any(|s| cosine(s, k) >= threshold))
        .count();
    covered as f32 / key.len() as f32
}

/// An item of a list without its marker. A number is a marker only when "." or ")" and a space
/// follow it: an item that starts with a number ("70 years after the end of the war", "2.5
/// million people") keeps it, where dropping every leading digit once made a CNN/DailyMail
/// summary say "years after the end of World War II".
fn without_list_marker(line: &str) -> &str {
    let line = line.trim();
    let after_digits = line.trim_start_matches(|c: char| c.is_ascii_digit());
    if after_digits.len() < line.len() {
        return match after_digits.strip_prefix(['.', ')']) {
            Some(item) if item.is_empty() || item.starts_with(char::is_whitespace) => item.trim(),
            _ => line,
        };
    }
    line.trim_start_matches(['-', '*', '•']).trim()
}

/// The model's list of sentences as one paragraph: list markers ("1.", "-", "•") and label
/// lines ("Summary:") dropped, each item ended with a full stop if it has no end mark.
pub fn paragraph_from_list(reply: &str) -> String {
    reply
        .lines()
        .map(without_list_marker)
        .filter(|item| !item.is_empty() && !item.ends_with(':'))
        .map(|item| {
            if item.ends_with(['.', '!', '?', '"', '”', '»', ')']) {
                item.to_string()
            } else {
                format!("{item}.")
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Sentences of the paragraph that say again what an earlier one said ([`NEAR_COPY`] of it).
pub fn repeated_sentences(sentences: &[&str]) -> usize {
    (1..sentences.len())
        .filter(|&i| is_near_copy(sentences[i], &sentences[..i]))
        .count()
}

/// Words in a paragraph, as its length limit counts them.
pub fn word_count(text: &str) -> usize {
    text.split_whitespace().count()
}

/// The paragraph's sentences, trimmed, without empty ones.
pub fn paragraph_sentences(text: &str) -> Vec<&str> {
    sentences(text)
        .into_iter()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copying_is_measured_in_order_over_words() {
        let source = "RT reported that the strong momentum of the protests had died out.";
        assert_eq!(
            copied_share("The strong momentum of the protests had died out.", source),
            1.0
        );
        assert!(copied_share("Protests lost momentum, RT said.", source) < 0.5);
        // The same words in another order are not a copy.
        assert!(copied_share("out died had protests the of momentum strong the", source) < 0.5);
        assert!(is_near_copy(
            "The strong momentum of the protests had died out.",
            &[source]
        ));
    }

    fn properties(sentences: usize, words: usize, coverage: f32, near_copies: usize) -> Properties {
        Properties {
            sentences,
            words,
            unsupported: 0,
            near_copies,
            copy_rate: near_copies as f32 / sentences as f32,
            repeated: 0,
            coverage,
            findings: 0,
            complete: true,
        }
    }

    #[test]
    fn the_choice_prefers_a_paragraph_that_meets_everything_then_coverage() {
        let form = SummaryForm::default();
        let one_sentence = properties(1, 40, 0.9, 0);
        let copied = properties(4, 90, 0.8, 1);
        let good_narrow = properties(3, 70, 0.4, 0);
        let good_wide = properties(4, 95, 0.6, 0);
        assert_eq!(
            choose(
                &[one_sentence.clone(), copied.clone(), good_narrow, good_wide],
                &form
            ),
            Some((3, true))
        );
        // None meets everything: the fewest shortcomings other than copying, then the fewest
        // copies, then coverage; reported as such.
        let too_long = properties(6, 140, 0.9, 0);
        assert_eq!(
            choose(&[too_long, copied.clone(), one_sentence], &form),
            Some((1, false))
        );
        let copied_more = properties(4, 90, 0.9, 3);
        assert_eq!(
            choose(&[copied_more, copied.clone()], &form),
            Some((1, false))
        );
        assert_eq!(
            copied.shortcomings(&form),
            ["1 sentence(s) copied from the article"]
        );
        assert_eq!(choose(&[], &form), None);
    }

    #[test]
    fn an_item_keeps_the_number_it_starts_with() {
        let reply = "1. Germans now see themselves as victims of the Nazis.\n70 years after the \
                     war, attitudes are changing.\n3) 2.5 million people were asked.\n4.";
        assert_eq!(
            paragraph_from_list(reply),
            "Germans now see themselves as victims of the Nazis. 70 years after the war, \
             attitudes are changing. 2.5 million people were asked."
        );
    }

    #[test]
    fn the_rewrite_goes_first_to_a_paragraph_whose_shortcomings_a_rewrite_can_mend() {
        let form = SummaryForm::default();
        let two_sentences = properties(2, 40, 0.6, 1);
        let mut copied_flagged = properties(4, 70, 0.6, 3);
        copied_flagged.findings = 1;
        let mut copied_more_flagged = properties(4, 75, 0.8, 4);
        copied_more_flagged.findings = 3;
        let candidates = [two_sentences.clone(), copied_more_flagged, copied_flagged];
        // What `choose` prefers (fewer copies) is not what a rewrite can bring to 3-5 sentences.
        assert_eq!(choose(&candidates, &form), Some((0, false)));
        assert_eq!(mend_target(&candidates, &form), Some(2));
        assert_eq!(mend_target(&[two_sentences], &form), Some(0));
        assert_eq!(mend_target(&[], &form), None);
    }

    #[test]
    fn a_numbered_list_becomes_a_paragraph() {
        let reply = "Summary:\n1. Putin and Trump met in Alaska.\n2) The talks ended without a deal\n\n\
                     - Moscow accused Kyiv of sabotage, RT reported.\n• \"Light at the end of the tunnel\"";
        assert_eq!(
            paragraph_from_list(reply),
            "Putin and Trump met in Alaska. The talks ended without a deal. Moscow accused Kyiv \
             of sabotage, RT reported. \"Light at the end of the tunnel\""
        );
        // A paragraph stays as it is.
        assert_eq!(paragraph_from_list("One. Two."), "One. Two.");
    }

    #[test]
    fn a_sentence_said_twice_is_counted() {
        let sentences = [
            "Gary Locke will be confirmed as Kilmarnock's permanent manager on Friday.",
            "The former Hearts boss will be given a three-year deal.",
            "Kilmarnock will confirm Gary Locke as the club's new permanent manager on Friday.",
            "Gary Locke will be confirmed as Kilmarnock manager on Friday.",
        ];
        assert_eq!(repeated_sentences(&sentences), 1);
    }
}
