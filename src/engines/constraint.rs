//! Constrained decoding over the text of tokens: the output may write only the numbers it is
//! given (digit strings with their separators left out, from `fidelity::digit_forms`), after a
//! month's name only the days it is given (`fidelity::day_forms`) or a year, and a month the
//! source gives as a part ("mi-août") only with that part (`fidelity::qualified_months`); and
//! it may not end before it has written the words a repair must bring back
//! (`fidelity::required_word`).

use std::cell::RefCell;

use crate::infer::decode::TokenConstraint;
use crate::text::ENGLISH_MONTHS;
use crate::tokenize::GgufTokenizer;

/// Generated tokens looked back over to find the number being written: Qwen writes one digit a
/// token, so this holds a 16-digit number with its separators.
const LOOK_BACK: usize = 32;

/// The numbers and dates a translation may write.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FactRules {
    /// Digit strings without separators ("1,000" is "1000"), each as many times as the output
    /// may write it.
    pub numbers: Vec<String>,
    /// The days of the month the source gives: the only numbers allowed after a month's name,
    /// with the years among `numbers` ("August 2025", never "August 15" for « mi-août »).
    pub days: Vec<String>,
    /// Months named only with what must come just before them: ("August", ["mid-", ...]).
    pub qualified_months: Vec<(String, Vec<String>)>,
    /// The only numbers that may be written with a decimal point, as written ("1.3517").
    pub decimals: Vec<String>,
}

impl FactRules {
    /// Whether `number` may stand where it is: after a month's name or not, with `written`
    /// the digits of the numbers before it.
    fn allows(&self, number: &Number, after_month: bool, written: &[String]) -> bool {
        if !number.grouped_in_thousands() {
            return false;
        }
        if let Some(point) = number.decimal() {
            return self.decimals.iter().any(|form| {
                if number.open {
                    form.starts_with(&point)
                } else {
                    *form == point
                }
            });
        }
        let fits = |form: &String| {
            if number.open {
                form.starts_with(&number.digits) && number.can_become(form)
            } else {
                *form == number.digits
            }
        };
        // A number of the source used up may not be written again: "50,000 homes … just
        // after 5 PM" for « 50 000 foyers … peu après midi » was turned into "5.00.00 PM".
        let unused = |form: &&String| {
            let count = |list: &[String]| list.iter().filter(|d| d == form).count();
            count(written) < count(&self.numbers)
        };
        if after_month {
            self.days.iter().any(fits)
                || self
                    .numbers
                    .iter()
                    .filter(|f| f.len() == 4)
                    .filter(unused)
                    .any(fits)
        } else {
            self.numbers.iter().filter(unused).any(fits)
        }
    }
}

/// Whether `text` ends with a month's name and a space ("August ", "Aug. ").
fn ends_with_month(text: &[u8]) -> bool {
    let Some(text) = text.strip_suffix(b" ") else {
        return false;
    };
    ENGLISH_MONTHS.iter().any(|month| {
        let month = month.as_bytes();
        text.ends_with(month)
            || text
                .strip_suffix(b".")
                .is_some_and(|t| t.ends_with(&month[..3]))
    })
}

/// Allows a token unless it writes, extends or ends a number that the rules do not allow: a
/// number still being written must be the start of an allowed one, and a finished one must be
/// allowed whole. "1,000" and "1.5" are one number each ("1000", "15"); "15, 237" is two.
pub struct KeepsToFacts<'a> {
    tokenizer: &'a GgufTokenizer,
    rules: &'a FactRules,
    /// The digits of the numbers before the look-back window, for the window starting at
    /// the given token: the same for every token tried at one step (all of the vocabulary
    /// when the most likely one is refused), so read once.
    earlier_numbers: RefCell<Option<(usize, Vec<String>)>>,
}

impl<'a> KeepsToFacts<'a> {
    pub fn new(tokenizer: &'a GgufTokenizer, rules: &'a FactRules) -> Self {
        Self {
            tokenizer,
            rules,
            earlier_numbers: RefCell::new(None),
        }
    }

    /// The digits of the numbers in `earlier`, the first `split` generated tokens.
    fn earlier_numbers(&self, earlier: &[u32]) -> Vec<String> {
        let mut cache = self.earlier_numbers.borrow_mut();
        match &*cache {
            Some((split, digits)) if *split == earlier.len() => digits.clone(),
            _ => {
                let digits: Vec<String> = numbers_in(&self.text(earlier))
                    .into_iter()
                    .map(|n| n.digits)
                    .collect();
                *cache = Some((earlier.len(), digits.clone()));
                digits
            }
        }
    }

