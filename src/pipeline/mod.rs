//! Owns the article job: engine choice and loading (`models`), the job end to end (`job`), and
//! its steps here: paragraphs -> chunks -> translation -> summary -> fidelity.

use std::{ops::ControlFlow, time::Duration};

use serde::Serialize;

use crate::{
    engines::{
        constraint::FactRules,
        embedder::EmbedError,
        tasks::{self, Guidance, Output, TokenProgress, Translator},
        Embedder, EngineError, LlmEngine, StopReason,
    },
    failure::FailureKind,
    fidelity::{self, Finding, Glossary},
    interrupt,
    summarize::{
        self as summary, article_sentences, tfidf::TfIdf, Extracted, RankOptions, SupportedSentence,
    },
    text::{
        chunk::chunks_within,
        furniture,
        segment::{self, sentences},
        Article,
    },
};

pub mod job;
pub mod models;

pub use job::{run_article, ArticleJob, ArticleReport, Job};
pub use models::{ModelSource, TranslatorChoice};

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

#[derive(Debug, Clone, Serialize)]
pub struct TranslatedParagraph {
    pub source: String,
    pub text: String,
    /// False when no model translated it: copied unchanged (nothing to translate: a bare URL, a
    /// number), or a page label given its English form (`page_label`).
    pub translated: bool,
    /// A page label ("Commentaires (3)") rendered by `text::furniture`, not translated as prose.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub page_label: bool,
    /// Each attempt to mend what the fidelity check found, kept or not.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub repairs: Vec<Repair>,
    /// One entry per model request.
    pub requests: Vec<Output>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Translation {
    pub model: String,
    pub paragraphs: Vec<TranslatedParagraph>,
    /// The whole translation, in the layout of the source.
    pub text: String,
}

/// Translates every paragraph of the article. Paragraphs longer than one request are cut at
/// sentence boundaries; a request that ends in a loop or at its token limit is retried sentence
/// by sentence, so nothing is silently cut short. The glossary's terms go with every request
/// whose text holds them, and what the fidelity check finds is repaired ([`repair`]).
pub fn translate_article(
    translator: &mut dyn Translator,
    article: &Article,
    glossary: &Glossary,
    progress: &mut dyn FnMut(Progress<'_>),
    warnings: &mut Vec<String>,
) -> Result<Translation, PipelineError> {
    if article.is_empty() {
        return Err(PipelineError::EmptyInput);
    }
    let count = article.paragraphs.len();
    let mut paragraphs = Vec::with_capacity(count);
    for (index, paragraph) in article.paragraphs.iter().enumerate() {
        if interrupt::requested() {
            return Err(PipelineError::Interrupted);
        }
        progress(Progress::Paragraph { index, count });
        let label = furniture::page_label(&paragraph.text);
        if label.is_some() || !has_words_to_translate(&paragraph.text) {
            paragraphs.push(TranslatedParagraph {
                source: paragraph.text.clone(),
                text: label.clone().unwrap_or_else(|| paragraph.text.clone()),
                translated: false,
                page_label: label.is_some(),
                requests: Vec::new(),
                repairs: Vec::new(),
            });
            continue;
        }
        let limit = translator.max_chunk_tokens();
        let chunks = {
            let counter = |text: &str| translator.count_tokens(text);
            chunks_within(&paragraph.text, limit, &counter)?
        };
        let mut pieces = Vec::new();
        let mut requests = Vec::new();
        for chunk in &chunks {
            let mut request = Request {
                translator: &mut *translator,
                glossary,
                progress: &mut *progress,
                requests: &mut requests,
            };
            let output = request.chunk(chunk, &glossary.hints(chunk))?;
            if output.stop != StopReason::EndToken {
                warnings.push(format!(
                    "paragraph {}: the translation stopped early ({}); check it against the source",
                    index + 1,
                    tasks::stop_name(output.stop)
                ));
            }
            pieces.push(output.text);
        }
        let mut text = pieces.join(" ");
        let mut repairs = Vec::new();
        if chunks.len() == 1 {
            let mut request = Request {
                translator: &mut *translator,
                glossary,
                progress: &mut *progress,
                requests: &mut requests,
            };
            text = request.repair(&paragraph.text, text, index, &mut repairs)?;
        }
        paragraphs.push(TranslatedParagraph {
            source: paragraph.text.clone(),
            text,
            translated: true,
            page_label: false,
            requests,
            repairs,
        });
    }
    let texts: Vec<&str> = paragraphs.iter().map(|p| p.text.as_str()).collect();
    Ok(Translation {
        model: translator.model_id().to_string(),
        text: article.reassemble(&texts),
        paragraphs,
    })
}

/// An attempt to mend a translated paragraph: the findings it answered, how it was tried, the
/// text before and after, and whether the new text was kept.
#[derive(Debug, Clone, Serialize)]
pub struct Repair {
    pub findings: Vec<String>,
    pub method: RepairMethod,
    /// What the translator was told (the hint methods).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub hints: Vec<String>,
    pub before: String,
    pub after: String,
    pub kept: bool,
    /// Findings of the new text.
    pub remaining: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RepairMethod {
    /// The paragraph again, with what to keep and how.
    Hints,
    /// The same, decoding under a constraint: the new translation may write the source's
    /// numbers only, a day of the month only where the source gives one, and a month the
    /// source gives as a part ("mi-août") only with that part (`engines::constraint`).
    HintsAndSourceFacts,
    /// One sentence per request: for a translation that dropped part of its source.
    SentenceBySentence,
}

/// Told to the translator after an attempt that mended the findings but came out short.
const LEFT_WORDS_OUT: &str = "the last translation left words out (titles, names or clauses): \
translate every word of the text";

/// Attempts at mending one paragraph: enough for a second try after a partial mend, and a
/// bound that no input can make the repair loop past.
const REPAIR_ATTEMPTS: usize = 2;

/// The findings of one translated paragraph: the fidelity check's and the glossary's.
pub fn paragraph_findings(
    source: &str,
    text: &str,
    index: usize,
    glossary: &Glossary,
) -> Vec<Finding> {
    let mut findings = fidelity::check_translation(source, text, index);
    findings.extend(glossary.check(source, text, index));
    findings
}

/// The translation requests of one paragraph, with what they need around them.
struct Request<'a> {
    translator: &'a mut dyn Translator,
    glossary: &'a Glossary,
    progress: &'a mut dyn FnMut(Progress<'_>),
    requests: &'a mut Vec<Output>,
}

impl Request<'_> {
    /// One request for `text`, with `hints` where the translator takes them.
    fn send(&mut self, text: &str, hints: &[String]) -> Result<Output, PipelineError> {
        let guidance = Guidance {
            hints: hints.to_vec(),
            ..Guidance::default()
        };
        let guided = if hints.is_empty() {
            None
        } else {
            self.send_guided(text, &guidance)?
        };
        match guided {
            Some(output) => Ok(output),
            None => {
                let progress = &mut *self.progress;
                let mut on_token = |p: TokenProgress<'_>| token_step(progress, p);
                let output =
                    unless_interrupted(self.translator.translate(text.trim(), &mut on_token)?)?;
                self.requests.push(output.clone());
                Ok(output)
            }
        }
    }

