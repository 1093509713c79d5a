//! TF-IDF sentence vectors: the similarity precis falls back on when no embedding model is
//! available. Words only, so it sees "Putin met Trump" and "the two presidents met" as
//! unrelated; it is a fallback, and the output says when it was used.

use std::collections::HashMap;

/// Function words of English and French that carry no topic.
const STOPWORDS: &[&str] = &[
    "a", "an", "and", "are", "as", "at", "be", "been", "but", "by", "for", "from", "had", "has",
    "have", "he", "her", "his", "i", "in", "is", "it", "its", "of", "on", "or", "she", "that",
    "the", "their", "them", "they", "this", "to", "was", "were", "which", "who", "will", "with",
    "would", "we", "you", "not", "no", "also", "after", "said", "says", "than", "there", "into",
    "about", "more", "out", "up", "so", "if", "what", "when", "all", "one", "can", "could", "our",
    "le", "la", "les", "un", "une", "des", "du", "de", "d", "l", "et", "est", "en", "que", "qui",
    "dans", "pour", "par", "sur", "au", "aux", "ce", "ces", "il", "elle", "ils", "elles", "se",
    "sa", "son", "ses", "ne", "pas", "plus", "a", "été", "ont", "avec", "mais", "ou", "qu",
];

/// Lower-cased words of letters and digits, without stopwords.
pub fn terms(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .filter(|w| !STOPWORDS.contains(&w.as_str()))
        .collect()
}

/// Inverse document frequencies over the sentences of one article.
pub struct TfIdf {
    vocabulary: HashMap<String, usize>,
    idf: Vec<f32>,
    unseen_idf: f32,
}

impl TfIdf {
    pub fn fit<S: AsRef<str>>(documents: &[S]) -> Self {
        let mut vocabulary = HashMap::new();
        let mut frequency: Vec<usize> = Vec::new();
        for document in documents {
            let mut seen = std::collections::HashSet::new();
            for term in terms(document.as_ref()) {
                if seen.insert(term.clone()) {
                    let next = vocabulary.len();
                    let id = *vocabulary.entry(term).or_insert(next);
                    if id == frequency.len() {
                        frequency.push(0);
                    }
                    frequency[id] += 1;
                }
            }
        }
        let n = documents.len() as f32;
        // Smoothed idf, as scikit-learn's default: never zero, so a word in every sentence
        // still counts a little.
        let idf = frequency
            .iter()
            .map(|&df| ((1.0 + n) / (1.0 + df as f32)).ln() + 1.0)
            .collect();
        TfIdf {
            vocabulary,
            idf,
            unseen_idf: (1.0 + n).ln() + 1.0,
        }
    }

    /// A unit vector over the vocabulary plus one last component that holds the weight of the
    /// words the article does not contain: they add nothing to any dot product with the
    /// article's sentences but still lower the cosine, as they should.
    pub fn vector(&self, text: &str) -> Vec<f32> {
        let mut v = vec![0.0f32; self.idf.len() + 1];
        let mut unseen: HashMap<String, f32> = HashMap::new();
        for term in terms(text) {
            match self.vocabulary.get(&term) {
                Some(&id) => v[id] += self.idf[id],
                None => *unseen.entry(term).or_default() += self.unseen_idf,
            }
        }
        let last = v.len() - 1;
        v[last] = unseen.values().map(|w| w * w).sum::<f32>().sqrt();
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        if norm > 0.0 {
            v.iter_mut().for_each(|x| *x /= norm);
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::summarize::cosine;

    #[test]
    fn shared_rare_words_make_sentences_similar() {
        let docs = [
            "Putin met Trump in Alaska.",
            "The summit in Alaska ended without a deal.",
            "Football scores were announced.",
        ];
        let tfidf = TfIdf::fit(&docs);
        let v: Vec<Vec<f32>> = docs.iter().map(|d| tfidf.vector(d)).collect();
        assert!(cosine(&v[0], &v[1]) > 0.1);
        assert_eq!(cosine(&v[0], &v[2]), 0.0);
        assert!((cosine(&v[0], &v[0]) - 1.0).abs() < 1e-5);
        // Words the article lacks lower the similarity instead of being ignored.
        let partly_new = tfidf.vector("Putin met Trump in Alaska and Biden in Paris.");
        assert!(cosine(&partly_new, &v[0]) < 0.9);
        assert!(tfidf.vector("").iter().all(|&x| x == 0.0));
    }
}