    fn text(&self, tokens: &[u32]) -> Vec<u8> {
        tokens
            .iter()
            .flat_map(|&t| self.tokenizer.text_piece(t).iter().copied())
            .collect()
    }
}

impl TokenConstraint for KeepsToFacts<'_> {
    fn allows(&self, generated: &[u32], token: u32) -> bool {
        let piece = self.tokenizer.text_piece(token);
        let split = generated.len().saturating_sub(LOOK_BACK);
        let (earlier, back) = generated.split_at(split);
        let mut text = self.text(back);
        let touched = text.len();
        let ends_in_number = text
            .iter()
            .rev()
            .find(|b| !matches!(b, b',' | b'.'))
            .is_some_and(u8::is_ascii_digit);
        let writes_number = ends_in_number || piece.iter().any(u8::is_ascii_digit);
        text.extend_from_slice(piece);
        // A token without text (the end token) ends the number being written: "1,351" may
        // go on to 1,3517, but may not stop there.
        if piece.is_empty() {
            text.push(b' ');
        }
        let numbers_kept = !writes_number || {
            let numbers = numbers_in(&text);
            let (judged, before): (Vec<Number>, Vec<Number>) = numbers
                .into_iter()
                .partition(|n| n.end >= touched || n.open);
            // The numbers written before, counted only now that one is being written: those
            // before the window and those in it (a number the window's start cuts is counted
            // as two pieces, which match no whole number of the source).
            let mut written = self.earlier_numbers(earlier);
            written.extend(before.into_iter().map(|n| n.digits));
            judged.iter().all(|n| {
                self.rules
                    .allows(n, ends_with_month(&text[..n.start]), &written)
            })
        };
        numbers_kept && self.rules.months_qualified(&text, touched)
    }
}

/// Refuses to end the reply's last sentence (its `sentences`-th: a full stop, question or
/// exclamation mark not after a digit) or the reply itself (a token without text: the end of
/// the turn) before it has written each of `words` as a word of its own, in any case: a repair
/// of a translation that dropped "Wednesday" may not drop it again, where a hint alone was
/// ignored. Refused only its end, the model wrote the sentence as before and then went on
/// talking; refused the end of its sentence, it has to fit the word in.
pub struct WritesWords<'a> {
    tokenizer: &'a GgufTokenizer,
    words: &'a [String],
    sentences: usize,
    /// The text of the tokens generated so far and the sentences it has ended, by the tokens'
    /// count: the same for every token tried at one step (all of the vocabulary when the most
    /// likely one is refused).
    text: RefCell<(usize, String, usize)>,
}

impl<'a> WritesWords<'a> {
    pub fn new(tokenizer: &'a GgufTokenizer, words: &'a [String], sentences: usize) -> Self {
        Self {
            tokenizer,
            words,
            sentences,
            text: RefCell::new((0, String::new(), 0)),
        }
    }
}

impl TokenConstraint for WritesWords<'_> {
    fn allows(&self, generated: &[u32], token: u32) -> bool {
        let piece = self.tokenizer.text_piece(token);
        let mut cache = self.text.borrow_mut();
        if cache.0 != generated.len() {
            let bytes: Vec<u8> = generated
                .iter()
                .flat_map(|&t| self.tokenizer.text_piece(t).iter().copied())
                .collect();
            let text = String::from_utf8_lossy(&bytes).into_owned();
            let ended = sentence_ends(&text);
            *cache = (generated.len(), text, ended);
        }
        let (_, text, ended) = &*cache;
        let ends_last_sentence = || {
            let ends = |c: char| matches!(c, '.' | '!' | '?');
            let after_digit = text.ends_with(|c: char| c.is_ascii_digit());
            let piece = String::from_utf8_lossy(piece);
            piece.trim_start().starts_with(ends) && !after_digit && ended + 1 >= self.sentences
        };
        if !piece.is_empty() && !ends_last_sentence() {
            return true;
        }
        self.words.iter().all(|word| writes_word(text, word))
    }
}

/// Sentences `text` has ended: full stops, question and exclamation marks followed by a space.
pub fn sentence_ends(text: &str) -> usize {
    text.as_bytes()
        .windows(2)
        .filter(|w| matches!(w[0], b'.' | b'!' | b'?') && w[1] == b' ')
        .count()
}

/// Whether `text` has `word` (one or more words) with no letter or digit joined to either end,
/// in any case.
pub fn writes_word(text: &str, word: &str) -> bool {
    let (text, word) = (text.to_lowercase(), word.to_lowercase());
    let joined = |c: Option<char>| c.is_some_and(char::is_alphanumeric);
    text.match_indices(&word).any(|(at, _)| {
        !joined(text[..at].chars().next_back()) && !joined(text[at + word.len()..].chars().next())
    })
}

