//! Is the input French, English, or neither? A stop-word count: the most frequent words of a
//! language make up a large share of any running text in it, so a few dozen of them tell French
//! from English (and both from other languages) on a paragraph or more, with no model. The
//! answer only feeds a warning; precis always does what it was asked.

/// The languages precis reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    French,
    English,
}

/// Frequent French words that are not also common English words ("a", "on", "plus" are left
/// out: they would count for both).
const FRENCH: [&str; 40] = [
    "le", "la", "les", "des", "du", "et", "est", "une", "un", "dans", "pour", "que", "qui", "sur",
    "pas", "au", "aux", "avec", "ce", "cette", "il", "elle", "ils", "sont", "ont", "été", "mais",
    "ou", "par", "leur", "se", "sa", "son", "ses", "nous", "vous", "lors", "selon", "après",
    "être",
];

const ENGLISH: [&str; 40] = [
    "the", "and", "of", "to", "is", "in", "that", "it", "was", "for", "with", "as", "his", "her",
    "they", "be", "at", "by", "this", "have", "from", "or", "had", "not", "but", "what", "were",
    "which", "their", "been", "has", "would", "will", "said", "who", "after", "its", "an", "are",
    "we",
];

/// Texts shorter than this many words are not judged: a headline can be anything.
const MIN_WORDS: usize = 20;

/// Below this share of stop words of either language, the text is in another language.
const MIN_STOP_SHARE: f64 = 0.08;

/// The language of `text`: `Some(French)` or `Some(English)` when one clearly dominates,
/// `None` when the text is too short to tell, mixed, or in neither language.
pub fn detect(text: &str) -> Option<Language> {
    let (mut words, mut french, mut english) = (0usize, 0usize, 0usize);
    for word in text
        .split(|c: char| !c.is_alphabetic())
        .filter(|w| !w.is_empty())
    {
        words += 1;
        let word = word.to_lowercase();
        french += usize::from(FRENCH.contains(&word.as_str()));
        english += usize::from(ENGLISH.contains(&word.as_str()));
    }
    if words < MIN_WORDS || ((french + english) as f64) < MIN_STOP_SHARE * words as f64 {
        return None;
    }
    if french >= 2 * english {
        Some(Language::French)
    } else if english >= 2 * french {
        Some(Language::English)
    } else {
        None
    }
}

/// What an article looks like, when that is not the language expected of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mismatch {
    pub found: &'static str,
    pub expected: &'static str,
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the input looks like {}, not {}",
            self.found, self.expected
        )
    }
}

/// Whether `text` looks like another language than `expected`; too short a text to tell is
/// not a mismatch.
pub fn mismatch(text: &str, expected: Language) -> Option<Mismatch> {
    let words = text.split_whitespace().count();
    if words < MIN_WORDS {
        return None;
    }
    let (found, expected) = match (detect(text), expected) {
        (Some(found), expected) if found == expected => return None,
        (Some(Language::English), Language::French) => ("English", "French"),
        (Some(Language::French), Language::English) => ("French", "English"),
        (_, Language::French) => ("neither French nor English", "French"),
        (_, Language::English) => ("neither English nor French", "English"),
    };
    Some(Mismatch { found, expected })
}

/// A warning when `text` does not look like `expected`, naming what it looks like instead.
pub fn mismatch_warning(text: &str, expected: Language) -> Option<String> {
    mismatch(text, expected).map(|m| format!("{m}; going on as asked, but the result may be poor"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FR: &str = "Le sommet entre les deux présidents a eu lieu en Alaska, selon la Maison \
        Blanche. Il a duré trois heures et les discussions ont porté sur la guerre et sur les \
        sanctions, mais aucun accord n'a été annoncé à la fin de la rencontre.";
    const EN: &str = "The summit between the two presidents took place in Alaska, according to \
        the White House. It lasted three hours and the talks were about the war and the \
        sanctions, but no agreement was announced at the end of the meeting.";
    const DE: &str = "Der Gipfel zwischen den beiden Präsidenten fand in Alaska statt, wie das \
        Weiße Haus mitteilte. Er dauerte drei Stunden, und die Gespräche drehten sich um den \
        Krieg und die Sanktionen, aber am Ende wurde keine Einigung verkündet.";

    #[test]
    fn french_english_and_other_texts_are_told_apart() {
        assert_eq!(detect(FR), Some(Language::French));
        assert_eq!(detect(EN), Some(Language::English));
        assert_eq!(detect(DE), None);
        assert_eq!(detect("Le sommet"), None);
    }

    #[test]
    fn the_warning_names_what_the_text_looks_like() {
        assert_eq!(mismatch_warning(FR, Language::French), None);
        assert_eq!(mismatch_warning(EN, Language::English), None);
        let warning = mismatch_warning(EN, Language::French).unwrap();
        assert!(
            warning.starts_with("the input looks like English, not French"),
            "{warning}"
        );
        let warning = mismatch_warning(DE, Language::French).unwrap();
        assert!(warning.contains("neither French nor English"), "{warning}");
        assert!(mismatch_warning(FR, Language::English)
            .unwrap()
            .contains("looks like French"));
        assert_eq!(mismatch_warning("Trop court.", Language::French), None);
    }
}
