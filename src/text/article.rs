//! An article as paragraphs, with the line breaks between them, so a translation can be put
//! back in exactly the same layout.

use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Paragraph {
    pub text: String,
    /// The whitespace that followed the paragraph in the input (`"\n"`, `"\n\n"`, or `""` at
    /// the end), reproduced between translated paragraphs.
    #[serde(skip)]
    pub gap_after: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Article {
    /// Whitespace before the first paragraph, kept so the layout round-trips.
    leading: String,
    pub paragraphs: Vec<Paragraph>,
}

impl Article {
    /// Splits text into paragraphs at line breaks: every non-blank line is a paragraph (news
    /// sites separate paragraphs by single or double newlines). Trailer lines (source URL,
    /// comment counters) are paragraphs like any other; nothing is dropped.
    pub fn parse(text: &str) -> Article {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut paragraphs: Vec<Paragraph> = Vec::new();
        let mut leading = String::new();
        for line in text.split_inclusive('\n') {
            let content = line.trim_end_matches(['\n', '\r']);
            let ending = &line[content.len()..];
            if content.trim().is_empty() {
                match paragraphs.last_mut() {
                    Some(last) => last.gap_after.push_str(&normalise_breaks(line)),
                    None => leading.push_str(&normalise_breaks(line)),
                }
                continue;
            }
            paragraphs.push(Paragraph {
                text: content.trim().to_string(),
                gap_after: normalise_breaks(ending),
            });
        }
        Article {
            leading,
            paragraphs,
        }
    }

    /// The article with each paragraph replaced by `texts[i]`, in the original layout.
    pub fn reassemble<S: AsRef<str>>(&self, texts: &[S]) -> String {
        assert_eq!(texts.len(), self.paragraphs.len(), "one text per paragraph");
        let mut out = self.leading.clone();
        for (paragraph, text) in self.paragraphs.iter().zip(texts) {
            out.push_str(text.as_ref());
            out.push_str(&paragraph.gap_after);
        }
        out
    }

    pub fn text(&self) -> String {
        let texts: Vec<&str> = self.paragraphs.iter().map(|p| p.text.as_str()).collect();
        self.reassemble(&texts)
    }

    pub fn is_empty(&self) -> bool {
        self.paragraphs.is_empty()
    }
}

/// Blank lines keep their count but lose trailing spaces; a Windows line end (CRLF) stays one,
/// so a CRLF article is translated into a CRLF article.
fn normalise_breaks(whitespace: &str) -> String {
    let end = if whitespace.contains("\r\n") {
        "\r\n"
    } else {
        "\n"
    };
    end.repeat(whitespace.matches('\n').count())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_and_double_newlines_both_separate_paragraphs_and_round_trip() {
        let text =
            "Titre\n\nPremier paragraphe.\nDeuxième paragraphe.\n\n\nSource : https://x.y/z\n";
        let article = Article::parse(text);
        let texts: Vec<&str> = article.paragraphs.iter().map(|p| p.text.as_str()).collect();
        assert_eq!(
            texts,
            [
                "Titre",
                "Premier paragraphe.",
                "Deuxième paragraphe.",
                "Source : https://x.y/z"
            ]
        );
        assert_eq!(article.text(), text);
        assert_eq!(
            article.reassemble(&["T", "P1", "P2", "S"]),
            "T\n\nP1\nP2\n\n\nS\n"
        );
    }

    #[test]
    fn crlf_bom_and_blank_input() {
        let article = Article::parse("\u{feff}Un.\r\n\r\nDeux.\r\n");
        assert_eq!(article.paragraphs.len(), 2);
        let texts: Vec<&str> = article.paragraphs.iter().map(|p| p.text.as_str()).collect();
        assert_eq!(texts, ["Un.", "Deux."]);
        assert_eq!(article.text(), "Un.\r\n\r\nDeux.\r\n");
        assert!(Article::parse(" \n\t\n").is_empty());
    }

    #[test]
    fn the_demo_article_has_its_body_and_trailer_paragraphs() {
        let text = include_str!("../../examples/alaska-summit.fr.txt");
        let article = Article::parse(text);
        // Seven body paragraphs, then the video teaser, the source line and the comment counter.
        assert_eq!(article.paragraphs.len(), 10);
        assert!(article.paragraphs[7].text.starts_with(">>>"));
        assert!(article.paragraphs[8].text.starts_with("Source : https://"));
        assert_eq!(article.paragraphs[9].text, "Comment (0)");
    }
}
