//! Raw flags become validated settings here, once, before any work: counts were checked where
//! they were parsed (`cli::Count`); here the output target is checked (a result that could not
//! be written is refused before minutes of work) and the article job takes its library form.

use std::path::{Path, PathBuf};

use precis::{
    engines::tasks::SummaryForm,
    failure::FailureKind,
    fidelity::Glossary,
    files::Target,
    infer::marian::Precision,
    pipeline::{ArticleJob, Job, TranslatorChoice},
    text::input,
};

use crate::cli::{self, ArticleArgs, Format, JobArgs};
use crate::commands::CommandFailure;

/// What `run`, `translate` and `summarize` are asked to do, checked.
pub struct ArticleSettings {
    pub input: PathBuf,
    /// How the user knows the input: its path, or "standard input".
    pub source_name: String,
    pub output: Target,
    pub format: Format,
    pub lossy: bool,
    pub html: bool,
    pub save_requests: Option<PathBuf>,
    pub job: ArticleJob,
}

impl ArticleSettings {
    pub fn new(job: Job, args: ArticleArgs) -> anyhow::Result<Self> {
        let output = output_target(&args.input, args.output.as_deref())?;
        Ok(ArticleSettings {
            source_name: input::source_name(&args.input),
            input: args.input,
            output,
            format: args.format,
            lossy: args.lossy,
            html: args.html,
            save_requests: args.save_requests,
            job: article_job(job, args.job)?,
        })
    }
}

/// The library's form of the flags every article command shares.
pub fn article_job(job: Job, args: JobArgs) -> anyhow::Result<ArticleJob> {
    let glossary = match &args.glossary {
        Some(path) => read_glossary(path)?,
        None => Glossary::default(),
    };
    let translator = match args.translator {
        cli::TranslatorChoice::Auto => TranslatorChoice::Auto,
        cli::TranslatorChoice::Marian => TranslatorChoice::Marian,
        cli::TranslatorChoice::Llm => TranslatorChoice::Llm,
    };
    Ok(ArticleJob {
        job,
        translator,
        translation_model: args.translation_model,
        model: args.model,
        beams: args.beams.map(|b| b.get()),
        precision: match args.precision {
            cli::MarianPrecision::F32 => Precision::F32,
            cli::MarianPrecision::Int8 => Precision::Int8,
        },
        batch: args.batch,
        max_tokens: args.max_tokens,
        sentences: args.summary.sentences,
        summary_form: SummaryForm {
            min_sentences: args.summary.summary_sentences.min,
            max_sentences: args.summary.summary_sentences.max,
            max_words: args.summary.summary_words,
        },
        summary_source_tokens: args.summary.summary_request_tokens,
        extractive: !args.summary.no_extractive,
        abstractive: !args.summary.no_abstractive,
        glossary,
    })
}

/// The `--glossary` file, parsed; a file that cannot be read or parsed is a usage error.
fn read_glossary(path: &Path) -> anyhow::Result<Glossary> {
    let text = std::fs::read_to_string(path).map_err(|e| CommandFailure {
        kind: FailureKind::Usage,
        message: format!("cannot read the glossary {}: {e}", path.display()),
    })?;
    Glossary::parse(&text).map_err(|e| {
        CommandFailure {
            kind: FailureKind::Usage,
            message: format!("{}: {e}", path.display()),
        }
        .into()
    })
}

/// The checked place for the result; never the input file itself.
fn output_target(input: &Path, output: Option<&Path>) -> anyhow::Result<Target> {
    let Some(output) = output else {
        return Ok(Target::stdout());
    };
    let target = Target::check(output)?;
    if let Some(file) = target.file() {
        if input != Path::new("-") && same_file(input, file) {
            return Err(CommandFailure {
                kind: FailureKind::Output,
                message: format!(
                    "refusing to write the result over the input {}; choose another -o file",
                    input.display()
                ),
            }
            .into());
        }
    }
    Ok(target)
}

/// Whether both paths name the same file, through symbolic or hard links.
fn same_file(a: &Path, b: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        match (std::fs::metadata(a), std::fs::metadata(b)) {
            (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
            _ => false,
        }
    }
    #[cfg(not(unix))]
    {
        matches!((a.canonicalize(), b.canonicalize()), (Ok(a), Ok(b)) if a == b)
    }
}
