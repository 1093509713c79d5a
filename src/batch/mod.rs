//! Many articles in one run (`precis batch`): the articles the inputs name (`inputs`), this
//! process's share of them (`shard`), and the results file that a second run resumes
//! (`results`). Each article goes through [`crate::pipeline::Engines`], loaded once; an article
//! that fails becomes an error line and the batch goes on.

use serde::Serialize;
use serde_json::{Map, Value};
use sha2::Digest;

use crate::{
    failure::FailureKind,
    files::OutputError,
    pipeline::{ArticleJob, ArticleReport, PipelineError},
    text::{
        input::{self, InputError},
        language::{self, Language, Mismatch},
    },
};

pub mod inputs;
pub mod results;
pub mod shard;

pub use inputs::{Body, Record};
pub use results::Results;
pub use shard::Shard;

/// What stops a whole batch (an article's own failure becomes its error line instead).
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("two articles have the id {id:?} ({first} and {second}); ids must be unique, as resuming and --shard go by them")]
    DuplicateId {
        id: String,
        first: String,
        second: String,
    },
    #[error("{path} is not a results file of precis batch (line {line}: {problem}); it is left as it is: give another -o file")]
    NotResults {
        path: String,
        line: usize,
        problem: String,
    },
    #[error("{path} holds results made with other settings (translator, models, summary options or glossary), which a resumed run would mix with these; give another -o file, or remove it to start again")]
    OtherSettings { path: String },
    #[error("{path} is locked by another precis batch; give each process (each --shard) its own -o file")]
    Locked { path: String },
    #[error("cannot write the results to {path}: {source}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Output(#[from] OutputError),
}

impl BatchError {
    pub fn kind(&self) -> FailureKind {
        match self {
            BatchError::Read { .. } | BatchError::DuplicateId { .. } => FailureKind::Input,
            BatchError::OtherSettings { .. } => FailureKind::Usage,
            BatchError::NotResults { .. }
            | BatchError::Locked { .. }
            | BatchError::Write { .. }
            | BatchError::Output(_) => FailureKind::Output,
        }
    }
}

/// Why one article has no result.
#[derive(Debug, thiserror::Error)]
pub enum ArticleFailure {
    /// A JSONL record that is not an article.
    #[error("{0}")]
    Record(String),
    #[error(transparent)]
    Input(#[from] InputError),
    #[error("{0}; pass --any-language to do it anyway")]
    Language(Mismatch),
    #[error("{source_name} has {chars} characters, more than --max-chars {limit}")]
    TooLong {
        source_name: String,
        chars: usize,
        limit: usize,
    },
    /// Boxed: a pipeline error is large, and every check of an article returns this type.
    #[error(transparent)]
    Pipeline(Box<PipelineError>),
}

impl From<PipelineError> for ArticleFailure {
    fn from(error: PipelineError) -> Self {
        ArticleFailure::Pipeline(Box::new(error))
    }
}

impl ArticleFailure {
    pub fn kind(&self) -> FailureKind {
        match self {
            ArticleFailure::Pipeline(e) => e.kind(),
            _ => FailureKind::Input,
        }
    }

    /// The `error.kind` of the article's line.
    pub fn kind_name(&self) -> &'static str {
        match self {
            ArticleFailure::Record(_) => "invalid_record",
            ArticleFailure::Input(_) => "input",
            ArticleFailure::Language(_) => "language",
            ArticleFailure::TooLong { .. } => "too_long",
            ArticleFailure::Pipeline(e) => match e.kind() {
                FailureKind::Input => "input",
                FailureKind::ModelMissing | FailureKind::ModelCorrupt => "model",
                FailureKind::Interrupted => "interrupted",
                _ => "engine",
            },
        }
    }
}

/// What an article must be before the models see it.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Characters at most.
    pub max_chars: usize,
    /// Do articles that do not look French.
    pub any_language: bool,
    /// Replace invalid UTF-8 or UTF-16 instead of failing.
    pub lossy: bool,
}

/// The article text of a record's bytes, checked against the limits: decoded, without its
/// markup if it is HTML, French, not too long. `warnings` gets what the report should say.
pub fn article_text(
    record: &Record,
    bytes: &[u8],
    limits: &Limits,
    warnings: &mut Vec<String>,
) -> Result<String, ArticleFailure> {
    let decoded = input::decode_text(bytes, &record.source, limits.lossy)?;
    warnings.extend(decoded.warning);
    let text = input::article_text(
        decoded.text,
        record.body.is_html(),
        &record.source,
        warnings,
    )?;
    if !limits.any_language {
        if let Some(mismatch) = language::mismatch(&text, Language::French) {
            return Err(ArticleFailure::Language(mismatch));
        }
    }
    let chars = text.chars().count();
    if chars > limits.max_chars {
        return Err(ArticleFailure::TooLong {
            source_name: record.source.clone(),
            chars,
            limit: limits.max_chars,
        });
    }
    Ok(text)
}

/// A digest of the job's settings, written on every line: a resumed run with other settings
/// would mix two kinds of results in one file, so it is refused instead. How many requests
/// are decoded together is left out: it changes no result (each reply is bit for bit the
/// same), so a run may resume with another `--batch`, to use less memory for example.
pub fn job_sha256(job: &ArticleJob) -> String {
    let results_made_by = ArticleJob {
        batch: None,
        ..job.clone()
    };
    format!(
        "{:x}",
        sha2::Sha256::digest(format!("{results_made_by:?}").as_bytes())
    )
}

#[derive(Serialize)]
struct ResultLine<'a> {
    id: &'a str,
    source: &'a str,
    text_sha256: Option<&'a str>,
    job_sha256: &'a str,
    #[serde(flatten)]
    extra: &'a Map<String, Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<ErrorInfo>,
    #[serde(flatten)]
    report: Option<&'a ArticleReport>,
}

#[derive(Serialize)]
struct ErrorInfo {
    kind: &'static str,
    message: String,
}

/// The JSON line of an article: its result (what `run --format json` gives) or its error, with
/// its id, source, the digests that resuming compares, and a JSONL record's other fields.
pub fn result_line(
    record: &Record,
    text_sha256: Option<&str>,
    job_sha256: &str,
    outcome: Result<&ArticleReport, &ArticleFailure>,
) -> Result<String, serde_json::Error> {
    let (report, error) = match outcome {
        Ok(report) => (Some(report), None),
        Err(failure) => (
            None,
            Some(ErrorInfo {
                kind: failure.kind_name(),
                message: crate::failure::message(crate::failure::chain(failure)),
            }),
        ),
    };
    serde_json::to_string(&ResultLine {
        id: &record.id,
        source: &record.source,
        text_sha256,
        job_sha256,
        extra: &record.extra,
        error,
        report,
    })
}
