//! Fidelity check: the numbers, dates, names and quotations of an output against its source —
//! a French paragraph against its English translation, and the English article against the
//! summary written from it. Language models invent precision ("mi-août" becomes "August 15"),
//! drop figures and misquote; this finds such differences and reports them with their place.
//! It never changes any text.
//!
//! The checks are lexical and deliberately conservative: each one looks for a fact of one kind
//! on one side and for its counterpart on the other, accepting the usual ways a translation
//! may render it (number words, "2 millions" as "2 million", Moscou as Moscow).

use serde::Serialize;

use super::segment::sentences;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Number,
    Date,
    Name,
    Quote,
    /// A web address, which a translation must copy exactly.
    Link,
}

/// Which output was checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    /// A translated paragraph against its French source paragraph.
    Translation,
    /// The abstractive summary against the (English) article.
    Summary,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    pub kind: Kind,
    pub stage: Stage,
    /// The expression in the source ("mi-août 2025"), empty when the source has none.
    pub source_text: String,
    /// The expression in the output ("August 15, 2025"), empty when the output has none.
    pub output_text: String,
    /// 0-based paragraph of the article (translation findings).
    pub paragraph: Option<usize>,
    /// 0-based sentence of the summary (summary findings).
    pub sentence: Option<usize>,
    pub problem: String,
}

impl Finding {
    /// One line for people, with 1-based places.
    pub fn describe(&self) -> String {
        let place = match (self.stage, self.paragraph, self.sentence) {
            (Stage::Translation, Some(p), _) => format!("paragraph {}", p + 1),
            (Stage::Summary, _, Some(s)) => format!("summary sentence {}", s + 1),
            (Stage::Translation, None, _) => "translation".to_string(),
            (Stage::Summary, _, None) => "summary".to_string(),
        };
        let kind = match self.kind {
            Kind::Number => "number",
            Kind::Date => "date",
            Kind::Name => "name",
            Kind::Quote => "quotation",
            Kind::Link => "link",
        };
        let mut line = format!("fidelity ({kind}), {place}: {}", self.problem);
        match (self.source_text.is_empty(), self.output_text.is_empty()) {
            (false, false) => line.push_str(&format!(
                " (source: \"{}\", output: \"{}\")",
                self.source_text, self.output_text
            )),
            (false, true) => line.push_str(&format!(" (source: \"{}\")", self.source_text)),
            (true, false) => line.push_str(&format!(" (output: \"{}\")", self.output_text)),
            (true, true) => {}
        }
        line
    }
}