impl FactRules {
    /// Whether each month named by the text's last part (from `touched` on) comes with what
    /// must stand before it.
    fn months_qualified(&self, text: &[u8], touched: usize) -> bool {
        self.qualified_months.iter().all(|(month, before)| {
            let month = month.as_bytes();
            (0..text.len().saturating_sub(month.len() - 1))
                .filter(|&start| start + month.len() > touched)
                .filter(|&start| text[start..].starts_with(month))
                .all(|start| before.iter().any(|b| text[..start].ends_with(b.as_bytes())))
        })
    }
}

/// A number in English text: its digits, where the character that ends it is (after a
/// separator that follows it: the space of "12, and"), and whether it may still go on (it
/// reaches the end of the text, perhaps with a separator after it).
#[derive(Debug, PartialEq)]
struct Number {
    digits: String,
    /// As written: the digits with their separators.
    written: String,
    start: usize,
    end: usize,
    open: bool,
}

impl Number {
    /// Whether its commas group thousands ("1,000,000"; "20,25" is no number), with at most one
    /// decimal point after them, or it is a code of groups joined by points. A number still being written may end with an incomplete
    /// group.
    fn grouped_in_thousands(&self) -> bool {
        // A code of groups of two digits or more joined by points ("08.11.00.06.95"), as a
        // source may give; "5.00.00 PM" for « midi » is none.
        if self.written.matches('.').count() >= 2 && !self.written.contains(',') {
            let groups: Vec<&str> = self.written.split('.').collect();
            let last = groups.len() - 1;
            return groups
                .iter()
                .enumerate()
                .all(|(i, group)| group.len() >= 2 || (i == last && self.open));
        }
        let (whole, fraction) = match self.written.split_once('.') {
            Some((whole, fraction)) => (whole, Some(fraction)),
            None => (self.written.as_str(), None),
        };
        if fraction.is_some_and(|f| f.contains([',', '.'])) {
            return false;
        }
        let groups: Vec<&str> = whole.split(',').collect();
        let last = groups.len() - 1;
        groups.len() == 1
            || groups.iter().enumerate().all(|(i, group)| match i {
                0 => (1..=3).contains(&group.len()),
                i if i == last && self.open && fraction.is_none() => group.len() <= 3,
                _ => group.len() == 3,
            })
    }
}

impl Number {
    /// The number as English writes a decimal ("1351.7" for "1,351.7"), when it has a digit
    /// after one decimal point; a code of groups joined by points is no decimal.
    fn decimal(&self) -> Option<String> {
        let (whole, fraction) = self.written.split_once('.')?;
        let one_point = !fraction.contains('.');
        (one_point && !fraction.is_empty())
            .then(|| format!("{}.{fraction}", whole.replace(',', "")))
    }

    /// Whether this number, still being written, can go on to become `form` (whose first
    /// digits it has) with its thousands grouped: "20," cannot become 2025, "2," can.
    fn can_become(&self, form: &str) -> bool {
        if self.written.contains('.') {
            return true;
        }
        let mut groups = self.written.split(',');
        let first = groups.next().unwrap_or_default().len();
        let commas = groups.count();
        if commas == 0 {
            return true;
        }
        // The whole part ends up with `first` digits and whole groups of three; what remains
        // of `form` after it is a decimal fraction.
        let least = self.digits.len().max(first + 3 * commas);
        (least..=form.len()).any(|whole| (whole - first).is_multiple_of(3))
    }
}

