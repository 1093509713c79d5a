//! One article, end to end: the engines chosen and loaded, the translation, the summary, the
//! fidelity check, and the report of all of it with its timings. The commands parse, call
//! [`run_article`] and render; nothing here prints.

use std::num::NonZeroUsize;
use std::time::Instant;

use serde::Serialize;

use super::{
    check_fidelity,
    models::{Chosen, ModelSource, TranslatorChoice},
    summarize_article, translate_article, PipelineError, Progress, SentenceVectors, Summary,
    SummaryOptions, Timings, TranslatedParagraph, Translation,
};
use crate::{
    engines::{
        tasks::{LlmTranslator, Output, SummaryForm, Translator},
        Embedder, LlmEngine, MarianTranslator,
    },
    fidelity::{Finding, Glossary},
    infer::marian::Precision,
    interrupt,
    text::Article,
};

/// Sentences per Marian batch: a paragraph's sentences usually fit in one.
const MARIAN_BATCH: usize = 16;

/// What is asked of the article.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Job {
    /// Translation and summary.
    Run,
    Translate,
    /// The summary of an English article.
    Summarize,
}

/// An article job's settings, validated.
#[derive(Debug, Clone)]
pub struct ArticleJob {
    pub job: Job,
    pub translator: TranslatorChoice,
    /// The Marian model, for `Marian` and `Auto`.
    pub translation_model: String,
    /// The generator; the catalog's default when `None`.
    pub model: Option<String>,
    /// Marian's beam width; its generation config's when `None`.
    pub beams: Option<usize>,
    /// Marian's matrix products (`--precision`).
    pub precision: Precision,
    /// Language-model requests decoded together; the engine's default when `None`.
    pub batch: Option<NonZeroUsize>,
    /// The most tokens the language model may generate in one request.
    pub max_tokens: usize,
    /// Key sentences.
    pub sentences: usize,
    /// The abstractive paragraph's length.
    pub summary_form: SummaryForm,
    /// Article tokens one summary request holds at most (`--summary-request-tokens`).
    pub summary_source_tokens: usize,
    pub extractive: bool,
    pub abstractive: bool,
    /// Terms the translation must render as given (`--glossary`).
    pub glossary: Glossary,
}

#[derive(Serialize)]
pub struct ArticleReport {
    pub input: InputInfo,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub translation: Option<TranslationReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summary: Option<Summary>,
    /// Numbers, dates, names and quotations that differ between a source and its output.
    pub fidelity: Vec<Finding>,
    pub timings: Timings,
    pub warnings: Vec<String>,
    /// The article as parsed, to put the translation back in its layout.
    #[serde(skip)]
    pub article: Article,
}

#[derive(Serialize)]
pub struct InputInfo {
    pub source: String,
    pub paragraphs: usize,
    pub characters: usize,
}

#[derive(Serialize)]
pub struct TranslationReport {
    pub model: String,
    /// The English paragraphs, in the order of the source.
    pub paragraphs: Vec<String>,
    /// Per paragraph: the source, and each model request with its token counts.
    pub details: Vec<TranslatedParagraph>,
}

impl ArticleReport {
    /// Every model request of the run, translation first.
    pub fn requests(&self) -> impl Iterator<Item = &Output> {
        let translation = self
            .translation
            .iter()
            .flat_map(|t| t.details.iter().flat_map(|p| p.requests.iter()));
        let summary = self
            .summary
            .iter()
            .filter_map(|s| s.abstractive.as_ref())
            .flat_map(|a| a.requests());
        translation.chain(summary)
    }
}

