//! The user's glossary (`--glossary FILE`): French terms with the English the translation must
//! use, or terms to keep as they are (a newspaper's name, a brand). Read from TSV, one term a
//! line: `french<TAB>english`, or `term` alone for "do not translate"; blank lines and lines
//! starting with `#` are skipped. A term matches whole words, ignoring case and accents
//! ("Cour d'appel" matches « cour d’appel »); in the translation, its words may take a plural
//! ending.

use super::{
    words::{normalised_word_spans, normalised_words},
    Finding, Kind, Stage,
};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Term {
    pub french: String,
    /// `None`: the term stays as it is in the translation.
    pub english: Option<String>,
    french_words: Vec<String>,
    english_words: Vec<String>,
}

impl Term {
    /// The English the translation must contain.
    pub fn required(&self) -> &str {
        self.english.as_deref().unwrap_or(&self.french)
    }

    /// Where the translation still carries the term's French words (a French article before
    /// them may have become "the"): "The Canard enchaîné" for « Le Canard enchaîné », "rage"
    /// for « rage » that was to become "rabies". `None` when the term was rendered otherwise.
    pub fn rendering_in<'t>(&self, english: &'t str) -> Option<&'t str> {
        let article = self
            .french_words
            .first()
            .filter(|w| FRENCH_ARTICLES.contains(&w.as_str()) && self.french_words.len() > 1);
        let core = &self.french_words[usize::from(article.is_some())..];
        let spans = normalised_word_spans(english);
        let at = spans
            .windows(core.len())
            .position(|window| window.iter().zip(core).all(|((_, w), c)| w == c))?;
        let start = match at.checked_sub(1).map(|before| &spans[before]) {
            Some((range, word)) if article.is_some() && word == "the" => range.start,
            _ => spans[at].0.start,
        };
        Some(&english[start..spans[at + core.len() - 1].0.end])
    }

    /// What the translator is told.
    pub fn hint(&self) -> String {
        match &self.english {
            Some(english) => format!("translate « {} » as \"{english}\"", self.french),
            None => format!("keep « {} » as it is: do not translate it", self.french),
        }
    }
}

/// Articles that may open a term and that a translation turns into "the".
const FRENCH_ARTICLES: [&str; 4] = ["le", "la", "les", "l"];

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Glossary {
    terms: Vec<Term>,
}

#[derive(Debug, thiserror::Error)]
#[error("glossary line {line}: {problem}; each line is `french<TAB>english`, or a term alone to keep it untranslated")]
pub struct GlossaryError {
    /// 1-based.
    pub line: usize,
    pub problem: String,
}

impl GlossaryError {
    pub fn kind(&self) -> crate::failure::FailureKind {
        crate::failure::FailureKind::Usage
    }
}

impl Glossary {
    pub fn parse(text: &str) -> Result<Self, GlossaryError> {
        let mut terms: Vec<Term> = Vec::new();
        for (index, line) in text.lines().enumerate() {
            let error = |problem: String| GlossaryError {
                line: index + 1,
                problem,
            };
            let line = line.trim_end_matches('\r');
            if line.trim().is_empty() || line.trim_start().starts_with('#') {
                continue;
            }
            let columns: Vec<&str> = line.split('\t').map(str::trim).collect();
            let (french, english) = match columns[..] {
                [french] => (french, None),
                [french, english] if !english.is_empty() => (french, Some(english)),
                [_, _] => return Err(error("the English column is empty".into())),
                _ => {
                    return Err(error(format!(
                        "{} tab-separated columns, at most 2 expected",
                        columns.len()
                    )))
                }
            };
            let french_words = normalised_words(french);
            if french_words.is_empty() {
                return Err(error("the French term has no letters or digits".into()));
            }
            let english_words = normalised_words(english.unwrap_or(french));
            if english_words.is_empty() {
                return Err(error("the English term has no letters or digits".into()));
            }
            if let Some(earlier) = terms.iter().find(|t| t.french_words == french_words) {
                if earlier.english.as_deref() != english {
                    return Err(error(format!(
                        "« {french} » is given twice, with different English"
                    )));
                }
                continue;
            }
            terms.push(Term {
                french: french.to_string(),
                english: english.map(str::to_string),
                french_words,
                english_words,
            });
        }
        Ok(Glossary { terms })
    }

    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    pub fn len(&self) -> usize {
        self.terms.len()
    }

    /// The term whose French is `french`, as the glossary spells it.
    pub fn term(&self, french: &str) -> Option<&Term> {
        self.terms.iter().find(|t| t.french == french)
    }