/// The numbers of `text`: digits with single commas or points between them.
fn numbers_in(text: &[u8]) -> Vec<Number> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < text.len() {
        if !text[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        let start = i;
        let mut digits = String::new();
        let mut written = String::new();
        let mut end = i;
        while i < text.len() {
            let c = text[i];
            if c.is_ascii_digit() || matches!(c, b',' | b'.') {
                written.push(char::from(c));
            }
            if c.is_ascii_digit() {
                digits.push(char::from(c));
                i += 1;
                end = i;
            } else if matches!(c, b',' | b'.') {
                match text.get(i + 1) {
                    Some(next) if next.is_ascii_digit() => i += 1,
                    // At the end of the text: the number may go on ("12," before "000").
                    None => {
                        i += 1;
                        end = i;
                    }
                    // "12, and": the space ends it.
                    Some(_) => {
                        end = i + 1;
                        break;
                    }
                }
            } else {
                break;
            }
        }
        let open = end == text.len();
        // A separator that ended the number is not part of it.
        if !open {
            while written.ends_with([',', '.']) {
                written.pop();
            }
        }
        out.push(Number {
            digits,
            written,
            start,
            end,
            open,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_required_word_counts_only_as_a_word_of_its_own() {
        assert!(writes_word("It was announced on Wednesday.", "wednesday"));
        assert!(writes_word("WEDNESDAY: the budget", "Wednesday"));
        assert!(writes_word("in early October 2025", "October"));
        assert!(!writes_word("It was announced.", "Wednesday"));
        assert!(!writes_word("the Wednesdays of the month", "Wednesday"));
        assert!(!writes_word("Octobers", "October"));
        assert!(writes_word(
            "La Presse Canadienne said",
            "la presse canadienne"
        ));
    }

    #[test]
    fn sentences_end_at_a_mark_and_a_space() {
        assert_eq!(sentence_ends("It rose 3.5% on Monday. Then"), 1);
        assert_eq!(sentence_ends("Why? Because! It did."), 2);
        assert_eq!(sentence_ends("No end yet"), 0);
    }

    #[test]
    fn numbers_with_separators_are_one_and_open_ones_are_marked() {
        let found = numbers_in(b"15, 237 and 1,000.5 on 3");
        let digits: Vec<(&str, bool)> = found.iter().map(|n| (n.digits.as_str(), n.open)).collect();
        assert_eq!(
            digits,
            [("15", false), ("237", false), ("10005", false), ("3", true)]
        );
        assert!(numbers_in(b"about 12,").last().unwrap().open);
        assert!(!numbers_in(b"12, and").last().unwrap().open);
    }

    #[test]
    fn after_a_month_only_the_sources_days_and_years() {
        let rules = FactRules {
            numbers: vec!["2025".into(), "15".into(), "8".into()],
            days: vec!["8".into()],
            ..FactRules::default()
        };
        let check = |text: &[u8]| {
            numbers_in(text)
                .iter()
                .all(|n| rules.allows(n, ends_with_month(&text[..n.start]), &[]))
        };
        assert!(check(b"in mid-August 2025, 15 people"));
        assert!(!check(b"On August 15, 2025"));
        assert!(check(b"On October 8, 2025"));
        assert!(!check(b"On Aug. 15"));
        assert!(check(b"On August 2"), "open: may become 2025");
        assert!(!check(b"On August 20,25"));
        assert!(check(b"about 2,0"), "open: may become 2,025");
        assert!(!check(b"On August 20,"), "2025 cannot be grouped so");
        let phone = FactRules {
            numbers: vec!["0811000695".into()],
            ..FactRules::default()
        };
        let n = &numbers_in(b"call 08.11.00.06.95 now")[0];
        assert!(phone.allows(n, false, &[]));
        let noon = FactRules {
            numbers: vec!["50000".into()],
            ..FactRules::default()
        };
        // newstest2014-fr: « peu après midi », with « 50 000 foyers » in the same sentence.
        assert!(!noon.allows(&numbers_in(b"just after 5.00.00 PM")[0], false, &[]));
        let five = &numbers_in(b"just after 5")[0];
        assert!(noon.allows(five, false, &[]), "may become 50000");
        assert!(
            !noon.allows(five, false, &["50000".to_string()]),
            "50 000 is written already"
        );
        assert!(
            phone.allows(&numbers_in(b"call 08.11.00.0")[0], false, &[]),
            "open"
        );
        assert!(!check(b"about 2,02 "));
        assert!(!check(b"On August 2 "));
    }

    #[test]
    fn a_decimal_point_only_where_the_source_has_a_decimal_comma() {
        // newstest2014-fr: « 1,3517 dollar » came back as "1,351.7 dollars", the same digits.
        let rules = FactRules {
            numbers: vec!["13517".into(), "2013".into(), "836000".into()],
            decimals: vec!["1.3517".into()],
            ..FactRules::default()
        };
        let check = |text: &[u8]| numbers_in(text).iter().all(|n| rules.allows(n, false, &[]));
        assert!(check(b"a low of 1.3517 dollars"));
        assert!(check(b"a low of 1.35"), "open: may become 1.3517");
        assert!(!check(b"a low of 1,351.7 dollars"));
        assert!(!check(b"a low of 1,351.7"));
        assert!(
            check(b"in 2013."),
            "a full stop after a number is no decimal point"
        );
        assert!(!check(b"these 836.000 km"));
        assert!(check(b"these 836,000 km"));
    }
}
