//! Dates: months, days, parts of a month ("mi-août"), years and weekdays, in either language.

use super::*;

pub(super) use crate::text::ENGLISH_MONTHS as MONTHS_EN;
pub(super) const MONTHS_FR: [&str; 12] = [
    "janvier",
    "fevrier",
    "mars",
    "avril",
    "mai",
    "juin",
    "juillet",
    "aout",
    "septembre",
    "octobre",
    "novembre",
    "decembre",
];
pub(super) const MONTH_ABBREVIATIONS_EN: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];
pub(super) const WEEKDAYS_EN: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];
pub(super) const WEEKDAYS_FR: [&str; 7] = [
    "lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche",
];

/// Where in a month: "mi-août" / "mid-August", "fin mars" / "late March".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Part {
    Early,
    Mid,
    Late,
}

impl Part {
    pub(super) fn english(self) -> &'static str {
        match self {
            Part::Early => "early",
            Part::Mid => "mid",
            Part::Late => "late",
        }
    }
}

#[derive(Debug, Clone)]
pub(super) struct DateMention {
    /// 1-12.
    pub(super) month: usize,
    pub(super) day: Option<u32>,
    pub(super) part: Option<Part>,
    pub(super) year: Option<u32>,
    pub(super) text: String,
    /// Byte range in the text, qualifier, day and year included.
    pub(super) span: (usize, usize),
}

/// The days of the month that the French text gives ("le 8 octobre" gives "8"): the only ones a
/// translation may write after a month's name.
pub fn day_forms(french: &str) -> Vec<String> {
    let mut days: Vec<String> = dates(french, Language::French)
        .iter()
        .filter_map(|d| d.day.map(|day| day.to_string()))
        .collect();
    days.sort();
    days.dedup();
    days
}

/// The months that the French text gives only as a part of the month ("mi-août", twice if
/// need be, and no "15 août" beside it), each with the English words that may come just before
/// its name ("mid-", "the middle of "): a translation must not name the month without them.
pub fn qualified_months(french: &str) -> Vec<(String, Vec<String>)> {
    let mentions = dates(french, Language::French);
    let mut out = Vec::new();
    for month in 1..=12 {
        let parts: Vec<Option<Part>> = mentions
            .iter()
            .filter(|d| d.month == month)
            .map(|d| if d.day.is_some() { None } else { d.part })
            .collect();
        let Some(&Some(part)) = parts.first() else {
            continue;
        };
        if parts.iter().any(|p| *p != Some(part)) {
            continue;
        }
        let before: &[&str] = match part {
            Part::Early => &["early ", "beginning of ", "start of "],
            Part::Mid => &["mid-", "mid ", "middle of "],
            Part::Late => &["late ", "end of "],
        };
        let before = before
            .iter()
            .flat_map(|b| {
                let mut capital = b.to_string();
                capital[..1].make_ascii_uppercase();
                [b.to_string(), capital]
            })
            .collect();
        out.push((MONTHS_EN[month - 1].to_string(), before));
    }
    out
}