/// Checks one translated paragraph against its French source paragraph.
pub fn check_translation(french: &str, english: &str, paragraph: usize) -> Vec<Finding> {
    let mut findings = Vec::new();
    let finding = |kind, source_text: &str, output_text: &str, problem: String| Finding {
        kind,
        stage: Stage::Translation,
        source_text: source_text.to_string(),
        output_text: output_text.to_string(),
        paragraph: Some(paragraph),
        sentence: None,
        problem,
    };

    // Dates first: numbers that belong to a date are judged there, not twice.
    let fr_dates = dates(french, Lang::French);
    let en_dates = dates(english, Lang::English);
    let mut en_used = vec![false; en_dates.len()];
    for fr in &fr_dates {
        let counterpart = (0..en_dates.len())
            .filter(|&j| !en_used[j] && en_dates[j].month == fr.month)
            .min_by_key(|&j| date_distance(fr, &en_dates[j]));
        match counterpart {
            None => findings.push(finding(
                Kind::Date,
                &fr.text,
                "",
                format!(
                    "{} is missing from the translation",
                    MONTHS_EN[fr.month - 1]
                ),
            )),
            Some(j) => {
                en_used[j] = true;
                if let Some(problem) = compare_dates(fr, &en_dates[j]) {
                    findings.push(finding(Kind::Date, &fr.text, &en_dates[j].text, problem));
                }
            }
        }
    }
    for (en, _) in en_dates.iter().zip(&en_used).filter(|(_, &used)| !used) {
        findings.push(finding(
            Kind::Date,
            "",
            &en.text,
            "the translation has a date the source does not".to_string(),
        ));
    }
    let fr_weekdays = weekdays(french, Lang::French);
    let en_weekdays = weekdays(english, Lang::English);
    for (day, text) in &fr_weekdays {
        if !en_weekdays.iter().any(|(d, _)| d == day) {
            findings.push(finding(
                Kind::Date,
                text,
                "",
                format!("{} is missing from the translation", WEEKDAYS_EN[*day]),
            ));
        }
    }
    for (day, text) in &en_weekdays {
        if !fr_weekdays.iter().any(|(d, _)| d == day) {
            findings.push(finding(
                Kind::Date,
                "",
                text,
                "the translation has a weekday the source does not".to_string(),
            ));
        }
    }

    let fr_numbers = numbers(french, Lang::French, &fr_dates);
    let en_numbers = numbers(english, Lang::English, &en_dates);
    for n in &fr_numbers {
        if !en_numbers.iter().any(|m| n.matches(m)) && !has_number_word(english, n, Lang::English) {
            findings.push(finding(
                Kind::Number,
                &n.text,
                "",
                "the number is missing from the translation".to_string(),
            ));
        }
    }
    for n in &en_numbers {
        if !fr_numbers.iter().any(|m| n.matches(m)) && !has_number_word(french, n, Lang::French) {
            findings.push(finding(
                Kind::Number,
                "",
                &n.text,
                "the translation has a number the source does not".to_string(),
            ));
        }
    }

    let fr_words = normalised_words(french);
    let en_words = normalised_words(english);
    // Across languages only names of two words or more are compared ("Dmitri Peskov", "Maison
    // Blanche"): single capitalised words differ between French and English too often
    // (Islande / Iceland, Premier ministre / Prime Minister) to be worth a warning.
    for name in names(french).into_iter().filter(|n| n.contains(' ')) {
        if !name_present(&name, &en_words, Lang::English) {
            findings.push(finding(
                Kind::Name,
                &name,
                "",
                "the name is missing from the translation".to_string(),
            ));
        }
    }
    for name in names(english) {
        let core = without_common_words(&name);
        if core.contains(' ') && !name_present(&core, &fr_words, Lang::French) {
            findings.push(finding(
                Kind::Name,
                "",
                &name,
                "the translation has a name the source does not".to_string(),
            ));
        }
    }

    for link in links(french) {
        if !english.contains(link) {
            findings.push(finding(
                Kind::Link,
                link,
                "",
                "the link is missing from the translation".to_string(),
            ));
        }
    }

    // Quotation marks differ between the languages and within a source (straight, curly,
    // guillemets, unbalanced ones in text cut from a longer article), so only a quotation
    // whose marks all vanished, or marks that appear from nowhere, are reported.
    let fr_quotes = quotations(french);
    let en_quotes = quotations(english);
    if !has_quote_marks(english) {
        for q in &fr_quotes {
            findings.push(finding(
                Kind::Quote,
                q,
                "",
                "the translation does not mark this quotation as a quotation".to_string(),
            ));
        }
    }
    if !has_quote_marks(french) {
        for q in &en_quotes {
            findings.push(finding(
                Kind::Quote,
                "",
                q,
                "the translation quotes words the source does not quote".to_string(),
            ));
        }
    }
    findings
}

