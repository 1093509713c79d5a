//! Words: folding accents and case, word tokens with their offsets.

/// Lower case, without accents, for comparing words across French and English.
pub(super) fn fold(word: &str) -> String {
    word.chars()
        .flat_map(char::to_lowercase)
        .map(|c| match c {
            'à' | 'â' | 'ä' | 'á' => 'a',
            'é' | 'è' | 'ê' | 'ë' => 'e',
            'î' | 'ï' | 'í' => 'i',
            'ô' | 'ö' | 'ó' => 'o',
            'ù' | 'û' | 'ü' | 'ú' => 'u',
            'ç' => 'c',
            'ÿ' => 'y',
            '’' => '\'',
            c => c,
        })
        .collect()
}

/// Folded words of the text (letters, digits, inner hyphens and apostrophes split off).
pub(super) fn normalised_words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(fold)
        .collect()
}

/// The words of [`normalised_words`] with the byte range each takes in `text`.
pub(super) fn normalised_word_spans(text: &str) -> Vec<(std::ops::Range<usize>, String)> {
    let mut spans = Vec::new();
    let mut start = None;
    for (i, c) in text.char_indices().chain([(text.len(), ' ')]) {
        match (c.is_alphanumeric(), start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                spans.push((s..i, fold(&text[s..i])));
                start = None;
            }
            _ => {}
        }
    }
    spans
}

/// Word tokens with their byte offsets.
pub(super) fn tokens(text: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in text.char_indices() {
        let part = c.is_alphanumeric() || (start.is_some() && matches!(c, '-' | '.' | ','));
        match (part, start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                out.push((s, &text[s..i]));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        out.push((s, &text[s..]));
    }
    // Trailing punctuation belongs to the sentence, not the token.
    out.into_iter()
        .map(|(s, t)| (s, t.trim_end_matches(['-', '.', ','])))
        .filter(|(_, t)| !t.is_empty())
        .collect()
}