    /// One request for `text` with `guidance`; `None` from a translator that takes none.
    fn send_guided(
        &mut self,
        text: &str,
        guidance: &Guidance,
    ) -> Result<Option<Output>, PipelineError> {
        let progress = &mut *self.progress;
        let mut on_token = |p: TokenProgress<'_>| token_step(progress, p);
        let Some(output) =
            self.translator
                .translate_guided(text.trim(), guidance, &mut on_token)?
        else {
            return Ok(None);
        };
        let output = unless_interrupted(output)?;
        self.requests.push(output.clone());
        Ok(Some(output))
    }

    /// Translates one chunk; if the model stopped for any reason but its end token, translates
    /// the chunk's sentences one by one instead.
    fn chunk(&mut self, chunk: &str, hints: &[String]) -> Result<Output, PipelineError> {
        let output = self.send(chunk, hints)?;
        if output.stop == StopReason::EndToken || sentences(chunk).len() < 2 {
            return Ok(output);
        }
        self.sentence_by_sentence(chunk)
    }

    /// Each sentence of `text` in a request of its own, with the glossary's terms it holds.
    /// Returns the joined text and the worst stop reason.
    fn sentence_by_sentence(&mut self, text: &str) -> Result<Output, PipelineError> {
        let mut texts = Vec::new();
        let mut last = None;
        let mut stop = StopReason::EndToken;
        for sentence in sentences(text).into_iter().filter(|s| !s.trim().is_empty()) {
            let output = self.send(sentence, &self.glossary.hints(sentence))?;
            if output.stop != StopReason::EndToken {
                stop = output.stop;
            }
            texts.push(output.text.clone());
            last = Some(output);
        }
        let last = last.expect("a chunk has a sentence with words");
        Ok(Output {
            text: texts.join(" "),
            stop,
            ..last
        })
    }

