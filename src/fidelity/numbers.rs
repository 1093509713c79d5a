//! Numbers: figures, number words and scales ("2 millions" as "2 million"), in either language.

use super::*;

#[derive(Debug, Clone)]
pub(super) struct NumberMention {
    pub(super) text: String,
    /// The value as written, and scaled when a scale word follows ("2 million": 2 and 2e6).
    pub(super) values: Vec<f64>,
}

impl NumberMention {
    pub(super) fn matches(&self, other: &NumberMention) -> bool {
        self.values.iter().any(|a| {
            other
                .values
                .iter()
                .any(|b| (a - b).abs() <= 1e-9 * a.abs().max(1.0))
        })
    }
}

pub(super) const SCALES: &[(&str, f64)] = &[
    ("thousand", 1e3),
    ("mille", 1e3),
    ("million", 1e6),
    ("millions", 1e6),
    ("milliard", 1e9),
    ("milliards", 1e9),
    ("billion", 1e9),
    ("billions", 1e9),
    ("bn", 1e9),
    ("m", 1e6),
];

/// Numbers written with digits, except those inside dates already found, and ordinals of
/// centuries or lists that rarely carry facts are kept too: a number is a number.
pub(super) fn numbers(text: &str, lang: Language, dates: &[DateMention]) -> Vec<NumberMention> {
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let (start, c) = chars[i];
        let preceded_by_word = i > 0 && chars[i - 1].1.is_alphabetic();
        if !c.is_ascii_digit() {
            i += 1;
            continue;
        }
        if preceded_by_word {
            // "G7", the "30" of "14h30": part of a word, not a quantity.
            while i < chars.len() && chars[i].1.is_ascii_digit() {
                i += 1;
            }
            continue;
        }
        // A code of digit groups joined by points (the phone number "08.11.00.06.95", the
        // date "12.03.2021"), copied as it is by a translation: one mention, its digits.
        let code: String = chars[i..]
            .iter()
            .map(|&(_, c)| c)
            .take_while(|&c| c.is_ascii_digit() || c == '.')
            .collect();
        let code = code.trim_end_matches('.');
        if code.matches('.').count() >= 2 && !code.contains("..") {
            let length = code.chars().count();
            let end = chars.get(i + length).map_or(text.len(), |&(b, _)| b);
            i += length;
            let in_date = dates.iter().any(|d| d.span.0 <= start && end <= d.span.1);
            let digits: String = code.chars().filter(char::is_ascii_digit).collect();
            if let (false, Ok(value)) = (in_date, digits.parse::<f64>()) {
                out.push(NumberMention {
                    text: code.to_string(),
                    values: vec![value],
                });
            }
            continue;
        }
        // Digits, with the separators of the language between groups.
        let mut j = i;
        let mut raw = String::new();
        while j < chars.len() {
            let cj = chars[j].1;
            let next_digit = chars.get(j + 1).is_some_and(|&(_, n)| n.is_ascii_digit());
            let group_of_three = (j + 1..j + 4)
                .all(|k| chars.get(k).is_some_and(|&(_, n)| n.is_ascii_digit()))
                && !chars.get(j + 4).is_some_and(|&(_, n)| n.is_ascii_digit());
            let separator = next_digit
                && match lang {
                    Language::French => {
                        (matches!(cj, ' ' | '\u{a0}' | '\u{202f}' | '\u{2009}' | '.')
                            && group_of_three)
                            || cj == ','
                    }
                    Language::English => (cj == ',' && group_of_three) || cj == '.',
                };
            if !cj.is_ascii_digit() && !separator {
                break;
            }
            raw.push(cj);
            j += 1;
        }
        let end = chars.get(j).map_or(text.len(), |&(b, _)| b);
        let in_date = dates.iter().any(|d| d.span.0 <= start && end <= d.span.1);
        // A time: "11:00", "11 h", "11h30". The hour is a number like any other (and 2 p.m.
        // may be written 14 h); the minutes count only when they are not zero.
        let clock = match (lang, chars.get(j).map(|c| c.1)) {
            (Language::English, Some(':')) | (Language::French, Some('h')) => {
                let minutes: String = chars[j + 1..]
                    .iter()
                    .map(|c| c.1)
                    .take_while(char::is_ascii_digit)
                    .collect();
                let after = chars.get(j + 1 + minutes.len()).map(|c| c.1);
                let well_formed = (minutes.len() == 2
                    || (lang == Language::French && minutes.is_empty()))
                    && !after.is_some_and(char::is_alphabetic);
                well_formed.then_some(minutes)
            }
            _ => None,
        };
        if let Some(minutes) = clock {
            i = j + 1 + minutes.len();
            if in_date {
                continue;
            }
            if let Ok(hour) = raw.parse::<f64>() {
                out.push(NumberMention {
                    text: text[start..end].to_string(),
                    values: clock_values(hour, text, chars.get(i).map_or(text.len(), |c| c.0)),
                });
            }
            if let Ok(m) = minutes.parse::<f64>() {
                if m > 0.0 {
                    out.push(NumberMention {
                        text: minutes.clone(),
                        values: vec![m],
                    });
                }
            }
            continue;
        }
        let followed_by_letter = chars.get(j).is_some_and(|&(_, n)| n.is_alphabetic());
        // "the 1950s", "the 80s": the decade « les années 1950 », « les années 80 ».
        let decade = lang == Language::English
            && raw.ends_with('0')
            && chars.get(j).is_some_and(|&(_, n)| n == 's')
            && !chars.get(j + 1).is_some_and(|&(_, n)| n.is_alphabetic());
        // "1er", "2nd", "3D", "5G": ordinals and codes, not quantities to compare.
        let ordinal_or_code = followed_by_letter && !decade;
        i = j.max(i + 1);
        if in_date || ordinal_or_code {
            continue;
        }
        let Some(value) = parse_number(&raw, lang) else {
            continue;
        };
        if decade {
            // « les années 80 » is "the 1980s" as well as "the 80s".
            let mut values = vec![value];
            if value >= 1000.0 {
                values.push(value % 100.0);
            }
            out.push(NumberMention {
                text: text[start..=chars[j].0].to_string(),
                values,
            });
            i = j + 1;
            continue;
        }
        // "6 p.m." is 18 h as much as "6:00 p.m." is.
        let mut values = match lang {
            Language::English => clock_values(value, text, end),
            Language::French => vec![value],
        };
        let rest = text[end..].trim_start();
        let next_word: String = rest.chars().take_while(|c| c.is_alphabetic()).collect();
        let mut shown = text[start..end].to_string();
        if let Some(&(word, scale)) = SCALES
            .iter()
            .find(|(w, _)| next_word.eq_ignore_ascii_case(w))
        {
            values.push(value * scale);
            shown = format!("{shown} {word}");
        }
        out.push(NumberMention {
            text: shown,
            values,
        });
    }
    out
}

