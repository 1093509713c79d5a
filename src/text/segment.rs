//! Sentence segmentation for French and English news text.
//!
//! Sentences are returned as contiguous byte ranges that cover the whole paragraph (trailing
//! whitespace belongs to the sentence before it), so joining them gives the paragraph back.
//!
//! The maintained candidate, `sentencex` 0.1.33 (Wikimedia), was run on this module's test
//! cases: it keeps quotations whole and gets the English cases right, but in French it splits
//! "M. | Peskov a parlé", "Le 1er janv. | 2024" and "le 7 oct. | dernier", which would cut the
//! names and dates of nearly every French news article. The rules here are few and each has a
//! test.

use std::ops::Range;

/// Words that end with a period without ending a sentence (compared without the period).
/// "etc." is deliberately absent: in news text it ends its sentence far more often than not,
/// and the next word's case settles it.
const ABBREVIATIONS: &[&str] = &[
    // French
    "M", "MM", "Mme", "Mmes", "Mlle", "Mlles", "Dr", "Pr", "Me", "Mgr", "St", "Ste", "av", "apr",
    "J.-C", "cf", "env", "ex", "p", "pp", "vol", "n", "no", "art", "al", "janv", "févr", "avr",
    "juil", "sept", "oct", "nov", "déc", "boul", "bd", "hab", "min", "max", // English
    "Mr", "Mrs", "Ms", "Prof", "Gen", "Gov", "Sen", "Rep", "Jr", "Sr", "Lt", "Col", "Sgt", "Capt",
    "Inc", "Ltd", "Co", "Corp", "vs", "No", "Jan", "Feb", "Mar", "Apr", "Aug", "Sep", "Sept",
    "Oct", "Nov", "Dec", "U.S", "U.K", "U.N", "e.g", "i.e", "a.m", "p.m", "approx", "est", "Mt",
    "Ft", "Rev", "Hon", "Gov", "Pres", "Dept", "Univ",
];

/// A quotation no longer than this (in bytes) is kept whole even when it holds several
/// sentences: splitting « C'est fini. Nous partons », a-t-il dit. would leave fragments that
/// mean nothing alone. Longer quotations are split inside, so that no "sentence" becomes a
/// whole paragraph.
const MAX_WHOLE_QUOTE: usize = 400;

/// Punctuation that may close a sentence after its terminator: quotes and brackets.
fn is_closing(c: char) -> bool {
    matches!(c, '»' | '”' | '"' | '’' | '\'' | ')' | ']')
}

fn is_terminator(c: char) -> bool {
    matches!(c, '.' | '!' | '?' | '…')
}

fn is_space(c: char) -> bool {
    c.is_whitespace() || c == '\u{a0}' || c == '\u{202f}'
}

/// Could a sentence start with this character?
fn is_sentence_start(c: char) -> bool {
    c.is_uppercase()
        || c.is_ascii_digit()
        || matches!(
            c,
            '«' | '“' | '"' | '‘' | '\'' | '(' | '[' | '¿' | '¡' | '—' | '–' | '-' | '>' | '•'
        )
}

/// The byte ranges of the sentences of `text`, covering it entirely.
pub fn sentence_spans(text: &str) -> Vec<Range<usize>> {
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let quotes = quotation_ranges(&chars);
    let mut spans = Vec::new();
    let mut start = 0;
    let cut = |spans: &mut Vec<Range<usize>>, start: &mut usize, end: usize| {
        if end > *start && end < text.len() {
            spans.push(*start..end);
            *start = end;
        }
    };
    let mut i = 0;
    while i < chars.len() {
        let (at, c) = chars[i];
        // A line break always ends a sentence: lines inside a paragraph are headings, list
        // items or trailer lines, never one sentence wrapped.
        if c == '\n' {
            let mut k = i + 1;
            while k < chars.len() && is_space(chars[k].1) {
                k += 1;
            }
            cut(&mut spans, &mut start, byte_at(&chars, k, text.len()));
            i = k;
            continue;
        }
        // A `>>>` teaser ("Voir aussi", "Lire la suite") starts a sentence of its own.
        if c == '>' && text[at..].starts_with(">>") && at > start {
            let preceded_by_space = text[..at].chars().next_back().is_some_and(is_space);
            if preceded_by_space {
                cut(&mut spans, &mut start, at);
            }
            while i < chars.len() && chars[i].1 == '>' {
                i += 1;
            }
            continue;
        }
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
            } else if is_space(cj) && cj != '\n' {
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
        while k < chars.len() && is_space(chars[k].1) && chars[k].1 != '\n' {
            k += 1;
        }
        let at_end = k == chars.len();
        let next_is_break = k < chars.len() && chars[k].1 == '\n';
        let boundary = !at_end
            && !next_is_break
            && k > j
            && is_sentence_start(chars[k].1)
            && !(c == '.' && j == i + 1 && is_abbreviation(text, at))
            && !is_elision_mark(&chars, i)
            && !quotes.iter().any(|q| q.start < i && k <= q.end);
        if boundary {
            cut(&mut spans, &mut start, chars[k].0);
        }
        i = k.max(i + 1);
    }
    if start < text.len() || spans.is_empty() {
        spans.push(start..text.len());
    }
    spans
}