pub(super) fn dates(text: &str, lang: Language) -> Vec<DateMention> {
    let toks = tokens(text);
    let mut out = Vec::new();
    for (t, &(offset, word)) in toks.iter().enumerate() {
        // "mi-août" is one token: the qualifier is its prefix.
        let (prefix_part, bare) = split_part_prefix(word, lang);
        let Some(month) = month_of(bare, lang) else {
            continue;
        };
        let is_date = match lang {
            Language::English => english_month_is_date(text, &toks, t, bare),
            Language::French => french_month_is_date(text, &toks, t, bare),
        };
        if !is_date {
            continue;
        }
        let mut start = offset;
        let mut end = offset + word.len();
        let mut part = prefix_part;
        let mut day = None;
        let mut year = None;
        // Day before the month: "7 octobre", "1er mars", "7 October".
        if t > 0 {
            let (o, w) = toks[t - 1];
            if let Some(d) = day_number(w) {
                day = Some(d);
                start = o;
            }
        }
        // Day after the month (English): "October 7", "October 7th", "Oct. 7".
        let mut next = t + 1;
        if day.is_none() && lang == Language::English {
            if let Some(&(o, w)) = toks.get(next) {
                if let Some(d) = day_number(w) {
                    day = Some(d);
                    end = o + w.len();
                    next += 1;
                }
            }
        }
        // "in mid-August of 2025"
        if lang == Language::English && toks.get(next).is_some_and(|&(_, w)| w == "of") {
            next += 1;
        }
        if let Some(&(o, w)) = toks.get(next) {
            if w.len() == 4 && w.chars().all(|c| c.is_ascii_digit()) {
                let gap = &text[end..o];
                let separated =
                    gap.chars().all(|c| c.is_whitespace() || c == ',') && gap.len() <= 3;
                let of_year = lang == Language::English && gap.trim() == "of";
                if separated || of_year {
                    year = w.parse().ok();
                    end = o + w.len();
                }
            }
        }
        // A qualifier written before: "fin mars", "début de mars", "à la mi-août" (the last is
        // one token with its prefix), "late March", "the end of March", "mid March".
        if part.is_none() {
            let before: Vec<String> = toks[t.saturating_sub(3)..t]
                .iter()
                .map(|(_, w)| fold(w))
                .collect();
            let tail: Vec<&str> = before.iter().map(String::as_str).collect();
            let found = match lang {
                Language::French => part_before_fr(&tail),
                Language::English => part_before_en(&tail),
            };
            if let Some((p, words)) = found.filter(|_| day.is_none()) {
                part = Some(p);
                start = toks[t - words].0;
            }
        }
        out.push(DateMention {
            month,
            day,
            part,
            year,
            text: text[start..end].to_string(),
            span: (start, end),
        });
    }
    out
}

pub(super) fn split_part_prefix(word: &str, lang: Language) -> (Option<Part>, &str) {
    let prefixes: &[(&str, Part)] = match lang {
        Language::French => &[("mi-", Part::Mid)],
        Language::English => &[("mid-", Part::Mid), ("Mid-", Part::Mid)],
    };
    for &(prefix, part) in prefixes {
        if let Some(rest) = word.strip_prefix(prefix) {
            return (Some(part), rest);
        }
    }
    (None, word)
}

pub(super) fn part_before_fr(words: &[&str]) -> Option<(Part, usize)> {
    match words {
        [.., "fin", "de"] | [.., "fin", "d"] | [.., "debut", "de"] | [.., "debut", "d"] => Some((
            if words[words.len() - 2] == "fin" {
                Part::Late
            } else {
                Part::Early
            },
            2,
        )),
        [.., "fin"] => Some((Part::Late, 1)),
        [.., "debut"] => Some((Part::Early, 1)),
        [.., "mi"] => Some((Part::Mid, 1)),
        _ => None,
    }
}

pub(super) fn part_before_en(words: &[&str]) -> Option<(Part, usize)> {
    match words {
        [.., "end", "of"] | [.., "close", "of"] => Some((Part::Late, 2)),
        [.., "beginning", "of"] | [.., "start", "of"] => Some((Part::Early, 2)),
        [.., "middle", "of"] => Some((Part::Mid, 2)),
        [.., "late"] => Some((Part::Late, 1)),
        [.., "early"] => Some((Part::Early, 1)),
        [.., "mid"] => Some((Part::Mid, 1)),
        _ => None,
    }
}

pub(super) fn month_of(word: &str, lang: Language) -> Option<usize> {
    match lang {
        Language::French => {
            let w = fold(word);
            MONTHS_FR.iter().position(|m| *m == w).map(|i| i + 1)
        }
        Language::English => MONTHS_EN
            .iter()
            .position(|m| *m == word)
            .or_else(|| MONTH_ABBREVIATIONS_EN.iter().position(|m| *m == word))
            .map(|i| i + 1),
    }
}

/// "May" and "March" are also an auxiliary and a verb: capitalised at a sentence start, they
/// count as months only next to a day, a year or a qualifier.
pub(super) fn english_month_is_date(
    text: &str,
    toks: &[(usize, &str)],
    t: usize,
    word: &str,
) -> bool {
    if !matches!(word, "May" | "March" | "Mar") || !starts_sentence(text, toks, t) {
        return true;
    }
    // At a sentence start the word before belongs to the previous sentence.
    neighbour_is_number(toks, Some(t + 1))
}

