//! Sentence segmentation for French and English news text.
//!
//! Sentences are returned as contiguous byte ranges that cover the whole paragraph (trailing
//! whitespace belongs to the sentence before it), so joining them gives the paragraph back.

use std::ops::Range;

/// Words that end with a period without ending a sentence (compared without the period).
const ABBREVIATIONS: &[&str] = &[
    // French
    "M", "MM", "Mme", "Mmes", "Mlle", "Mlles", "Dr", "Pr", "Me", "Mgr", "St", "Ste", "av", "apr",
    "J.-C", "cf", "env", "etc", "ex", "p", "pp", "vol", "n", "no", "art", "al", "janv", "févr",
    "avr", "juil", "sept", "oct", "nov", "déc", "boul", "bd", // English
    "Mr", "Mrs", "Ms", "Prof", "Gen", "Gov", "Sen", "Rep", "Jr", "Sr", "Lt", "Col", "Sgt", "Capt",
    "Inc", "Ltd", "Co", "Corp", "vs", "No", "Jan", "Feb", "Mar", "Apr", "Aug", "Sep", "Sept",
    "Oct", "Nov", "Dec", "U.S", "U.K", "U.N", "e.g", "i.e", "a.m", "p.m", "approx", "est",
];

/// Punctuation that may close a sentence after its terminator: quotes and brackets.
fn is_closing(c: char) -> bool {
    matches!(c, '»' | '”' | '"' | '’' | '\'' | ')' | ']')
}

fn is_terminator(c: char) -> bool {
    matches!(c, '.' | '!' | '?' | '…')
}

/// Could a sentence start with this character?
fn is_sentence_start(c: char) -> bool {
    c.is_uppercase()
        || c.is_ascii_digit()
        || matches!(c, '«' | '“' | '"' | '(' | '[' | '¿' | '¡' | '—' | '–' | '-')
}

/// The byte ranges of the sentences of `text`, covering it entirely.
pub fn sentence_spans(text: &str) -> Vec<Range<usize>> {
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let mut spans = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < chars.len() {
        let (_, c) = chars[i];
        if !is_terminator(c) {
            i += 1;
            continue;
        }
        // Extend over repeated terminators ("?!", "...") and closing punctuation, allowing the
        // French space before a closing guillemet ("paix ».").
        let mut j = i + 1;
        while j < chars.len() {
            let cj = chars[j].1;
            if is_terminator(cj) || is_closing(cj) {
                j += 1;
            } else if cj == ' ' || cj == '\u{a0}' || cj == '\u{202f}' {
                if chars.get(j + 1).is_some_and(|&(_, n)| n == '»' || n == '”') {
                    j += 2;
                } else {
                    break;
                }
            } else {
                break;
            }
        }
        // A boundary needs whitespace after it, then a plausible sentence start.
        let mut k = j;
        while k < chars.len() && chars[k].1.is_whitespace() {
            k += 1;
        }
        let at_end = k == chars.len();
        let boundary = !at_end
            && k > j
            && is_sentence_start(chars[k].1)
            && !(c == '.' && j == i + 1 && is_abbreviation(text, chars[i].0));
        if boundary {
            let end = chars[k].0;
            spans.push(start..end);
            start = end;
        }
        i = k.max(i + 1);
    }
    if start < text.len() || spans.is_empty() {
        spans.push(start..text.len());
    }
    spans
}

/// The sentences of `text`, each with its trailing whitespace.
pub fn sentences(text: &str) -> Vec<&str> {
    sentence_spans(text).into_iter().map(|r| &text[r]).collect()
}

/// Is the word ending just before the period at `dot` an abbreviation or an initial?
fn is_abbreviation(text: &str, dot: usize) -> bool {
    let before = &text[..dot];
    let word_start = before
        .char_indices()
        .rev()
        .find(|&(_, c)| c.is_whitespace() || matches!(c, '(' | '«' | '“' | '"' | '\''))
        .map(|(i, c)| i + c.len_utf8())
        .unwrap_or(0);
    let word = &before[word_start..];
    if word.is_empty() {
        return false;
    }
    // An initial: "J. K. Rowling", "Donald J. Trump".
    let mut letters = word.chars();
    if let (Some(first), None) = (letters.next(), letters.next()) {
        if first.is_uppercase() {
            return true;
        }
    }
    ABBREVIATIONS.contains(&word)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(text: &str) -> Vec<&str> {
        let s = sentences(text);
        assert_eq!(s.concat(), text, "sentences must join back to the text");
        s.into_iter().map(str::trim_end).collect()
    }

    #[test]
    fn french_news_sentences() {
        assert_eq!(
            split("M. Peskov a parlé. La Maison Blanche a déclaré qu'il y avait « une lumière au bout du tunnel ». Fin mars, il a changé."),
            [
                "M. Peskov a parlé.",
                "La Maison Blanche a déclaré qu'il y avait « une lumière au bout du tunnel ».",
                "Fin mars, il a changé."
            ]
        );
    }

    #[test]
    fn abbreviations_initials_decimals_and_urls_do_not_split() {
        assert_eq!(
            split("Mr. Smith met Donald J. Trump in the U.S. on Monday. Growth was 3.5 % or 3,5 %. See https://x.vn/a.html now."),
            [
                "Mr. Smith met Donald J. Trump in the U.S. on Monday.",
                "Growth was 3.5 % or 3,5 %.",
                "See https://x.vn/a.html now."
            ]
        );
    }

    #[test]
    fn quotes_and_ellipses() {
        assert_eq!(
            split("Il a dit : « C'est fini. » Puis il est parti… Vraiment ? “Yes.” Done"),
            [
                "Il a dit : « C'est fini. »",
                "Puis il est parti…",
                "Vraiment ?",
                "“Yes.”",
                "Done"
            ]
        );
        assert_eq!(split("Et puis... rien."), ["Et puis... rien."]);
    }

    #[test]
    fn empty_and_whitespace() {
        assert_eq!(sentence_spans(""), vec![0..0]);
        assert_eq!(split("   "), [""]);
    }
}