/// Checks a summary written in English against the English article: every number, date, name
/// and quotation of the summary should be in the article. (What the summary leaves out is not a
/// fault.)
pub fn check_summary(article: &str, summary: &str) -> Vec<Finding> {
    let mut findings = Vec::new();
    let article_dates = dates(article, Lang::English);
    let article_numbers = numbers(article, Lang::English, &article_dates);
    let article_words = normalised_words(article);
    let article_quotes = normalise_quote(article);
    let summary_sentences: Vec<&str> = sentences(summary)
        .into_iter()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    for (index, sentence) in summary_sentences.iter().enumerate() {
        let finding = |kind, source_text: &str, output_text: &str, problem: &str| Finding {
            kind,
            stage: Stage::Summary,
            source_text: source_text.to_string(),
            output_text: output_text.to_string(),
            paragraph: None,
            sentence: Some(index),
            problem: problem.to_string(),
        };
        let sentence_dates = dates(sentence, Lang::English);
        for d in &sentence_dates {
            let same_month: Vec<&DateMention> = article_dates
                .iter()
                .filter(|a| a.month == d.month)
                .collect();
            if same_month.is_empty() {
                findings.push(finding(
                    Kind::Date,
                    "",
                    &d.text,
                    "the article gives no such date",
                ));
            } else if !same_month.iter().any(|a| compare_dates(a, d).is_none()) {
                let closest = same_month
                    .iter()
                    .min_by_key(|a| date_distance(a, d))
                    .expect("not empty");
                let problem = compare_dates(closest, d).unwrap_or_default();
                findings.push(finding(Kind::Date, &closest.text, &d.text, &problem));
            }
        }
        for n in numbers(sentence, Lang::English, &sentence_dates) {
            let in_article = article_numbers.iter().any(|m| n.matches(m))
                || has_number_word(article, &n, Lang::English);
            if !in_article {
                findings.push(finding(
                    Kind::Number,
                    "",
                    &n.text,
                    "the article has no such number",
                ));
            }
        }
        for name in names(sentence) {
            let core = without_common_words(&name);
            if !core.is_empty() && !name_present(&core, &article_words, Lang::English) {
                findings.push(finding(
                    Kind::Name,
                    "",
                    &name,
                    "the article does not name this",
                ));
            }
        }
        for q in quotations(sentence) {
            let words = q.split_whitespace().count();
            if words >= 3 && !article_quotes.contains(&normalise_quote(&q)) {
                findings.push(finding(
                    Kind::Quote,
                    "",
                    &q,
                    "the article does not contain these words as quoted",
                ));
            }
        }
    }
    findings
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lang {
    French,
    English,
}

// ---------------------------------------------------------------------------------------------
// Words

/// Lower case, without accents, for comparing words across French and English.
fn fold(word: &str) -> String {
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
fn normalised_words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(fold)
        .collect()
}

/// Word tokens with their byte offsets.
fn tokens(text: &str) -> Vec<(usize, &str)> {
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

// ---------------------------------------------------------------------------------------------
// Numbers

#[derive(Debug, Clone)]
struct NumberMention {
    text: String,
    /// The value as written, and scaled when a scale word follows ("2 million": 2 and 2e6).
    values: Vec<f64>,
}

impl NumberMention {
    fn matches(&self, other: &NumberMention) -> bool {
        self.values.iter().any(|a| {
            other
                .values
                .iter()
                .any(|b| (a - b).abs() <= 1e-9 * a.abs().max(1.0))
        })
    }
}

const SCALES: &[(&str, f64)] = &[
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
fn numbers(text: &str, lang: Lang, dates: &[DateMention]) -> Vec<NumberMention> {
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
                    Lang::French => {
                        (matches!(cj, ' ' | '\u{a0}' | '\u{202f}' | '\u{2009}' | '.')
                            && group_of_three)
                            || cj == ','
                    }
                    Lang::English => (cj == ',' && group_of_three) || cj == '.',
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
            (Lang::English, Some(':')) | (Lang::French, Some('h')) => {
                let minutes: String = chars[j + 1..]
                    .iter()
                    .map(|c| c.1)
                    .take_while(char::is_ascii_digit)
                    .collect();
                let after = chars.get(j + 1 + minutes.len()).map(|c| c.1);
                let well_formed = (minutes.len() == 2
                    || (lang == Lang::French && minutes.is_empty()))
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
        // "1er", "2nd", "3D", "5G": ordinals and codes, not quantities to compare.
        let ordinal_or_code = followed_by_letter;
        i = j.max(i + 1);
        if in_date || ordinal_or_code {
            continue;
        }
        let Some(value) = parse_number(&raw, lang) else {
            continue;
        };
        let mut values = vec![value];
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

/// An hour, and the same hour on the 24-hour clock when "p.m." follows.
fn clock_values(hour: f64, text: &str, end: usize) -> Vec<f64> {
    let rest = text[end..].trim_start().to_ascii_lowercase();
    if (rest.starts_with("p.m") || rest.starts_with("pm")) && hour < 12.0 {
        vec![hour, hour + 12.0]
    } else {
        vec![hour]
    }
}

fn parse_number(raw: &str, lang: Lang) -> Option<f64> {
    let cleaned: String = match lang {
        Lang::French => raw
            .chars()
            .filter(|c| !matches!(c, ' ' | '\u{a0}' | '\u{202f}' | '\u{2009}' | '.'))
            .map(|c| if c == ',' { '.' } else { c })
            .collect(),
        Lang::English => raw.chars().filter(|&c| c != ',').collect(),
    };
    cleaned.parse().ok()
}

const NUMBER_WORDS_EN: &[(&str, f64)] = &[
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

const NUMBER_WORDS_FR: &[(&str, f64)] = &[
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
];

/// Is the number written out in words in `text` ("three" for 3, "trois" for 3)?
fn has_number_word(text: &str, number: &NumberMention, lang: Lang) -> bool {
    let table = match lang {
        Lang::English => NUMBER_WORDS_EN,
        Lang::French => NUMBER_WORDS_FR,
    };
    let words = normalised_words(text);
    table.iter().any(|(word, value)| {
        number.values.iter().any(|v| v == value) && words.iter().any(|w| w == word)
    })
}

// ---------------------------------------------------------------------------------------------
// Dates

const MONTHS_EN: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const MONTHS_FR: [&str; 12] = [
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
const MONTH_ABBREVIATIONS_EN: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];
const WEEKDAYS_EN: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];
const WEEKDAYS_FR: [&str; 7] = [
    "lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche",
];

/// Where in a month: "mi-août" / "mid-August", "fin mars" / "late March".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Early,
    Mid,
    Late,
}

impl Part {
    fn english(self) -> &'static str {
        match self {
            Part::Early => "early",
            Part::Mid => "mid",
            Part::Late => "late",
        }
    }
}

#[derive(Debug, Clone)]
struct DateMention {
    /// 1-12.
    month: usize,
    day: Option<u32>,
    part: Option<Part>,
    year: Option<u32>,
    text: String,
    /// Byte range in the text, qualifier, day and year included.
    span: (usize, usize),
}

fn dates(text: &str, lang: Lang) -> Vec<DateMention> {
    let toks = tokens(text);
    let mut out = Vec::new();
    for (t, &(offset, word)) in toks.iter().enumerate() {
        // "mi-août" is one token: the qualifier is its prefix.
        let (prefix_part, bare) = split_part_prefix(word, lang);
        let Some(month) = month_of(bare, lang) else {
            continue;
        };
        if lang == Lang::English && !english_month_is_date(text, &toks, t, bare) {
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
        if day.is_none() && lang == Lang::English {
            if let Some(&(o, w)) = toks.get(next) {
                if let Some(d) = day_number(w) {
                    day = Some(d);
                    end = o + w.len();
                    next += 1;
                }
            }
        }
        if let Some(&(o, w)) = toks.get(next) {
            if w.len() == 4 && w.chars().all(|c| c.is_ascii_digit()) {
                let gap = &text[end..o];
                if gap.chars().all(|c| c.is_whitespace() || c == ',') && gap.len() <= 3 {
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
                Lang::French => part_before_fr(&tail),
                Lang::English => part_before_en(&tail),
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

fn split_part_prefix(word: &str, lang: Lang) -> (Option<Part>, &str) {
    let prefixes: &[(&str, Part)] = match lang {
        Lang::French => &[("mi-", Part::Mid)],
        Lang::English => &[("mid-", Part::Mid), ("Mid-", Part::Mid)],
    };
    for &(prefix, part) in prefixes {
        if let Some(rest) = word.strip_prefix(prefix) {
            return (Some(part), rest);
        }
    }
    (None, word)
}

fn part_before_fr(words: &[&str]) -> Option<(Part, usize)> {
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

fn part_before_en(words: &[&str]) -> Option<(Part, usize)> {
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

fn month_of(word: &str, lang: Lang) -> Option<usize> {
    match lang {
        Lang::French => {
            let w = fold(word);
            MONTHS_FR.iter().position(|m| *m == w).map(|i| i + 1)
        }
        Lang::English => MONTHS_EN
            .iter()
            .position(|m| *m == word)
            .or_else(|| MONTH_ABBREVIATIONS_EN.iter().position(|m| *m == word))
            .map(|i| i + 1),
    }
}

/// "May" and "March" are also an auxiliary and a verb: capitalised at a sentence start, they
/// count as months only next to a day, a year or a qualifier.
fn english_month_is_date(text: &str, toks: &[(usize, &str)], t: usize, word: &str) -> bool {
    if !matches!(word, "May" | "March" | "Mar") {
        return true;
    }
    let sentence_start = text[..toks[t].0]
        .trim_end()
        .chars()
        .next_back()
        .is_none_or(|c| matches!(c, '.' | '!' | '?' | '"' | '“' | '\n'));
    if !sentence_start {
        return true;
    }
    let neighbour_is_number = |i: Option<usize>| {
        i.and_then(|i| toks.get(i))
            .is_some_and(|(_, w)| w.chars().next().is_some_and(|c| c.is_ascii_digit()))
    };
    // At a sentence start the word before belongs to the previous sentence.
    neighbour_is_number(Some(t + 1))
}

fn day_number(word: &str) -> Option<u32> {
    let digits: String = word.chars().take_while(|c| c.is_ascii_digit()).collect();
    let suffix = &word[digits.len()..];
    if digits.is_empty() || !matches!(suffix, "" | "er" | "st" | "nd" | "rd" | "th") {
        return None;
    }
    digits.parse().ok().filter(|d| (1..=31).contains(d))
}

fn date_distance(a: &DateMention, b: &DateMention) -> u32 {
    u32::from(a.day != b.day) + u32::from(a.part != b.part) + u32::from(a.year != b.year)
}

/// What differs between a source date and its rendering, if anything does.
fn compare_dates(source: &DateMention, output: &DateMention) -> Option<String> {
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

fn weekdays(text: &str, lang: Lang) -> Vec<(usize, String)> {
    tokens(text)
        .into_iter()
        .filter_map(|(_, w)| {
            let day = match lang {
                Lang::French => WEEKDAYS_FR.iter().position(|d| *d == fold(w)),
                Lang::English => WEEKDAYS_EN.iter().position(|d| *d == w),
            }?;
            Some((day, w.to_string()))
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Names

/// Capitalised words that are not the first word of their sentence, joined into multi-word
/// names ("Vladimir Putin", "Maison Blanche"). Sentence-initial words are left out: there a
/// capital says nothing.
fn names(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for sentence in sentences(text) {
        let toks = tokens(sentence);
        let mut current: Vec<&str> = Vec::new();
        let mut previous_end = 0;
        for (i, &(offset, word)) in toks.iter().enumerate() {
            // "du Kremlin, Dmitri Peskov": punctuation separates two names.
            if !sentence[previous_end..offset].trim().is_empty() && !current.is_empty() {
                out.push(current.join(" "));
                current.clear();
            }
            previous_end = offset + word.len();
            let capitalised = word.chars().next().is_some_and(char::is_uppercase)
                && word.chars().any(char::is_lowercase)
                && !word.chars().all(|c| c.is_uppercase() || !c.is_alphabetic());
            let acronym = word.len() >= 2
                && word
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
                && word.chars().any(|c| c.is_ascii_uppercase());
            let first = i == 0 || starts_sentence(sentence, offset);
            if (capitalised || acronym) && !first && !is_function_word(word) {
                current.push(word);
            } else if !current.is_empty() {
                out.push(current.join(" "));
                current.clear();
            }
        }
        if !current.is_empty() {
            out.push(current.join(" "));
        }
    }
    out.sort();
    out.dedup();
    out
}

/// After an opening quotation mark or a colon, a capital starts a sentence too.
fn starts_sentence(sentence: &str, offset: usize) -> bool {
    let before = sentence[..offset].trim_end();
    before.is_empty() || before.ends_with(['«', '“', '"', ':', '(', '—', '>', '‘'])
}

/// Capitalised words of either language that are not names of anything.
fn is_function_word(word: &str) -> bool {
    const WORDS: &[&str] = &[
        "I", "M", "MM", "Mme", "Mr", "Mrs", "Ms", "Dr", "Le", "La", "Les", "De", "Du", "Des",
        "The", "A", "An", "Of", "And", "Et", "In", "On",
    ];
    WORDS.contains(&word)
}

/// The name without the capitalised words that English writes before names (titles,
/// directions: "President", "Western"), which the French source writes in lower case.
fn without_common_words(name: &str) -> String {
    name.split(' ')
        .filter(|w| !is_english_capitalised_word(w))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Capitalised in English but not names: titles, months, weekdays, directions and adjectives
/// of nationality that the French writes in lower case.
fn is_english_capitalised_word(name: &str) -> bool {
    const WORDS: &[&str] = &[
        "President",
        "Prime",
        "Minister",
        "Secretary",
        "Senator",
        "General",
        "Chancellor",
        "Spokesperson",
        "Spokesman",
        "Foreign",
        "Defense",
        "Defence",
        "Affairs",
        "State",
        "Western",
        "Eastern",
        "Northern",
        "Southern",
        "West",
        "East",
        "North",
        "South",
        "Readers",
        "Source",
        "Comment",
        "Comments",
        "Video",
        "Videos",
        "Mr",
        "Mrs",
        "Ms",
        "Dr",
        "Sir",
        "Lady",
        "Lord",
        "King",
        "Queen",
        "Prince",
        "Princess",
        "Pope",
        "Saint",
    ];
    name.split(' ').all(|w| {
        WORDS.contains(&w)
            || MONTHS_EN.contains(&w)
            || MONTH_ABBREVIATIONS_EN.contains(&w)
            || WEEKDAYS_EN.contains(&w)
    })
}

/// French and English names of the same places and people that share no prefix, folded.
const EXONYMS: &[(&str, &str)] = &[
    ("poutine", "putin"),
    ("moscou", "moscow"),
    ("kiev", "kyiv"),
    ("etats-unis", "united states"),
    ("etats", "states"),
    ("etats-unis", "us"),
    ("nouvelle", "new"),
    ("zelande", "zealand"),
    ("cap", "cape"),
    ("vert", "verde"),
    ("vih", "hiv"),
    ("sida", "aids"),
    ("adn", "dna"),
    ("oms", "who"),
    ("fmi", "imf"),
    ("pib", "gdp"),
    ("americain", "us"),
    ("americaine", "us"),
    ("americains", "us"),
    ("royaume-uni", "uk"),
    ("britannique", "uk"),
    ("unis", "united"),
    ("maison blanche", "white house"),
    ("maison", "white"),
    ("blanche", "house"),
    ("allemagne", "germany"),
    ("angleterre", "england"),
    ("royaume-uni", "united kingdom"),
    ("royaume", "kingdom"),
    ("londres", "london"),
    ("pekin", "beijing"),
    ("espagne", "spain"),
    ("grece", "greece"),
    ("suisse", "switzerland"),
    ("pays-bas", "netherlands"),
    ("varsovie", "warsaw"),
    ("otan", "nato"),
    ("onu", "un"),
    ("ue", "eu"),
    ("nations", "nations"),
    ("union", "union"),
    ("europeenne", "european"),
    ("elysee", "elysee"),
    ("venise", "venice"),
    ("vienne", "vienna"),
    ("geneve", "geneva"),
    ("jerusalem", "jerusalem"),
    ("caire", "cairo"),
    ("mexique", "mexico"),
    ("bresil", "brazil"),
    ("japon", "japan"),
    ("inde", "india"),
    ("turquie", "turkey"),
    ("syrie", "syria"),
    ("iran", "iran"),
    ("coree", "korea"),
];

/// Is the name found in the other text's folded words? One word of it is enough (translators
/// drop first names and titles, and English capitalises words French does not: "Stanford
/// University School" for "l'université de Stanford"), so what this catches is a name replaced
/// or invented whole. A word is found as itself, through a shared prefix of four letters
/// (Russie / Russia, américain / American), a near spelling (médecine / medicine) or a known
/// exonym (Poutine / Putin).
fn name_present(name: &str, other_words: &[String], other: Lang) -> bool {
    name.split([' ', '-'])
        .filter(|w| !w.is_empty())
        .any(|word| {
            let w = fold(word);
            let translations: Vec<&str> = EXONYMS
                .iter()
                .flat_map(|&(fr, en)| match other {
                    Lang::English if fr.split([' ', '-']).any(|p| p == w) => {
                        en.split(' ').collect()
                    }
                    Lang::French if en.split(' ').any(|p| p == w) => fr.split([' ', '-']).collect(),
                    _ => Vec::new(),
                })
                .collect();
            other_words.iter().any(|o| {
                *o == w
                    || shares_prefix(o, &w)
                    || near_spelling(o, &w)
                    || translations.iter().any(|t| o == t || shares_prefix(o, t))
            })
        })
}

/// Same word in two spellings: at most one edit in five letters (Dmitri / Dmitry, médecine /
/// medicine, Ukraine / Ukraina).
fn near_spelling(a: &str, b: &str) -> bool {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let longest = a.len().max(b.len());
    if a.len().min(b.len()) < 4 || a.len().abs_diff(b.len()) > longest / 5 {
        return false;
    }
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous + usize::from(ca != cb);
            previous = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    row[b.len()] * 5 <= longest
}

fn shares_prefix(a: &str, b: &str) -> bool {
    let n = 4;
    a.chars().count() >= n && b.chars().count() >= n && a.chars().take(n).eq(b.chars().take(n))
}

// ---------------------------------------------------------------------------------------------
// Quotations

/// Quoted passages: « … », “ … ” and "…" (single quotes are apostrophes too often to count).
fn quotations(text: &str) -> Vec<String> {
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
fn links(text: &str) -> Vec<&str> {
    text.split_whitespace()
        .filter(|w| w.contains("://") || w.starts_with("www."))
        .map(|w| w.trim_end_matches(['.', ',', ';', ')', '»', '"']))
        .collect()
}

fn has_quote_marks(text: &str) -> bool {
    text.contains(['«', '»', '“', '”', '"'])
}

/// Folded words joined by single spaces, for finding a quotation in the article whatever its
/// quotation marks, case and spacing.
fn normalise_quote(text: &str) -> String {
    let mut s = normalised_words(text).join(" ");
    s.insert(0, ' ');
    s.push(' ');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(findings: &[Finding]) -> Vec<(Kind, &str, &str)> {
        findings
            .iter()
            .map(|f| (f.kind, f.source_text.as_str(), f.output_text.as_str()))
            .collect()
    }

    /// Month, day, part of the month, year.
    type Parsed = (usize, Option<u32>, Option<Part>, Option<u32>);

    #[test]
    fn months_qualifiers_days_and_years() {
        let d = dates(
            "À la mi-août 2025, puis fin mars et le 7 octobre, début de mai.",
            Lang::French,
        );
        let got: Vec<Parsed> = d.iter().map(|d| (d.month, d.day, d.part, d.year)).collect();
        assert_eq!(
            got,
            [
                (8, None, Some(Part::Mid), Some(2025)),
                (3, None, Some(Part::Late), None),
                (10, Some(7), None, None),
                (5, None, Some(Part::Early), None)
            ]
        );
        let d = dates("In mid-August 2025 and late March, on October 7, 2025. May I? On Aug. 15 and the end of June.", Lang::English);
        let got: Vec<Parsed> = d.iter().map(|d| (d.month, d.day, d.part, d.year)).collect();
        assert_eq!(
            got,
            [
                (8, None, Some(Part::Mid), Some(2025)),
                (3, None, Some(Part::Late), None),
                (10, Some(7), None, Some(2025)),
                (8, Some(15), None, None),
                (6, None, Some(Part::Late), None)
            ]
        );
    }

    #[test]
    fn numbers_in_both_languages() {
        let values = |text, lang| -> Vec<Vec<f64>> {
            numbers(text, lang, &[])
                .into_iter()
                .map(|n| n.values)
                .collect()
        };
        assert_eq!(
            values(
                "1 000 personnes, 3,5 %, 2,5 millions et 14h30, le 1er.",
                Lang::French
            ),
            [
                vec![1000.0],
                vec![3.5],
                vec![2.5, 2.5e6],
                vec![14.0],
                vec![30.0]
            ]
        );
        assert_eq!(
            values("À 11 h et à 11h00.", Lang::French),
            [vec![11.0], vec![11.0]]
        );
        assert_eq!(
            values("At 11:00 and 2:30 p.m.", Lang::English),
            [vec![11.0], vec![2.0, 14.0], vec![30.0]]
        );
        assert_eq!(
            values("1,000 people, 3.5%, 2.5 million, G7.", Lang::English),
            [vec![1000.0], vec![3.5], vec![2.5, 2.5e6]]
        );
    }

    #[test]
    fn names_across_languages() {
        let fr = "Le président russe Vladimir Poutine a rencontré Donald Trump à Moscou, selon la Maison Blanche.";
        let en = "Russian President Vladimir Putin met Donald Trump in Moscow, according to the White House.";
        assert!(
            check_translation(fr, en, 0).is_empty(),
            "{:?}",
            check_translation(fr, en, 0)
        );
        let wrong = "Russian President Vladimir Putin met Joe Biden in Moscow, according to the White House.";
        let findings = check_translation(fr, wrong, 0);
        let found = problems(&findings);
        assert!(
            found.contains(&(Kind::Name, "Donald Trump", "")),
            "{found:?}"
        );
        assert!(found.contains(&(Kind::Name, "", "Joe Biden")), "{found:?}");
    }

    #[test]
    fn quotations_lost_and_misquoted() {
        let fr = "La Maison Blanche a parlé d'« une lumière au bout du tunnel ».";
        let en = "The White House spoke of a light at the end of the tunnel.";
        let findings = check_translation(fr, en, 2);
        let found = problems(&findings);
        assert_eq!(found, [(Kind::Quote, "une lumière au bout du tunnel", "")]);
        let article = "The White House said there was \"a light at the end of the tunnel\".";
        assert!(check_summary(
            article,
            "The White House saw “a light at the end of the tunnel”."
        )
        .is_empty());
        let findings = check_summary(article, "The White House saw “the end of the war”.");
        let found = problems(&findings);
        assert_eq!(found, [(Kind::Quote, "", "the end of the war")]);
    }

    #[test]
    fn summary_inventions_are_found_where_they_are() {
        let article = "Putin met Trump in Anchorage in mid-August 2025. Three officials attended.";
        let summary =
            "Putin and Trump met in Alaska. On August 15, 2025, 3 officials and Macron attended.";
        let findings = check_summary(article, summary);
        let found = problems(&findings);
        assert!(
            found.contains(&(Kind::Date, "mid-August 2025", "August 15, 2025")),
            "{found:?}"
        );
        assert!(found.contains(&(Kind::Name, "", "Alaska")), "{found:?}");
        assert!(found.contains(&(Kind::Name, "", "Macron")), "{found:?}");
        assert!(
            !found.iter().any(|f| f.0 == Kind::Number),
            "3 is written out as Three: {found:?}"
        );
        assert!(findings
            .iter()
            .all(|f| f.stage == Stage::Summary && f.sentence.is_some()));
        assert_eq!(
            findings
                .iter()
                .find(|f| f.output_text == "Alaska")
                .unwrap()
                .sentence,
            Some(0)
        );
    }
}
