//! Owns the article job: engine choice and loading (`models`), the job end to end (`job`), the
//! translation with its repairs (`translate`), and the other steps here: summary, fidelity.

use std::{ops::ControlFlow, time::Duration};

use serde::Serialize;

use crate::{
    engines::{
        embedder::EmbedError,
        tasks::{self, Output, TokenProgress},
        Embedder, EngineError, LlmEngine, StopReason,
    },
    failure::FailureKind,
    fidelity::{self, Finding, Glossary},
    interrupt,
    summarize::{
        self as summary, article_sentences, tfidf::TfIdf, Extracted, RankOptions, SupportedSentence,
    },
    text::{segment, Article},
};

pub mod job;
pub mod models;
pub mod translate;

pub use job::{run_article, ArticleJob, ArticleReport, Job};
pub use models::{ModelSource, TranslatorChoice};
pub use translate::{
    paragraph_findings, translate_article, Repair, RepairMethod, TranslatedParagraph, Translation,
};

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Load(#[from] crate::load::LoadError),
    /// A model that cannot do what is asked of it (a Marian id for the generator, ...).
    #[error("{0}")]
    WrongModel(String),
    #[error("cannot load model {id} (`precis models verify {id}` checks its files and moves damaged ones aside; `precis models fetch --force {id}` downloads them again)")]
    CannotLoad {
        id: String,
        /// The kind of `source`, which is an engine's error.
        kind: FailureKind,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Embed(#[from] EmbedError),
    #[error("the input has no text to translate")]
    EmptyInput,
    #[error("interrupted (Ctrl-C); nothing was written")]
    Interrupted,
}

impl PipelineError {
    pub fn kind(&self) -> FailureKind {
        match self {
            PipelineError::Load(e) => e.kind(),
            PipelineError::WrongModel(_) => FailureKind::ModelMissing,
            PipelineError::CannotLoad { kind, .. } => *kind,
            PipelineError::Engine(e) => e.kind(),
            PipelineError::Embed(e) => e.kind(),
            PipelineError::EmptyInput => FailureKind::Input,
            PipelineError::Interrupted => FailureKind::Interrupted,
        }
    }
}

/// What the pipeline reports while it works.
pub enum Progress<'a> {
    /// Starting paragraph `index` (0-based) of `count`.
    Paragraph {
        index: usize,
        count: usize,
    },
    /// Starting the summary.
    Summary,
    Token(TokenProgress<'a>),
    /// Something the user may like to know (which engine translates, a model loading), which
    /// `--quiet` hides.
    Notice(String),
}

/// Reports a generated token, and stops the generation once the user has pressed Ctrl-C
/// (checked per token, so a long request stops within one forward pass).
fn token_step(progress: &mut dyn FnMut(Progress<'_>), token: TokenProgress<'_>) -> ControlFlow<()> {
    progress(Progress::Token(token));
    if interrupt::requested() {
        ControlFlow::Break(())
    } else {
        ControlFlow::Continue(())
    }
}

/// A request that [`token_step`] stopped is no result: the whole command stops.
fn unless_interrupted(output: Output) -> Result<Output, PipelineError> {
    if output.stop == StopReason::Cancelled {
        Err(PipelineError::Interrupted)
    } else {
        Ok(output)
    }
}

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

/// The fidelity findings of a run: each translated paragraph against its French source, and
/// the abstractive summary against the English article (the translation, or the input of
/// `summarize`). The extractive sentences are the article's own and need no check.
pub fn check_fidelity(
    article: &Article,
    glossary: &Glossary,
    translation: Option<&Translation>,
    summary: Option<&Summary>,
) -> Vec<Finding> {
    let mut findings = Vec::new();
    if let Some(translation) = translation {
        for (index, paragraph) in translation.paragraphs.iter().enumerate() {
            if paragraph.translated {
                findings.extend(paragraph_findings(
                    &paragraph.source,
                    &paragraph.text,
                    index,
                    glossary,
                ));
            }
        }
    }
    if let Some(abstractive) = summary.and_then(|s| s.abstractive.as_ref()) {
        let english: Vec<&str> = match translation {
            Some(t) => t.paragraphs.iter().map(|p| p.text.as_str()).collect(),
            None => article.paragraphs.iter().map(|p| p.text.as_str()).collect(),
        };
        findings.extend(fidelity::check_summary(
            &english.join("\n\n"),
            &abstractive.text,
        ));
    }
    findings
}

/// Wall-clock and token figures of a run, as `--format json` reports them.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Timings {
    /// Finding, verifying the presence of, and loading the model files.
    pub load_ms: u64,
    /// Turning prompts into token ids.
    pub tokenize_ms: u64,
    pub translate_ms: u64,
    pub summarize_ms: u64,
    /// Loading the sentence-embedding model (the rest of its work is in `summarize_ms`).
    pub embed_load_ms: u64,
    /// Checking numbers, dates, names and quotations of the outputs against their sources.
    pub fidelity_ms: u64,
    pub prompt_tokens: usize,
    pub generated_tokens: usize,
    /// Prompt tokens over the time of the prompt forward passes.
    pub prompt_tokens_per_s: f64,
    /// Tokens after the first of each request over the time of their one-token forward
    /// passes (llama.cpp's "eval" rate).
    pub generated_tokens_per_s: f64,
    pub total_ms: u64,
}

impl Timings {
    /// Sets the token figures from every model request of the run.
    pub fn set_token_figures<'a>(&mut self, requests: impl Iterator<Item = &'a Output>) {
        let mut tokenize = Duration::ZERO;
        let mut prompt_time = Duration::ZERO;
        let mut generation_time = Duration::ZERO;
        let mut decode_steps = 0;
        self.prompt_tokens = 0;
        self.generated_tokens = 0;
        for r in requests {
            tokenize += r.tokenize_time;
            prompt_time += r.prompt_time;
            generation_time += r.generation_time;
            self.prompt_tokens += r.prompt_tokens;
            self.generated_tokens += r.generated_tokens;
            decode_steps += r.generated_tokens.saturating_sub(1);
        }
        self.tokenize_ms = tokenize.as_millis() as u64;
        self.prompt_tokens_per_s = rate(self.prompt_tokens, prompt_time);
        self.generated_tokens_per_s = rate(decode_steps, generation_time);
    }
}

fn rate(count: usize, time: Duration) -> f64 {
    if time.is_zero() {
        0.0
    } else {
        // Two decimals are all a reader needs.
        (count as f64 / time.as_secs_f64() * 100.0).round() / 100.0
    }
}