    /// The terms that occur in `french`. A term inside a longer one that also occurs is left
    /// out («  cour » inside « cour d'appel »).
    pub fn terms_in(&self, french: &str) -> Vec<&Term> {
        let words = normalised_words(french);
        let found: Vec<&Term> = self
            .terms
            .iter()
            .filter(|t| contains_words(&words, &t.french_words, false))
            .collect();
        found
            .iter()
            .filter(|t| {
                !found.iter().any(|longer| {
                    longer.french_words.len() > t.french_words.len()
                        && contains_words(&longer.french_words, &t.french_words, false)
                })
            })
            .copied()
            .collect()
    }

    /// The hints for the terms in `french`, one a term.
    pub fn hints(&self, french: &str) -> Vec<String> {
        self.terms_in(french).into_iter().map(Term::hint).collect()
    }

    /// A finding for each term of `french` whose English is not in `english`.
    pub fn check(&self, french: &str, english: &str, paragraph: usize) -> Vec<Finding> {
        let english_words = normalised_words(english);
        self.terms_in(french)
            .into_iter()
            .filter(|t| !contains_words(&english_words, &t.english_words, true))
            .map(|t| Finding {
                kind: Kind::Glossary,
                stage: Stage::Translation,
                source_text: t.french.clone(),
                output_text: t.rendering_in(english).unwrap_or_default().to_string(),
                paragraph: Some(paragraph),
                sentence: None,
                problem: match &t.english {
                    Some(english) => format!("the glossary's \"{english}\" is not used"),
                    None => "the glossary keeps this term as it is, and the translation does not"
                        .to_string(),
                },
            })
            .collect()
    }
}

/// Whether `needle` occurs as consecutive words of `words`; with `plural`, a word may take an
/// English plural ending ("court of appeal" is in "two courts of appeal").
fn contains_words(words: &[String], needle: &[String], plural: bool) -> bool {
    let same = |w: &String, n: &String| {
        w == n || (plural && (w.strip_suffix('s') == Some(n) || w.strip_suffix("es") == Some(n)))
    };
    words
        .windows(needle.len())
        .any(|window| window.iter().zip(needle).all(|(w, n)| same(w, n)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GLOSSARY: &str = "# terms of the health desk\n\
                            rage\trabies\n\
                            cour d'appel\tcourt of appeal\n\
                            cour\tcourt\n\
                            \n\
                            La Presse\n";

    #[test]
    fn terms_are_found_as_whole_words_ignoring_case_and_accents() {
        let glossary = Glossary::parse(GLOSSARY).unwrap();
        assert_eq!(glossary.len(), 4);
        let french = |text| -> Vec<String> {
            glossary
                .terms_in(text)
                .into_iter()
                .map(|t| t.french.clone())
                .collect()
        };
        assert_eq!(french("Un cas de Rage à Paris"), ["rage"]);
        assert!(french("Il enrage.").is_empty());
        assert_eq!(french("La Cour d’appel a jugé."), ["cour d'appel"]);
        assert_eq!(french("selon LA PRESSE"), ["La Presse"]);
    }

    #[test]
    fn the_check_reports_unused_terms_only() {
        let glossary = Glossary::parse(GLOSSARY).unwrap();
        let fr = "Un cas de rage, selon La Presse.";
        assert!(glossary
            .check(fr, "A case of rabies, according to La Presse.", 0)
            .is_empty());
        let findings = glossary.check(fr, "A case of rage, according to the press.", 3);
        let found: Vec<(&str, Kind, Option<usize>)> = findings
            .iter()
            .map(|f| (f.source_text.as_str(), f.kind, f.paragraph))
            .collect();
        assert_eq!(
            found,
            [
                ("rage", Kind::Glossary, Some(3)),
                ("La Presse", Kind::Glossary, Some(3))
            ]
        );
        assert!(glossary
            .check("Deux cours d'appel.", "Two courts of appeal.", 0)
            .is_empty());
    }

    #[test]
    fn hints_say_how_to_render_each_term() {
        let glossary = Glossary::parse(GLOSSARY).unwrap();
        assert_eq!(
            glossary.hints("La rage, selon La Presse."),
            [
                "translate « rage » as \"rabies\"",
                "keep « La Presse » as it is: do not translate it"
            ]
        );
    }

    #[test]
    fn malformed_lines_are_refused_with_their_number() {
        let error = |text: &str| Glossary::parse(text).unwrap_err();
        assert_eq!(error("rage\trabies\na\tb\tc\n").line, 2);
        assert!(error("rage\t\n")
            .to_string()
            .contains("English column is empty"));
        assert!(error("rage\trabies\nRage\tfury\n")
            .to_string()
            .contains("twice"));
        assert!(error("...\tx\n")
            .to_string()
            .starts_with("glossary line 1:"));
        // The same line twice is no contradiction.
        assert_eq!(
            Glossary::parse("rage\trabies\nrage\trabies\n")
                .unwrap()
                .len(),
            1
        );
    }
}
