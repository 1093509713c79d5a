//! The summary step: key sentences ranked from the article, and the abstractive paragraph
//! with the article sentences that support each of its sentences.

use serde::Serialize;

use super::{token_step, unless_interrupted, PipelineError, Progress};
use crate::{
    engines::{
        tasks::{self, Output, TokenProgress},
        Embedder, EngineError, LlmEngine, StopReason,
    },
    summarize::{
        self as summary, article_sentences, tfidf::TfIdf, Extracted, RankOptions, SupportedSentence,
    },
    text::segment,
};

/// How sentences are turned into vectors for ranking and provenance.
pub enum SentenceVectors<'a> {
    /// A sentence-embedding model, with its catalog id.
    Embedder {
        embedder: &'a Embedder,
        model_id: String,
    },
    /// TF-IDF over the article's words: the fallback when no embedding model is available.
    TfIdf,
}

impl SentenceVectors<'_> {
    /// The name reported in the output: the model id, or `tf-idf`.
    pub fn name(&self) -> &str {
        match self {
            SentenceVectors::Embedder { model_id, .. } => model_id,
            SentenceVectors::TfIdf => "tf-idf",
        }
    }

    fn support_threshold(&self) -> f32 {
        match self {
            SentenceVectors::Embedder { .. } => summary::SUPPORT_THRESHOLD_EMBEDDING,
            SentenceVectors::TfIdf => summary::SUPPORT_THRESHOLD_TFIDF,
        }
    }
}

/// Article sentences turned into vectors, ready to compare further sentences with.
struct Space<'a> {
    vectors: &'a SentenceVectors<'a>,
    tfidf: Option<TfIdf>,
}

impl<'a> Space<'a> {
    fn fit(vectors: &'a SentenceVectors<'a>, article: &[&str]) -> Self {
        let tfidf = matches!(vectors, SentenceVectors::TfIdf).then(|| TfIdf::fit(article));
        Space { vectors, tfidf }
    }

    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, PipelineError> {
        match (self.vectors, &self.tfidf) {
            (SentenceVectors::Embedder { embedder, .. }, _) => Ok(embedder.embed(texts)?),
            (_, Some(tfidf)) => Ok(texts.iter().map(|t| tfidf.vector(t)).collect()),
            (SentenceVectors::TfIdf, None) => unreachable!("fit() builds the TF-IDF table"),
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct SummaryOptions {
    /// Sentences in the extractive summary.
    pub sentences: usize,
    pub extractive: bool,
    pub abstractive: bool,
    pub max_new_tokens: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// What compared sentences: the embedding model's id, or `tf-idf` (the fallback).
    pub similarity: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extractive: Option<Vec<Extracted>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub abstractive: Option<Abstractive>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Abstractive {
    pub model: String,
    pub text: String,
    /// Each sentence of `text` with the article sentences that support it.
    pub sentences: Vec<SupportedSentence>,
    /// Body sentences of the article left out of the prompt to fit it (0: the whole article).
    pub omitted_sentences: usize,
    #[serde(flatten)]
    pub request: Output,
}

/// Article tokens the language model is shown at most when summarising. Long enough for most
/// news articles whole (CNN/DailyMail's average is about 750 tokens), short enough that the
/// prompt takes well under a minute on two CPU cores; longer articles are condensed around
/// their key sentences.
pub const SUMMARY_SOURCE_TOKENS: usize = 2048;

/// Summarises an English article given as paragraphs: extractive key sentences, and an
/// abstractive paragraph from `generator` with the article sentences that support each of its
/// sentences.
pub fn summarize_article(
    generator: Option<(&mut LlmEngine, &str)>,
    vectors: &SentenceVectors<'_>,
    paragraphs: &[String],
    options: &SummaryOptions,
    progress: &mut dyn FnMut(Progress<'_>),
    warnings: &mut Vec<String>,
) -> Result<Summary, PipelineError> {
    let mut sentences = article_sentences(paragraphs);
    if sentences.is_empty() {
        return Err(PipelineError::EmptyInput);
    }
    if !sentences.iter().any(|s| s.content) {
        // A very short text is all body: better a summary of it than none.
        sentences.iter_mut().for_each(|s| s.content = true);
    }
    let texts: Vec<&str> = sentences.iter().map(|s| s.text.as_str()).collect();
    let space = Space::fit(vectors, &texts);
    let article_vectors = space.embed(&texts)?;
    let rank = RankOptions::default();
    let relevance = summary::relevance(&sentences, &article_vectors, &rank);
    let extractive = options
        .extractive
        .then(|| summary::extract(&sentences, &article_vectors, options.sentences, &rank));

    let abstractive = match generator {
        Some((engine, model_id)) if options.abstractive => {
            progress(Progress::Summary);
            let source = {
                let count = |text: &str| engine.tokenizer().encode_text(text).map(|t| t.len());
                summary::summary_source(
                    paragraphs,
                    &sentences,
                    &relevance,
                    SUMMARY_SOURCE_TOKENS,
                    &count,
                )
                .map_err(|e| PipelineError::Engine(EngineError::Prompt(e)))?
            };
            let mut on_token = |p: TokenProgress<'_>| token_step(progress, p);
            let output = unless_interrupted(tasks::summarize(
                engine,
                &source.text,
                options.max_new_tokens,
                &mut on_token,
            )?)?;
            if output.stop != StopReason::EndToken {
                warnings.push(format!(
                    "the summary stopped early ({})",
                    tasks::stop_name(output.stop)
                ));
            }
            let written: Vec<&str> = segment::sentences(&output.text)
                .into_iter()
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .collect();
            let written_vectors = space.embed(&written)?;
            let supported = summary::provenance(
                &written,
                &written_vectors,
                &sentences,
                &article_vectors,
                vectors.support_threshold(),
            );
            for (n, s) in supported.iter().enumerate().filter(|(_, s)| !s.supported) {
                warnings.push(format!(
                    "summary sentence {} has no support in the article (best similarity {:.2}): {}",
                    n + 1,
                    s.best_similarity,
                    s.text
                ));
            }
            Some(Abstractive {
                model: model_id.to_string(),
                text: output.text.clone(),
                sentences: supported,
                omitted_sentences: source.omitted,
                request: output,
            })
        }
        _ => None,
    };
    Ok(Summary {
        similarity: vectors.name().to_string(),
        extractive,
        abstractive,
    })
}