/// The digit strings, separators left out, that an English rendering of `french` may write
/// (what constrained decoding allows): each number as written, its groups joined ("15 237"
/// gives "15237", "1,36" gives "136", the phone number "08.11.00.06.95" gives "0811000695"),
/// also without leading zeros (the phone number as "811000695" too); each number the check
/// reads; a value scaled by its word ("2,5 millions" gives "2500000"); an hour of
/// the afternoon on the 12-hour clock ("18 heures" gives "6"); and the figures of number words
/// ("trois" gives "3"; not "un", mostly an article). A group of a number is not a number of its own: "15 237" does not
/// allow "15". A form comes once for each number of the source that reads so: how many times
/// the translation may write it.
pub fn digit_forms(french: &str) -> Vec<String> {
    source_numbers(french)
        .into_iter()
        .filter(|n| !n.article)
        .flat_map(|n| n.forms)
        .collect()
}

/// The numbers of `french` that have a decimal fraction, as English writes them: "1,3517" gives
/// "1.3517", "2,50" gives "2.50" and "2.5". A number written with a decimal point may only be
/// one of these: its digits alone would let "1,3517" become "1,351.7", which the check reads
/// as another number.
pub fn decimal_forms(french: &str) -> Vec<String> {
    let mut forms: Vec<String> = Vec::new();
    for mention in numbers(french, Language::French, &[]) {
        let Some(&value) = mention.values.first() else {
            continue;
        };
        if value.fract() == 0.0 || !value.is_finite() {
            continue;
        }
        let written: String = mention
            .text
            .chars()
            .take_while(|c| c.is_ascii_digit() || matches!(c, ',' | '.'))
            .collect();
        let places = written.rsplit_once(',').map_or(0, |(_, f)| f.len());
        for form in [format!("{value}"), format!("{value:.places$}")] {
            if !forms.contains(&form) {
                forms.push(form);
            }
        }
    }
    forms
}

/// One number of a French text, as `digit_forms` reads it.
struct SourceNumber {
    /// The digit strings an English rendering of it may write.
    forms: Vec<String>,
    /// "un" or "une": far more often the article than the number.
    article: bool,
}

