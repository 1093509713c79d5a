//! The summary around the models: which article sentences matter (extractive ranking), what the
//! language model is shown (the article, or its key passages when it is long), and which
//! article sentences support each sentence the model wrote (provenance).
//!
//! Everything here works on sentence vectors of unit length, from the embedding model or, as a
//! fallback, from TF-IDF; the similarity of two sentences is their dot product.

use serde::Serialize;

use crate::text::segment::sentences;

pub mod candidate;
mod provenance;
mod rank;
pub mod similarity;
mod source;
pub mod tfidf;

pub use provenance::*;
pub use rank::*;
pub use similarity::cosine;
pub use source::*;

#[cfg(test)]
mod tests {
    use super::*;
    use tfidf::TfIdf;

    fn demo() -> Vec<String> {
        vec![
            "Putin and Trump met in Alaska in mid-August. The summit in Alaska ended without a deal on Ukraine.".into(),
            "The weather was fine. Trump said the Alaska summit on Ukraine was constructive.".into(),
            "Source : https://example.org/a.html".into(),
            "Comment (0)".into(),
        ]
    }

    fn tfidf_vectors(sentences: &[ArticleSentence]) -> Vec<Vec<f32>> {
        let texts: Vec<&str> = sentences.iter().map(|s| s.text.as_str()).collect();
        let tfidf = TfIdf::fit(&texts);
        texts.iter().map(|t| tfidf.vector(t)).collect()
    }

    #[test]
    fn sentences_know_their_place_and_trailers_are_not_content() {
        let s = article_sentences(&demo());
        let where_: Vec<(usize, usize, bool)> = s
            .iter()
            .map(|s| (s.paragraph, s.sentence, s.content))
            .collect();
        assert_eq!(
            where_,
            [
                (0, 0, true),
                (0, 1, true),
                (1, 0, true),
                (1, 1, true),
                (2, 0, false),
                (3, 0, false)
            ]
        );
    }

    #[test]
    fn extraction_prefers_central_sentences_skips_trailers_and_keeps_article_order() {
        let s = article_sentences(&demo());
        let v = tfidf_vectors(&s);
        let picked = extract(&s, &v, 2, &RankOptions::default());
        assert_eq!(picked.len(), 2);
        assert!(picked.iter().all(|p| p.text != "The weather was fine."));
        assert!(picked.windows(2).all(|w| w[0].index < w[1].index));
        // Asking for more than there is gives every body sentence, never a trailer.
        assert_eq!(extract(&s, &v, 10, &RankOptions::default()).len(), 4);
        assert!(extract(&[], &[], 3, &RankOptions::default()).is_empty());
    }

    #[test]
    fn mmr_avoids_picking_a_duplicate() {
        let paragraphs = vec![
            "Putin and Trump met in Alaska. Putin and Trump met in Alaska. The talks covered Ukraine and trade between the two countries.".to_string(),
        ];
        let s = article_sentences(&paragraphs);
        let v = tfidf_vectors(&s);
        let picked = extract(&s, &v, 2, &RankOptions::default());
        let texts: Vec<&str> = picked.iter().map(|p| p.text.as_str()).collect();
        assert_eq!(
            texts,
            [
                "Putin and Trump met in Alaska.",
                "The talks covered Ukraine and trade between the two countries."
            ]
        );
    }

    #[test]
    fn a_long_article_is_cut_into_sections_that_fit() {
        let s = article_sentences(&demo());
        let words = |t: &str| -> Result<usize, ()> { Ok(t.split_whitespace().count()) };
        let whole = summary_source(&demo(), &s, 1000, &words).unwrap();
        let SummarySource::Whole(text) = whole else {
            panic!("{whole:?}")
        };
        assert!(!text.contains("Comment") && !text.contains("https"));
        assert_eq!(text.split("\n\n").count(), 2);
        let SummarySource::Sections(sections) = summary_source(&demo(), &s, 12, &words).unwrap()
        else {
            panic!("not cut")
        };
        assert!(sections.len() >= 2, "{sections:?}");
        assert!(
            sections.iter().all(|t| words(t).unwrap() <= 12),
            "{sections:?}"
        );
        // Nothing of the body is lost or repeated.
        let joined: Vec<&str> = sections.iter().flat_map(|t| t.split_whitespace()).collect();
        assert_eq!(joined, text.split_whitespace().collect::<Vec<_>>());
    }

    #[test]
    fn provenance_links_and_flags() {
        let s = article_sentences(&demo());
        let texts: Vec<&str> = s.iter().map(|s| s.text.as_str()).collect();
        let tfidf = TfIdf::fit(&texts);
        let v: Vec<Vec<f32>> = texts.iter().map(|t| tfidf.vector(t)).collect();
        let summary = [
            "The summit in Alaska ended without a deal.",
            "Bananas are yellow fruit.",
        ];
        let sv: Vec<Vec<f32>> = summary.iter().map(|t| tfidf.vector(t)).collect();
        let p = provenance(&summary, &sv, &s, &v, SUPPORT_THRESHOLD_TFIDF);
        assert!(p[0].supported);
        assert_eq!(
            (p[0].support[0].paragraph, p[0].support[0].sentence),
            (0, 1)
        );
        assert!(!p[1].supported && p[1].support.is_empty());
    }
}