fn byte_at(chars: &[(usize, char)], index: usize, len: usize) -> usize {
    chars.get(index).map_or(len, |&(b, _)| b)
}

/// `[…]`, `(...)`: the mark of words left out of a quotation, not the end of a sentence.
fn is_elision_mark(chars: &[(usize, char)], i: usize) -> bool {
    let mut before = i;
    while before > 0 && is_terminator(chars[before - 1].1) {
        before -= 1;
    }
    let opened = before > 0 && matches!(chars[before - 1].1, '[' | '(');
    let mut after = i;
    while after < chars.len() && is_terminator(chars[after].1) {
        after += 1;
    }
    let closed = after < chars.len() && matches!(chars[after].1, ']' | ')');
    opened && closed
}

/// Char-index ranges `open..close` of quotations short enough to keep whole: « … », “ … ” and
/// straight double quotes (an opening one follows a space or a bracket). Single quotes are left
/// out because ’ is also the apostrophe.
fn quotation_ranges(chars: &[(usize, char)]) -> Vec<Range<usize>> {
    let mut ranges = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let (at, c) = chars[i];
        let closer = match c {
            '«' => Some('»'),
            '“' => Some('”'),
            '"' if i == 0 || matches!(chars[i - 1].1, '(' | '[') || is_space(chars[i - 1].1) => {
                Some('"')
            }
            _ => None,
        };
        let Some(closer) = closer else {
            i += 1;
            continue;
        };
        match (i + 1..chars.len()).find(|&j| chars[j].1 == closer) {
            Some(j) => {
                if chars[j].0 - at <= MAX_WHOLE_QUOTE {
                    ranges.push(i..j);
                }
                i = j + 1;
            }
            None => i += 1,
        }
    }
    ranges
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
        .find(|&(_, c)| is_space(c) || matches!(c, '(' | '«' | '“' | '"' | '\'' | '‘'))
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
    fn quotations_spanning_sentence_ends_stay_whole() {
        assert_eq!(
            split("« C'est fini. Nous partons », a-t-il dit. Puis il est parti."),
            [
                "« C'est fini. Nous partons », a-t-il dit.",
                "Puis il est parti."
            ]
        );
        assert_eq!(
            split(
                "He said: “It is over. We leave tonight.” Then he left. \"Really? Yes,\" she said."
            ),
            [
                "He said: “It is over. We leave tonight.”",
                "Then he left.",
                "\"Really? Yes,\" she said."
            ]
        );
        // An unclosed or very long quotation does not swallow the paragraph.
        assert_eq!(split("« Un. Deux. Trois").len(), 3);
        let long = format!("« {} » Fin.", "Une phrase assez longue ici. ".repeat(20));
        assert!(split(&long).len() > 10);
    }

    #[test]
    fn french_titles_etc_and_elisions() {
        assert_eq!(
            split("MM. Poutine et Trump, Mme Dupont et le Dr Martin sont venus. Il y avait des pommes, des poires, etc. Le lendemain, rien. Il a dit « nous allons […] gagner » hier."),
            [
                "MM. Poutine et Trump, Mme Dupont et le Dr Martin sont venus.",
                "Il y avait des pommes, des poires, etc.",
                "Le lendemain, rien.",
                "Il a dit « nous allons […] gagner » hier."
            ]
        );
        assert_eq!(
            split("St. Louis is in the U.S. and Mr. Smith lives at No. 5. He left."),
            [
                "St. Louis is in the U.S. and Mr. Smith lives at No. 5.",
                "He left."
            ]
        );
    }

    #[test]
    fn dates_and_numbers() {
        assert_eq!(
            split("Le 1er janv. 2024, le taux était de 3,5 %. Le 15.08.2025 aussi. En 2024. 12 personnes sont venues le 7 oct. dernier."),
            [
                "Le 1er janv. 2024, le taux était de 3,5 %.",
                "Le 15.08.2025 aussi.",
                "En 2024.",
                "12 personnes sont venues le 7 oct. dernier."
            ]
        );
        assert_eq!(
            split("On Jan. 5, 2024 at 5 p.m. sharp, growth hit 3.5%. Then it fell."),
            [
                "On Jan. 5, 2024 at 5 p.m. sharp, growth hit 3.5%.",
                "Then it fell."
            ]
        );
    }

    #[test]
    fn teaser_lines_and_line_breaks() {
        assert_eq!(
            split("Fin de l'article. >>> Les lecteurs sont invités à regarder plus de vidéos : Le président"),
            [
                "Fin de l'article.",
                ">>> Les lecteurs sont invités à regarder plus de vidéos : Le président"
            ]
        );
        assert_eq!(
            split("Titre sans point\nPremière phrase. Deuxième\n\nSource : https://x.vn/a.html"),
            [
                "Titre sans point",
                "Première phrase.",
                "Deuxième",
                "Source : https://x.vn/a.html"
            ]
        );
    }

    #[test]
    fn empty_and_whitespace() {
        let spans = sentence_spans("");
        assert_eq!(spans.len(), 1);
        assert!(spans[0].is_empty());
        assert_eq!(split("   "), [""]);
    }
}