/// Each number of the French text once: a group of digits with the forms of the number the
/// check reads there, or a number word.
fn source_numbers(french: &str) -> Vec<SourceNumber> {
    fn add(forms: &mut Vec<String>, digits: String) {
        let significant = match digits.trim_start_matches('0') {
            "" if !digits.is_empty() => "0".to_string(),
            rest => rest.to_string(),
        };
        for form in [digits, significant] {
            if !form.is_empty() && !forms.contains(&form) {
                forms.push(form);
            }
        }
    }
    // The digits with their separators, and where they are.
    let mut spans: Vec<(usize, usize, Vec<String>)> = Vec::new();
    let chars: Vec<(usize, char)> = french.char_indices().collect();
    let mut i = 0;
    while i < chars.len() {
        if !chars[i].1.is_ascii_digit() {
            i += 1;
            continue;
        }
        let start = chars[i].0;
        let mut digits = String::new();
        while i < chars.len() {
            let c = chars[i].1;
            if c.is_ascii_digit() {
                digits.push(c);
                i += 1;
            } else if is_digit_separator(c)
                && chars.get(i + 1).is_some_and(|n| n.1.is_ascii_digit())
            {
                i += 1;
            } else {
                break;
            }
        }
        let end = chars.get(i).map_or(french.len(), |c| c.0);
        let mut forms = Vec::new();
        add(&mut forms, digits);
        spans.push((start, end, forms));
    }
    // Each number the check reads joins the group of digits it starts in.
    let mut cursor = 0;
    for mention in numbers(french, Language::French, &[]) {
        let Some(at) = french[cursor..]
            .find(mention.text.as_str())
            .map(|at| at + cursor)
        else {
            continue;
        };
        cursor = at;
        let Some(span) = spans.iter_mut().find(|(s, e, _)| (*s..*e).contains(&at)) else {
            continue;
        };
        add(
            &mut span.2,
            mention.text.chars().filter(char::is_ascii_digit).collect(),
        );
        for value in mention.values {
            if value.fract() == 0.0 && (0.0..1e15).contains(&value) {
                add(&mut span.2, format!("{}", value as u64));
                if (13.0..24.0).contains(&value) {
                    add(&mut span.2, format!("{}", value as u64 - 12));
                }
            }
        }
    }
    let mut out: Vec<SourceNumber> = spans
        .into_iter()
        .map(|(_, _, forms)| SourceNumber {
            forms,
            article: false,
        })
        .collect();
    for word in normalised_words(french) {
        if let Some((_, value)) = NUMBER_WORDS_FR.iter().find(|(w, _)| *w == word) {
            if value.fract() == 0.0 {
                out.push(SourceNumber {
                    forms: vec![format!("{}", *value as u64)],
                    article: matches!(word.as_str(), "un" | "une"),
                });
            }
        }
    }
    out
}

/// The numbers a repaired translation `after` writes more often than both the source and the
/// translation it replaces (`before`): a repair that fills a gap with another number of the
/// source ("43 lives" from « un patient de 43 ans ») gives itself away so. Digit strings, as
/// `digit_forms` gives them.
pub fn overused_numbers(french: &str, before: &str, after: &str) -> Vec<String> {
    let source = source_numbers(french);
    let before = english_numbers(before);
    let after = english_numbers(after);
    let mut out: Vec<String> = Vec::new();
    for digits in &after {
        let count = |list: &[String]| list.iter().filter(|d| *d == digits).count();
        let in_source = source.iter().filter(|n| n.forms.contains(digits)).count();
        if count(&after) > count(&before) && count(&after) > in_source && !out.contains(digits) {
            out.push(digits.clone());
        }
    }
    out
}

/// Every number of an English text, ordinals included, as its digits ("40,000" is "40000"),
/// and the cardinal number words ("two" is "2").
fn english_numbers(english: &str) -> Vec<String> {
    let chars: Vec<char> = english.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if !chars[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        let mut digits = String::new();
        while i < chars.len() {
            if chars[i].is_ascii_digit() {
                digits.push(chars[i]);
                i += 1;
            } else if matches!(chars[i], ',' | '.')
                && chars.get(i + 1).is_some_and(char::is_ascii_digit)
            {
                i += 1;
            } else {
                break;
            }
        }
        out.push(digits);
    }
    const NOT_CARDINAL: [&str; 6] = ["one", "first", "second", "both", "half", "dozen"];
    for word in normalised_words(english) {
        if let Some((_, value)) = NUMBER_WORDS_EN
            .iter()
            .find(|(w, _)| *w == word && !NOT_CARDINAL.contains(w))
        {
            out.push(format!("{}", *value as u64));
        }
    }
    out
}

/// What may stand between the digits of one number in French text (groups of thousands,
/// decimals, a phone number's dots, a date's slashes).
fn is_digit_separator(c: char) -> bool {
    matches!(
        c,
        ' ' | '\u{a0}' | '\u{202f}' | '\u{2009}' | '.' | ',' | '-' | '/' | ':'
    )
}