    /// Mends what the fidelity check finds in a paragraph's translation. A translation that
    /// dropped part of its source is translated sentence by sentence; other findings are
    /// answered by translating the paragraph again, told what to keep and how (a date at the
    /// source's precision, the glossary's terms). The new text is kept only if it is strictly
    /// better: fewer findings, ended on the end token, and no shorter than 90% of the text it
    /// replaces (nothing dropped to lose a finding). The check decides; it never rewrites text
    /// itself. Translators that take no hints (Marian) get the sentence-by-sentence repair
    /// only.
    fn repair(
        &mut self,
        source: &str,
        text: String,
        index: usize,
        repairs: &mut Vec<Repair>,
    ) -> Result<String, PipelineError> {
        let mut best = text;
        let mut findings = paragraph_findings(source, &best, index, self.glossary);
        let mut split_tried = false;
        // Set when an attempt mended the findings but left words out.
        let mut came_out_short = false;
        for _ in 0..REPAIR_ATTEMPTS {
            if findings.is_empty() {
                break;
            }
            let dropped = findings.iter().any(|f| f.kind == fidelity::Kind::Omission);
            let (method, hints, output) = if dropped && !split_tried && sentences(source).len() > 1
            {
                split_tried = true;
                let output = self.sentence_by_sentence(source)?;
                (RepairMethod::SentenceBySentence, Vec::new(), output)
            } else {
                let mut hints = self.glossary.hints(source);
                hints.extend(findings.iter().filter_map(fidelity::repair_hint));
                if came_out_short {
                    hints.push(LEFT_WORDS_OUT.to_string());
                }
                // A number or a date the source does not give: the new translation keeps
                // to the source's.
                let facts_wrong = findings
                    .iter()
                    .any(|f| matches!(f.kind, fidelity::Kind::Number | fidelity::Kind::Date));
                let guidance = Guidance {
                    hints,
                    facts: facts_wrong.then(|| FactRules {
                        numbers: fidelity::digit_forms(source),
                        days: fidelity::day_forms(source),
                        qualified_months: fidelity::qualified_months(source),
                    }),
                    // The words before the first wrong fact are kept (a wrong date given
                    // its right form), so that the model takes the path it took up to
                    // there, and goes on under the constraint.
                    reply_start: facts_wrong
                        .then(|| fidelity::repair_start(&best, &findings))
                        .flatten(),
                };
                let Some(output) = self.send_guided(source, &guidance)? else {
                    break;
                };
                let method = if facts_wrong {
                    RepairMethod::HintsAndSourceFacts
                } else {
                    RepairMethod::Hints
                };
                (method, guidance.hints, output)
            };
            let after = paragraph_findings(source, &output.text, index, self.glossary);
            let fewer = output.stop == StopReason::EndToken && after.len() < findings.len();
            let whole = output.text.chars().count() * 10 >= best.chars().count() * 9;
            let kept = fewer && whole;
            repairs.push(Repair {
                findings: findings.iter().map(Finding::describe).collect(),
                method,
                hints,
                before: best.clone(),
                after: output.text.clone(),
                kept,
                remaining: after.iter().map(Finding::describe).collect(),
            });
            if kept {
                best = output.text;
                findings = after;
            } else if fewer && !came_out_short {
                came_out_short = true;
            } else if method != RepairMethod::SentenceBySentence {
                break;
            }
        }
        Ok(best)
    }
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

/// Does the paragraph contain words (outside URLs) that a translator should see?
fn has_words_to_translate(text: &str) -> bool {
    text.split_whitespace()
        .filter(|word| !word.contains("://") && !word.starts_with("www."))
        .any(|word| word.chars().filter(|c| c.is_alphabetic()).count() >= 2)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A translator that answers from a script: the reply for a text, by its first words, and
    /// the hints it was given.
    struct Scripted {
        replies: Vec<(&'static str, &'static str)>,
        /// Replies to requests that carry hints, if it takes them.
        hinted: Option<&'static str>,
        seen_hints: Vec<Vec<String>>,
        calls: usize,
    }

    impl Scripted {
        fn reply(&mut self, french: &str) -> Output {
            self.calls += 1;
            let text = self
                .replies
                .iter()
                .find(|(start, _)| french.starts_with(start))
                .map(|(_, reply)| *reply)
                .unwrap_or_else(|| panic!("no scripted reply for {french:?}"));
            output(text)
        }
    }

    fn output(text: &str) -> Output {
        Output {
            text: text.to_string(),
            stop: StopReason::EndToken,
            prompt_tokens: 0,
            generated_tokens: 0,
            tokenize_time: Duration::ZERO,
            prompt_time: Duration::ZERO,
            generation_time: Duration::ZERO,
            messages: Vec::new(),
            max_new_tokens: 0,
        }
    }

    impl Translator for Scripted {
        fn model_id(&self) -> &str {
            "scripted"
        }
        fn count_tokens(&self, text: &str) -> Result<usize, EngineError> {
            Ok(text.split_whitespace().count())
        }
        fn max_chunk_tokens(&self) -> usize {
            1000
        }
        fn translate(
            &mut self,
            french: &str,
            _: &mut dyn FnMut(TokenProgress<'_>) -> ControlFlow<()>,
        ) -> Result<Output, EngineError> {
            Ok(self.reply(french))
        }
        fn translate_guided(
            &mut self,
            _: &str,
            guidance: &Guidance,
            _: &mut dyn FnMut(TokenProgress<'_>) -> ControlFlow<()>,
        ) -> Result<Option<Output>, EngineError> {
            self.seen_hints.push(guidance.hints.clone());
            Ok(self.hinted.map(|text| {
                self.calls += 1;
                output(text)
            }))
        }
    }

    const TWO_SENTENCES: &str =
        "Le maire de Lyon a parlé hier soir devant le conseil. « Je leur ai \
         dit que je n'étais pas prêt », a-t-il affirmé lors d'une entrevue avec La Presse \
         Canadienne.";

    fn translate(translator: &mut Scripted, french: &str, glossary: &Glossary) -> Translation {
        translate_article(
            translator,
            &Article::parse(french),
            glossary,
            &mut |_| {},
            &mut Vec::new(),
        )
        .unwrap()
    }

    #[test]
    fn a_dropped_sentence_is_translated_again_one_sentence_at_a_time() {
        let mut translator = Scripted {
            replies: vec![
                (
                    "Le maire de Lyon a parlé hier soir devant le conseil. «",
                    "The mayor of Lyon spoke. He was not ready.",
                ),
                (
                    "Le maire",
                    "The mayor of Lyon spoke last night before the council.",
                ),
                (
                    "« Je",
                    "\"I told them I was not ready,\" he said in an interview with The Canadian \
                     Press.",
                ),
            ],
            hinted: None,
            seen_hints: Vec::new(),
            calls: 0,
        };
        let translation = translate(&mut translator, TWO_SENTENCES, &Glossary::default());
        let paragraph = &translation.paragraphs[0];
        assert!(
            paragraph.text.contains("Canadian Press"),
            "{}",
            paragraph.text
        );
        assert_eq!(paragraph.repairs.len(), 1, "{:#?}", paragraph.repairs);
        let repair = &paragraph.repairs[0];
        assert_eq!(repair.method, RepairMethod::SentenceBySentence);
        assert!(repair.kept && repair.findings.iter().any(|f| f.contains("omission")));
        assert_eq!(translator.calls, 3);
    }

    #[test]
    fn a_repair_that_is_no_better_is_dropped_and_the_attempts_are_bounded() {
        // Every request, hinted or not, drops the second sentence: nothing gets better, and the
        // first translation stays.
        let mut translator = Scripted {
            replies: vec![
                (
                    "Le maire de Lyon a parlé hier soir devant le conseil. «",
                    "The mayor spoke.",
                ),
                ("Le maire", "The mayor spoke."),
                ("« Je", "He said."),
            ],
            hinted: Some("The mayor."),
            seen_hints: Vec::new(),
            calls: 0,
        };
        let translation = translate(&mut translator, TWO_SENTENCES, &Glossary::default());
        let paragraph = &translation.paragraphs[0];
        assert_eq!(paragraph.text, "The mayor spoke.");
        assert!(paragraph.repairs.iter().all(|r| !r.kept));
        assert!(paragraph.repairs.len() <= REPAIR_ATTEMPTS);
        assert!(
            translator.calls <= 1 + 2 + 1,
            "{} requests",
            translator.calls
        );
    }

    #[test]
    fn glossary_terms_go_with_the_first_request_and_an_unused_one_is_repaired() {
        let glossary = Glossary::parse("rage\trabies\n").unwrap();
        let french = "Un cas de rage a été détecté chez un chiot.";
        let mut translator = Scripted {
            replies: vec![],
            hinted: Some("A case of rage was found in a puppy."),
            seen_hints: Vec::new(),
            calls: 0,
        };
        let translation = translate(&mut translator, french, &glossary);
        // Asked with the hint, then again in repair, never better: the first text stays, and
        // the finding remains for the report.
        assert_eq!(
            translator.seen_hints[0],
            ["translate « rage » as \"rabies\""]
        );
        let paragraph = &translation.paragraphs[0];
        assert!(paragraph.repairs.iter().all(|r| !r.kept));
        assert_eq!(translator.seen_hints.len(), 2);
        let findings = paragraph_findings(&paragraph.source, &paragraph.text, 0, &glossary);
        assert_eq!(findings.len(), 1);
        assert_eq!(findings[0].kind, fidelity::Kind::Glossary);
    }
}
