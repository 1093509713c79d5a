//! Coverage: a translation clearly shorter than its source has dropped something, even when it
//! ended normally. Measured as characters of English per character of French, sentence by
//! sentence where both sides have as many sentences, else over the whole paragraph.

use crate::text::segment::sentences;

/// English shorter than this share of its French is reported. Professional translations
/// (sources of 40 characters or more) go under it on fewer than 0.5% of their pairs: at the
/// 0.5th percentile the ratio is 0.56 on FLORES-200 dev, 0.52 on newstest2013, 0.53 on
/// NTREX-128 and 0.61 on newstest2014-fr (`tests/fidelity_references.rs` holds the rate).
const SHORTEST_SHARE: f64 = 0.5;

/// Shorter sources vary too much in length ("Oui." / "Yes, he did.") to be judged.
const SHORTEST_JUDGED_SOURCE: usize = 40;

/// A part of the source whose translation is too short to hold all of it.
pub(super) struct Shortfall<'a> {
    /// The source sentence, or the whole paragraph when its sentences cannot be paired.
    pub source: &'a str,
    /// Its translation.
    pub output: &'a str,
    /// Characters of output per character of source.
    pub share: f64,
}

pub(super) fn shortfalls<'a>(french: &'a str, english: &'a str) -> Vec<Shortfall<'a>> {
    let split = |text: &'a str| -> Vec<&'a str> {
        sentences(text)
            .into_iter()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect()
    };
    let (fr, en) = (split(french), split(english));
    let pairs: Vec<(&str, &str)> = if fr.len() == en.len() && fr.len() > 1 {
        fr.into_iter().zip(en).collect()
    } else {
        vec![(french.trim(), english.trim())]
    };
    pairs
        .into_iter()
        .filter_map(|(source, output)| {
            let source_chars = prose_chars(source);
            if source_chars < SHORTEST_JUDGED_SOURCE {
                return None;
            }
            let share = prose_chars(output) as f64 / source_chars as f64;
            (share < SHORTEST_SHARE).then_some(Shortfall {
                source,
                output,
                share,
            })
        })
        .collect()
}

/// Characters of `text` outside web addresses, which are copied, not translated (a lost link
/// is the link check's finding).
fn prose_chars(text: &str) -> usize {
    text.split(' ')
        .filter(|word| !word.contains("://") && !word.starts_with("www."))
        .map(|word| word.chars().count() + 1)
        .sum::<usize>()
        .saturating_sub(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dropped_clause_is_found_in_its_sentence() {
        let fr = "Le maire a parlé hier. « Je leur ai dit que je n'étais pas prêt », a-t-il \
                  affirmé lors d'une entrevue avec La Presse Canadienne mercredi.";
        let en = "The mayor spoke yesterday. He said he wasn't ready to meet them.";
        let found = shortfalls(fr, en);
        assert_eq!(found.len(), 1);
        assert!(found[0].source.starts_with("« Je leur ai dit"));
        assert_eq!(found[0].output, "He said he wasn't ready to meet them.");
        assert!(found[0].share < 0.4, "{}", found[0].share);
    }

    #[test]
    fn whole_translations_and_short_sources_pass() {
        let fr = "La Maison Blanche a annoncé mercredi un sommet entre les deux présidents.";
        let en = "The White House announced on Wednesday a summit between the two presidents.";
        assert!(shortfalls(fr, en).is_empty());
        assert!(shortfalls("Oui, absolument.", "Yes.").is_empty());
        // Sentences merged by the translation are judged over the paragraph.
        let fr = "Il pleut. Le match de football prévu à Lyon samedi soir est donc reporté.";
        let en = "It is raining, so the football match planned in Lyon on Saturday night is off.";
        assert!(shortfalls(fr, en).is_empty());
        assert_eq!(shortfalls(fr, "It rains.").len(), 1);
        // A link is not prose to translate.
        let fr = "Source : https://example.org/un-tres-long-chemin-vers-un-article-de-presse.html";
        assert!(shortfalls(fr, "Read more.").is_empty());
    }
}