/// An hour, and the same hour on the 24-hour clock when "p.m." follows.
pub(super) fn clock_values(hour: f64, text: &str, end: usize) -> Vec<f64> {
    let rest = text[end..].trim_start().to_ascii_lowercase();
    if (rest.starts_with("p.m") || rest.starts_with("pm")) && hour < 12.0 {
        vec![hour, hour + 12.0]
    } else {
        vec![hour]
    }
}

pub(super) fn parse_number(raw: &str, lang: Language) -> Option<f64> {
    let cleaned: String = match lang {
        Language::French => raw
            .chars()
            .filter(|c| !matches!(c, ' ' | '\u{a0}' | '\u{202f}' | '\u{2009}' | '.'))
            .map(|c| if c == ',' { '.' } else { c })
            .collect(),
        Language::English => raw.chars().filter(|&c| c != ',').collect(),
    };
    cleaned.parse().ok()
}

pub(super) const NUMBER_WORDS_EN: &[(&str, f64)] = &[
    ("zero", 0.0),
    ("one", 1.0),
    ("two", 2.0),
    ("three", 3.0),
    ("four", 4.0),
    ("five", 5.0),
    ("six", 6.0),
    ("seven", 7.0),
    ("eight", 8.0),
    ("nine", 9.0),
    ("ten", 10.0),
    ("eleven", 11.0),
    ("twelve", 12.0),
    ("thirteen", 13.0),
    ("fourteen", 14.0),
    ("fifteen", 15.0),
    ("sixteen", 16.0),
    ("seventeen", 17.0),
    ("eighteen", 18.0),
    ("nineteen", 19.0),
    ("twenty", 20.0),
    ("thirty", 30.0),
    ("forty", 40.0),
    ("fifty", 50.0),
    ("sixty", 60.0),
    ("seventy", 70.0),
    ("eighty", 80.0),
    ("ninety", 90.0),
    ("hundred", 100.0),
    ("thousand", 1000.0),
    ("first", 1.0),
    ("second", 2.0),
    ("third", 3.0),
    ("both", 2.0),
    ("dozen", 12.0),
    ("half", 0.5),
];

pub(super) const NUMBER_WORDS_FR: &[(&str, f64)] = &[
    ("zero", 0.0),
    ("un", 1.0),
    ("une", 1.0),
    ("deux", 2.0),
    ("trois", 3.0),
    ("quatre", 4.0),
    ("cinq", 5.0),
    ("six", 6.0),
    ("sept", 7.0),
    ("huit", 8.0),
    ("neuf", 9.0),
    ("dix", 10.0),
    ("onze", 11.0),
    ("douze", 12.0),
    ("treize", 13.0),
    ("quatorze", 14.0),
    ("quinze", 15.0),
    ("seize", 16.0),
    ("vingt", 20.0),
    ("trente", 30.0),
    ("quarante", 40.0),
    ("cinquante", 50.0),
    ("soixante", 60.0),
    ("cent", 100.0),
    ("mille", 1000.0),
    ("premier", 1.0),
    ("premiere", 1.0),
    ("deuxieme", 2.0),
    ("second", 2.0),
    ("seconde", 2.0),
    ("troisieme", 3.0),
    ("moitie", 0.5),
    ("douzaine", 12.0),
    // About so many: "une trentaine de pompiers" may be "some thirty" or "about 30".
    ("dizaine", 10.0),
    ("dizaines", 10.0),
    ("quinzaine", 15.0),
    ("vingtaine", 20.0),
    ("trentaine", 30.0),
    ("quarantaine", 40.0),
    ("cinquantaine", 50.0),
    ("soixantaine", 60.0),
    ("centaine", 100.0),
    ("centaines", 100.0),
    ("millier", 1000.0),
    ("milliers", 1000.0),
];

/// Is the number written out in words in `text` ("three" for 3, "trois" for 3)?
pub(super) fn has_number_word(text: &str, number: &NumberMention, lang: Language) -> bool {
    let table = match lang {
        Language::English => NUMBER_WORDS_EN,
        Language::French => NUMBER_WORDS_FR,
    };
    let words = normalised_words(text);
    let whole = table.iter().any(|(word, value)| {
        number.values.iter().any(|v| v == value) && words.iter().any(|w| w == word)
    });
    // « 4,5 milliards » as "four and a half billion".
    let and_a_half = lang == Language::English
        && table.iter().any(|(word, value)| {
            number.values.iter().any(|v| *v == value + 0.5)
                && words
                    .windows(4)
                    .any(|w| w[0] == *word && w[1..] == ["and", "a", "half"])
        });
    whole || and_a_half
}
