//! Owns the article job: engine choice and loading (`models`), the job end to end (`job`), the
//! translation with its repairs (`translate`), the summary (`summary`), and the fidelity
//! findings of a run here.

use std::{ops::ControlFlow, time::Duration};

use serde::Serialize;

use crate::{
    engines::{
        embedder::EmbedError,
        tasks::{Output, TokenProgress},
        EngineError, StopReason,
    },
    failure::FailureKind,
    fidelity::{Finding, Glossary},
    infer::cpu::CpuLevel,
    interrupt,
};

pub mod job;
pub mod models;
pub mod summary;
pub mod translate;

pub use job::{run_article, ArticleJob, ArticleReport, Engines, Job};
pub use models::{ModelSource, TranslatorChoice};
pub use summary::{
    summarize_article, Abstractive, SentenceVectors, Summary, SummaryOptions, SUMMARY_SOURCE_TOKENS,
};
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

/// The fidelity findings of a run: each translated paragraph against its French source, and
/// the abstractive summary's (found against the English article when it was chosen). The
/// extractive sentences are the article's own and need no check.
pub fn check_fidelity(
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
        findings.extend(abstractive.findings.iter().cloned());
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
    /// Of `prompt_tokens`, those the language model's cache held from the request before
    /// (the instruction, earlier paragraphs): not computed again.
    pub prompt_tokens_cached: usize,
    pub generated_tokens: usize,
    /// Prompt tokens computed (not cached) over the time of the prompt forward passes.
    pub prompt_tokens_per_s: f64,
    /// Tokens after the first of each request over the time of their one-token forward
    /// passes (llama.cpp's "eval" rate).
    pub generated_tokens_per_s: f64,
    pub total_ms: u64,
    /// Language-model requests decoded together at most (`--batch`); 0 without the model.
    pub batch: usize,
    /// Memory of the language model's KV caches after the article: one per sequence decoded
    /// together, each kept for the prompt prefix the next request shares.
    pub kv_cache_mib: f64,
    /// The kernels' CPU level (`portable`, `avx2`, `avx512`, `avx512-vnni`), detected or held
    /// by `PRECIS_KQUANT`.
    pub cpu_level: CpuLevel,
}

impl Timings {
    /// Sets the token figures from every model request of the run.
    pub fn set_token_figures<'a>(&mut self, requests: impl Iterator<Item = &'a Output>) {
        let mut tokenize = Duration::ZERO;
        let mut prompt_time = Duration::ZERO;
        let mut generation_time = Duration::ZERO;
        let mut decode_steps = 0;
        self.prompt_tokens = 0;
        self.prompt_tokens_cached = 0;
        self.generated_tokens = 0;
        for r in requests {
            tokenize += r.tokenize_time;
            prompt_time += r.prompt_time;
            generation_time += r.generation_time;
            self.prompt_tokens += r.prompt_tokens;
            self.prompt_tokens_cached += r.cached_prompt_tokens;
            self.generated_tokens += r.generated_tokens;
            decode_steps += r.generated_tokens.saturating_sub(1);
        }
        self.tokenize_ms = tokenize.as_millis() as u64;
        self.prompt_tokens_per_s =
            rate(self.prompt_tokens - self.prompt_tokens_cached, prompt_time);
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