/// French writes its months in lower case: "Mars" capitalised inside a sentence is the planet
/// ("envoyer des robots sur Mars"), unless a day or a year stands beside it.
fn french_month_is_date(text: &str, toks: &[(usize, &str)], t: usize, word: &str) -> bool {
    !word.starts_with(char::is_uppercase)
        || starts_sentence(text, toks, t)
        || neighbour_is_number(toks, t.checked_sub(1))
        || neighbour_is_number(toks, Some(t + 1))
}

fn starts_sentence(text: &str, toks: &[(usize, &str)], t: usize) -> bool {
    text[..toks[t].0]
        .trim_end()
        .chars()
        .next_back()
        .is_none_or(|c| matches!(c, '.' | '!' | '?' | '"' | '“' | '«' | '\n'))
}

fn neighbour_is_number(toks: &[(usize, &str)], i: Option<usize>) -> bool {
    i.and_then(|i| toks.get(i))
        .is_some_and(|(_, w)| w.chars().next().is_some_and(|c| c.is_ascii_digit()))
}

pub(super) fn day_number(word: &str) -> Option<u32> {
    let digits: String = word.chars().take_while(|c| c.is_ascii_digit()).collect();
    let suffix = &word[digits.len()..];
    if digits.is_empty() || !matches!(suffix, "" | "er" | "st" | "nd" | "rd" | "th") {
        return None;
    }
    digits.parse().ok().filter(|d| (1..=31).contains(d))
}

pub(super) fn date_distance(a: &DateMention, b: &DateMention) -> u32 {
    u32::from(a.day != b.day) + u32::from(a.part != b.part) + u32::from(a.year != b.year)
}

/// What differs between a source date and its rendering, if anything does.
pub(super) fn compare_dates(source: &DateMention, output: &DateMention) -> Option<String> {
    let month = MONTHS_EN[source.month - 1];
    if let (Some(a), Some(b)) = (source.year, output.year) {
        if a != b {
            return Some(format!("the year changed from {a} to {b}"));
        }
    }
    match (source.day, output.day) {
        (Some(a), Some(b)) if a != b => {
            return Some(format!("the day changed from {month} {a} to {month} {b}"))
        }
        (None, Some(b)) => {
            let said = match source.part {
                Some(p) => format!("{}-{month}", p.english()),
                None => month.to_string(),
            };
            return Some(format!(
                "the output gives a precise day ({month} {b}) where the source says only {said}"
            ));
        }
        (Some(a), None) => return Some(format!("the day ({month} {a}) was dropped")),
        _ => {}
    }
    match (source.part, output.part) {
        (Some(a), Some(b)) if a != b => Some(format!(
            "{}-{month} became {}-{month}",
            a.english(),
            b.english()
        )),
        (Some(a), None) => Some(format!(
            "the source says {}-{month}; the output says only {month}",
            a.english()
        )),
        (None, Some(b)) => Some(format!(
            "the output says {}-{month} where the source says only {month}",
            b.english()
        )),
        _ => None,
    }
}

pub(super) fn weekdays(text: &str, lang: Language) -> Vec<(usize, String)> {
    tokens(text)
        .into_iter()
        .filter_map(|(_, w)| {
            let day = match lang {
                Language::French => WEEKDAYS_FR.iter().position(|d| *d == fold(w)),
                Language::English => WEEKDAYS_EN.iter().position(|d| *d == w),
            }?;
            Some((day, w.to_string()))
        })
        .collect()
}

/// The date in English at the precision it has: "mid-August 2025", "late March", "October 8".
pub(super) fn english_date(date: &DateMention) -> String {
    let month = MONTHS_EN[date.month - 1];
    let mut text = match (date.part, date.day) {
        (Some(Part::Mid), _) => format!("mid-{month}"),
        (Some(part), _) => format!("{} {month}", part.english()),
        (None, Some(day)) => format!("{month} {day}"),
        (None, None) => month.to_string(),
    };
    match (date.year, date.day.is_some() && date.part.is_none()) {
        (Some(year), true) => text.push_str(&format!(", {year}")),
        (Some(year), false) => text.push_str(&format!(" {year}")),
        (None, _) => {}
    }
    text
}