/// Runs the job on the article `text` (from `source_name`), loading its models first;
/// `warnings` are those found so far (the input's), which the report carries with the job's
/// own.
pub fn run_article(
    job: &ArticleJob,
    models: ModelSource<'_>,
    source_name: &str,
    text: &str,
    warnings: Vec<String>,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<ArticleReport, PipelineError> {
    let mut engines = Engines::load(job, models, progress)?;
    let mut report = engines.run(job, source_name, text, warnings, progress)?;
    report.timings.load_ms = engines.load_ms;
    report.timings.embed_load_ms = engines.embed_load_ms;
    report.timings.total_ms += engines.load_ms + engines.embed_load_ms;
    Ok(report)
}

/// The models of an article job, loaded once for any number of articles.
pub struct Engines {
    /// The translator chosen; `None` for `Summarize`.
    translator: Option<Chosen>,
    /// The language model with its catalog id, when something needs it: the translation, or
    /// the abstractive summary.
    generator: Option<(LlmEngine, String)>,
    /// The sentence-embedding model; `None` for `Translate`, or when it cannot be had (the
    /// summary then uses TF-IDF, and `load_warnings` says so).
    embedder: Option<(Embedder, String)>,
    /// What loading found that every report should say (a missing embedding model).
    pub load_warnings: Vec<String>,
    pub load_ms: u64,
    pub embed_load_ms: u64,
}

impl Engines {
    pub fn load(
        job: &ArticleJob,
        models: ModelSource<'_>,
        progress: &mut dyn FnMut(Progress<'_>),
    ) -> Result<Engines, PipelineError> {
        let load_started = Instant::now();
        let translator = match job.job {
            Job::Summarize => None,
            Job::Run | Job::Translate => Some(models.choose_translator(
                job.translator,
                &job.translation_model,
                job.model.as_deref(),
                job.beams,
                job.precision,
                progress,
            )?),
        };
        let llm_translates = matches!(translator, Some(Chosen::Llm));
        let llm_summarises = job.job != Job::Translate && job.abstractive;
        let generator = if llm_translates || llm_summarises {
            let (mut engine, id) = models.load_generator(job.model.as_deref(), progress)?;
            if let Some(width) = job.batch {
                engine.set_batch_width(width);
            }
            Some((engine, id))
        } else {
            None
        };
        let load_ms = load_started.elapsed().as_millis() as u64;

        let embed_started = Instant::now();
        let mut load_warnings = Vec::new();
        let embedder = if job.job == Job::Translate {
            None
        } else {
            models.load_embedder(&mut load_warnings)
        };
        Ok(Engines {
            translator,
            generator,
            embedder,
            load_warnings,
            load_ms,
            embed_load_ms: embed_started.elapsed().as_millis() as u64,
        })
    }

    /// Runs the job on the article `text` (from `source_name`) with the loaded models;
    /// `warnings` are those found so far (the input's). The report's timings leave out the
    /// loading, which [`Engines::load_ms`] has.
    pub fn run(
        &mut self,
        job: &ArticleJob,
        source_name: &str,
        text: &str,
        mut warnings: Vec<String>,
        progress: &mut dyn FnMut(Progress<'_>),
    ) -> Result<ArticleReport, PipelineError> {
        let started = Instant::now();
        let article = Article::parse(text);
        let mut timings = Timings::default();

        let translation = match &self.translator {
            None => None,
            Some(chosen) => {
                let translate_started = Instant::now();
                let (mut marian, mut llm);
                let translator: &mut dyn Translator = match (chosen, self.generator.as_mut()) {
                    (Chosen::Marian { engine, id }, _) => {
                        let mut search = engine.search_config().clone();
                        if let Some(beams) = job.beams {
                            search.num_beams = beams;
                        }
                        marian = MarianTranslator {
                            engine,
                            model_id: id.clone(),
                            search,
                            max_batch: MARIAN_BATCH,
                        };
                        &mut marian
                    }
                    (Chosen::Llm, Some((engine, model_id))) => {
                        llm = LlmTranslator {
                            engine,
                            model_id: model_id.clone(),
                            max_new_tokens: job.max_tokens,
                        };
                        &mut llm
                    }
                    (Chosen::Llm, None) => {
                        unreachable!("the LLM is loaded whenever it translates")
                    }
                };
                let translation = stoppable(|| {
                    translate_article(translator, &article, &job.glossary, progress, &mut warnings)
                })?;
                timings.translate_ms = translate_started.elapsed().as_millis() as u64;
                Some(translation)
            }
        };

        let summary = if job.job == Job::Translate {
            None
        } else {
            warnings.extend(self.load_warnings.iter().cloned());
            let vectors = match &self.embedder {
                Some((embedder, model_id)) => SentenceVectors::Embedder {
                    embedder,
                    model_id: model_id.clone(),
                },
                None => SentenceVectors::TfIdf,
            };
            let summarize_started = Instant::now();
            let paragraphs: Vec<String> = match &translation {
                Some(t) => t.paragraphs.iter().map(|p| p.text.clone()).collect(),
                None => article.paragraphs.iter().map(|p| p.text.clone()).collect(),
            };
            let options = SummaryOptions {
                sentences: job.sentences,
                extractive: job.extractive,
                abstractive: job.abstractive,
                max_new_tokens: job.max_tokens,
                form: job.summary_form,
                source_tokens: job.summary_source_tokens,
            };
            let summary = stoppable(|| {
                summarize_article(
                    self.generator.as_mut().map(|(e, id)| (e, id.as_str())),
                    &vectors,
                    &paragraphs,
                    &options,
                    progress,
                    &mut warnings,
                )
            })?;
            timings.summarize_ms = summarize_started.elapsed().as_millis() as u64;
            Some(summary)
        };

        let fidelity_started = Instant::now();
        let fidelity = check_fidelity(&job.glossary, translation.as_ref(), summary.as_ref());
        timings.fidelity_ms = fidelity_started.elapsed().as_millis() as u64;

        let mut report = ArticleReport {
            input: InputInfo {
                source: source_name.to_string(),
                paragraphs: article.paragraphs.len(),
                characters: text.chars().count(),
            },
            translation: translation.map(|t: Translation| TranslationReport {
                model: t.model.clone(),
                paragraphs: t.paragraphs.iter().map(|p| p.text.clone()).collect(),
                details: t.paragraphs,
            }),
            summary,
            fidelity,
            timings,
            warnings,
            article,
        };
        let mut timings = report.timings.clone();
        timings.set_token_figures(report.requests());
        timings.total_ms = started.elapsed().as_millis() as u64;
        if let Some((engine, _)) = &self.generator {
            timings.batch = engine.batch_width();
            timings.kv_cache_mib = mib(engine.cache_bytes());
        }
        report.timings = timings;
        Ok(report)
    }
}

/// Bytes in MiB, to one decimal.
fn mib(bytes: usize) -> f64 {
    (bytes as f64 / f64::from(1 << 20) * 10.0).round() / 10.0
}

/// Runs work that checks for Ctrl-C itself (per token, per batch, per paragraph), so a Ctrl-C
/// stops it cleanly instead of ending the process; a Ctrl-C that came too late for its checks
/// still stops the job before the next stage.
fn stoppable<T>(work: impl FnOnce() -> Result<T, PipelineError>) -> Result<T, PipelineError> {
    let result = {
        let _deferral = interrupt::defer();
        work()?
    };
    if interrupt::requested() {
        return Err(PipelineError::Interrupted);
    }
    Ok(result)
}
