//! Page furniture: the labels a news page puts around an article ("Commentaires (3)",
//! "Partager", "Publicité") that end up in a copied article as lines of their own. A language
//! model reads such a line as prose and translates a label as a word ("Comment (0)" became
//! "How (0)"); here a line that is a known label, alone or with a counter, gets the label's
//! English form and keeps its counter, without a model.

/// Known labels (lower case, French or the English a French page may show) and their English.
const LABELS: &[(&str, &str)] = &[
    ("comment", "Comments"),
    ("comments", "Comments"),
    ("commentaire", "Comments"),
    ("commentaires", "Comments"),
    ("réagir", "Comments"),
    ("réactions", "Reactions"),
    ("partager", "Share"),
    ("partages", "Shares"),
    ("share", "Share"),
    ("j'aime", "Likes"),
    ("imprimer", "Print"),
    ("publicité", "Advertisement"),
    ("abonnez-vous", "Subscribe"),
    ("s'abonner", "Subscribe"),
    ("lire aussi", "Read also"),
    ("à lire aussi", "Read also"),
    ("voir aussi", "See also"),
    ("lire la suite", "Read more"),
    ("en savoir plus", "Learn more"),
    ("vidéo", "Video"),
    ("photo", "Photo"),
];

/// The English of `line` if it is a page label: a known label, then optionally a counter in
/// brackets ("Commentaires (12)") or a bare number, and nothing else.
pub fn page_label(line: &str) -> Option<String> {
    let trimmed = line.trim();
    let (word, counter) = match trimmed.rfind('(') {
        Some(open) if trimmed.ends_with(')') => {
            let inside = &trimmed[open + 1..trimmed.len() - 1];
            if inside.is_empty() || !inside.chars().all(|c| c.is_ascii_digit()) {
                return None;
            }
            (trimmed[..open].trim_end(), Some(&trimmed[open..]))
        }
        _ => match trimmed.rsplit_once(char::is_whitespace) {
            Some((word, number)) if number.chars().all(|c| c.is_ascii_digit()) => {
                (word.trim_end(), Some(number))
            }
            _ => (trimmed, None),
        },
    };
    let word = word.trim_end_matches([':', '·', '|']).trim_end();
    let folded = word.to_lowercase().replace('’', "'");
    let english = LABELS
        .iter()
        .find(|(label, _)| *label == folded)
        .map(|(_, english)| *english)?;
    Some(match counter {
        Some(counter) => format!("{english} {counter}"),
        None => english.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_with_and_without_counters() {
        assert_eq!(page_label("Comment (0)").as_deref(), Some("Comments (0)"));
        assert_eq!(
            page_label("  Commentaires (12) ").as_deref(),
            Some("Comments (12)")
        );
        assert_eq!(page_label("Partager").as_deref(), Some("Share"));
        assert_eq!(page_label("Partages 42").as_deref(), Some("Shares 42"));
        assert_eq!(page_label("Lire aussi :").as_deref(), Some("Read also"));
        assert_eq!(page_label("J’aime (3)").as_deref(), Some("Likes (3)"));
    }

    #[test]
    fn prose_and_titles_are_not_labels() {
        for line in [
            "Comment la Russie voit le sommet",
            "Comment (voir ci-dessous)",
            "Lire aussi : Le sommet de l'Alaska",
            "Commentaires des lecteurs",
            "(0)",
            "",
            "Partager ce contenu",
        ] {
            assert_eq!(page_label(line), None, "{line}");
        }
    }
}
