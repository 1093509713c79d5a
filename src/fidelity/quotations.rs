//! Quotations and links.

use super::*;

/// Quoted passages: « … », “ … ” and "…" (single quotes are apostrophes too often to count).
pub(super) fn quotations(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let closer = match chars[i] {
            '«' => '»',
            '“' => '”',
            '"' => '"',
            _ => {
                i += 1;
                continue;
            }
        };
        match (i + 1..chars.len()).find(|&j| chars[j] == closer) {
            Some(j) => {
                let inner: String = chars[i + 1..j].iter().collect();
                let inner = inner.trim();
                if !inner.is_empty() {
                    out.push(inner.to_string());
                }
                i = j + 1;
            }
            None => i += 1,
        }
    }
    out
}

/// Web addresses: words that start with a scheme or `www.`, without trailing punctuation.
pub(super) fn links(text: &str) -> Vec<&str> {
    text.split_whitespace()
        .filter(|w| w.contains("://") || w.starts_with("www."))
        .map(|w| w.trim_end_matches(['.', ',', ';', ')', '»', '"']))
        .collect()
}

pub(super) fn has_quote_marks(text: &str) -> bool {
    text.contains(['«', '»', '“', '”', '"'])
}

/// Folded words joined by single spaces, for finding a quotation in the article whatever its
/// quotation marks, case and spacing.
pub(super) fn normalise_quote(text: &str) -> String {
    let mut s = normalised_words(text).join(" ");
    s.insert(0, ' ');
    s.push(' ');
    s
}
