//! `precis run | translate | summarize`: one article through the pipeline.

use std::{
    io::{IsTerminal, Read, Write},
    path::Path,
    time::Instant,
};

use anyhow::Context as _;
use candle_core::Device;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use precis::{
    assemble::{
        fidelity::Finding,
        html,
        input::{decode_text, InputError},
        language::{self, Language},
        Article,
    },
    engines::{
        self,
        embedder::EmbedderFiles,
        tasks::{LlmTranslator, Output, Translator},
        Embedder, LlmEngine, MarianTranslator,
    },
    failure::FailureKind,
    interrupt,
    load::{catalog::WeightFormat, Role},
    pipeline::{self, Progress, SentenceVectors, Summary, SummaryOptions, Timings, Translation},
};
use serde::Serialize;

use super::translator::{self, Chosen};
use super::{cannot_load, CommandFailure, Context};
use crate::cli::{ArticleArgs, Format};

/// Sentences per Marian batch: a paragraph's sentences usually fit in one.
const MARIAN_BATCH: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Job {
    Run,
    Translate,
    Summarize,
}

#[derive(Serialize)]
struct Report {
    input: InputInfo,
    #[serde(skip_serializing_if = "Option::is_none")]
    translation: Option<TranslationReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    summary: Option<Summary>,
    /// Numbers, dates, names and quotations that differ between a source and its output.
    fidelity: Vec<Finding>,
    timings: Timings,
    warnings: Vec<String>,
}

#[derive(Serialize)]
struct InputInfo {
    source: String,
    paragraphs: usize,
    characters: usize,
}

#[derive(Serialize)]
struct TranslationReport {
    model: String,
    /// The English paragraphs, in the order of the source.
    paragraphs: Vec<String>,
    /// Per paragraph: the source, and each model request with its token counts.
    details: Vec<pipeline::TranslatedParagraph>,
}

pub fn run(context: &Context, job: Job, args: ArticleArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    if let Some(threads) = args.threads {
        engines::set_cpu_threads(threads);
    }
    let source_name = source_name(&args.input);
    if let Some(output) = &args.output {
        refuse_overwriting_input(&args.input, output)?;
        check_output_location(output)?;
    }
    let mut warnings = Vec::new();
    let text = read_input(&args, &source_name, &mut warnings)?;
    let article = Article::parse(&text);
    let expected = match job {
        Job::Summarize => Language::English,
        Job::Run | Job::Translate => Language::French,
    };
    warnings.extend(language::mismatch_warning(&text, expected));
    // Said now, not after minutes of work on the wrong input; the report repeats them.
    let early_warnings = warnings.len();
    if !context.quiet {
        for warning in &warnings {
            eprintln!("precis: warning: {warning}");
        }
    }

    let summary_args = &args.summary;
    let mut timings = Timings::default();
    let load_started = Instant::now();
    let chosen = match job {
        Job::Summarize => None,
        _ => Some(translator::choose(context, &args)?),
    };
    // The LLM is loaded only when something needs it: the translation, or the abstractive
    // summary.
    let llm_translates = matches!(chosen, Some(Chosen::Llm));
    let llm_summarises = job != Job::Translate && !summary_args.no_abstractive;
    let mut generator = if llm_translates || llm_summarises {
        Some(load_generator(context, args.model.as_deref())?)
    } else {
        None
    };
    timings.load_ms = load_started.elapsed().as_millis() as u64;

    let bar = progress_bar(context.quiet);
    let mut on_progress = progress_reporter(&bar, context.quiet);

    let translation = if let Some(chosen) = &chosen {
        let translate_started = Instant::now();
        let split = |text: &str| -> Vec<String> {
            precis::assemble::segment::sentences(text)
                .into_iter()
                .map(str::to_string)
                .collect()
        };
        let (mut marian, mut llm);
        let translator: &mut dyn Translator = match (chosen, generator.as_mut()) {
            (Chosen::Marian { engine, id }, _) => {
                let mut search = engine.search_config().clone();
                if let Some(beams) = args.beams {
                    search.num_beams = beams.get();
                }
                marian = MarianTranslator {
                    engine,
                    model_id: id.clone(),
                    search,
                    max_batch: MARIAN_BATCH,
                    split_sentences: &split,
                };
                &mut marian
            }
            (Chosen::Llm, Some((engine, model_id))) => {
                llm = LlmTranslator {
                    engine,
                    model_id: model_id.clone(),
                    max_new_tokens: args.max_tokens,
                };
                &mut llm
            }
            (Chosen::Llm, None) => unreachable!("the LLM is loaded whenever it translates"),
        };
        let translation = stoppable(|| {
            pipeline::translate_article(translator, &article, &mut on_progress, &mut warnings)
                .map_err(anyhow::Error::from)
        })?;
        timings.translate_ms = translate_started.elapsed().as_millis() as u64;
        Some(translation)
    } else {
        None
    };

    let summary = if job == Job::Translate {
        None
    } else {
        let embed_started = Instant::now();
        let embedder = load_embedder(context, &mut warnings);
        timings.embed_load_ms = embed_started.elapsed().as_millis() as u64;
        let vectors = match &embedder {
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
            sentences: summary_args.sentences,
            extractive: !summary_args.no_extractive,
            abstractive: !summary_args.no_abstractive,
            max_new_tokens: args.max_tokens,
        };
        let summary = stoppable(|| {
            pipeline::summarize_article(
                generator.as_mut().map(|(e, id)| (e, id.as_str())),
                &vectors,
                &paragraphs,
                &options,
                &mut on_progress,
                &mut warnings,
            )
            .map_err(anyhow::Error::from)
        })?;
        timings.summarize_ms = summarize_started.elapsed().as_millis() as u64;
        Some(summary)
    };
    bar.finish_and_clear();

    let fidelity_started = Instant::now();
    let fidelity = pipeline::check_fidelity(&article, translation.as_ref(), summary.as_ref());
    timings.fidelity_ms = fidelity_started.elapsed().as_millis() as u64;

    let requests = translation.iter().flat_map(Translation::requests).chain(
        summary
            .iter()
            .filter_map(|s| s.abstractive.as_ref())
            .map(|a| &a.request),
    );
    let requests: Vec<&Output> = requests.collect();
    if let Some(path) = &args.save_requests {
        save_requests(path, &requests)?;
    }
    timings.set_token_figures(requests.into_iter());
    timings.total_ms = started.elapsed().as_millis() as u64;

    let report = Report {
        input: InputInfo {
            source: source_name,
            paragraphs: article.paragraphs.len(),
            characters: text.chars().count(),
        },
        translation: translation.map(|t| TranslationReport {
            model: t.model.clone(),
            paragraphs: t.paragraphs.iter().map(|p| p.text.clone()).collect(),
            details: t.paragraphs,
        }),
        summary,
        fidelity,
        timings,
        warnings,
    };
    let rendered = match args.format {
        Format::Json => serde_json::to_string_pretty(&report)? + "\n",
        Format::Text => render_text(&report, &article),
    };
    {
        // A result that is being written is finished rather than left half-written.
        let _finish_first = interrupt::defer();
        write_output(args.output.as_deref(), &rendered)?;
    }
    if args.format == Format::Text && !context.quiet {
        for warning in &report.warnings[early_warnings..] {
            eprintln!("precis: warning: {warning}");
        }
        for finding in &report.fidelity {
            eprintln!("precis: warning: {}", finding.describe());
        }
    }
    Ok(())
}

/// Runs pipeline work that checks for Ctrl-C itself (per token, per batch, per paragraph), so a
/// Ctrl-C stops it cleanly instead of ending the process; a Ctrl-C that came too late for its
/// checks still stops the command before the next stage.
fn stoppable<T>(work: impl FnOnce() -> anyhow::Result<T>) -> anyhow::Result<T> {
    let result = {
        let _deferral = interrupt::defer();
        work()?
    };
    if interrupt::requested() {
        return Err(pipeline::PipelineError::Interrupted.into());
    }
    Ok(result)
}

fn save_requests(path: &Path, requests: &[&Output]) -> anyhow::Result<()> {
    let replay: Vec<serde_json::Value> = requests
        .iter()
        .enumerate()
        .map(|(index, request)| {
            let messages: Vec<serde_json::Value> = request
                .messages
                .iter()
                .map(|m| serde_json::json!({"role": m.role.as_str(), "content": m.content}))
                .collect();
            serde_json::json!({
                "name": format!("request-{index}"),
                "messages": messages,
                "max_tokens": request.max_new_tokens,
            })
        })
        .collect();
    std::fs::write(path, serde_json::to_string_pretty(&replay)?)
        .with_context(|| format!("cannot write {}", path.display()))
}

fn render_text(report: &Report, article: &Article) -> String {
    let mut sections: Vec<String> = Vec::new();
    if let Some(translation) = &report.translation {
        sections.push(
            article
                .reassemble(&translation.paragraphs)
                .trim_end()
                .to_string(),
        );
    }
    if let Some(summary) = &report.summary {
        if let Some(abstractive) = &summary.abstractive {
            sections.push(format!("Summary\n-------\n{}", abstractive.text));
        }
        if let Some(extractive) = summary.extractive.as_ref().filter(|e| !e.is_empty()) {
            let lines: Vec<String> = extractive
                .iter()
                .map(|s| format!("- {} [{}.{}]", s.text, s.paragraph + 1, s.sentence + 1))
                .collect();
            sections.push(format!(
                "Key sentences [paragraph.sentence]\n----------------------------------\n{}",
                lines.join("\n")
            ));
        }
    }
    let mut out = sections.join("\n\n");
    out.push('\n');
    out
}

fn source_name(input: &Path) -> String {
    if input == Path::new("-") {
        "standard input".to_string()
    } else {
        input.display().to_string()
    }
}

/// The article's text: decoded (`--lossy` replaces what is invalid), and stripped of its
/// markup with `--html`; a warning for what the user may want to know.
fn read_input(
    args: &ArticleArgs,
    source_name: &str,
    warnings: &mut Vec<String>,
) -> anyhow::Result<String> {
    let input = &args.input;
    let mut bytes = Vec::new();
    let read = if input == Path::new("-") {
        std::io::stdin().lock().read_to_end(&mut bytes).map(|_| ())
    } else {
        std::fs::read(input).map(|b| bytes = b)
    };
    read.map_err(|source| InputError::Read {
        source_name: source_name.to_string(),
        source,
    })?;
    let decoded = decode_text(&bytes, source_name, args.lossy)?;
    warnings.extend(decoded.warning);
    if args.html {
        let text = html::to_text(&decoded.text);
        if text.trim().is_empty() {
            return Err(InputError::Empty {
                source_name: format!("{source_name} without its HTML markup"),
            }
            .into());
        }
        return Ok(text);
    }
    if html::looks_like_html(&decoded.text) {
        warnings.push(format!(
            "{source_name} looks like HTML; its tags will be translated as text. Pass --html \
             to keep only the text"
        ));
    }
    Ok(decoded.text)
}

fn refuse_overwriting_input(input: &Path, output: &Path) -> anyhow::Result<()> {
    if input == Path::new("-") {
        return Ok(());
    }
    if same_file(input, output) {
        return Err(CommandFailure {
            kind: FailureKind::Output,
            message: format!(
                "refusing to write the result over the input {}; choose another -o file",
                input.display()
            ),
        }
        .into());
    }
    Ok(())
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

/// Fails now, before minutes of work, if the result could not be written at `output`: its
/// folder must exist and take a new file (the result goes to a temporary file there first).
fn check_output_location(output: &Path) -> anyhow::Result<()> {
    if output.is_dir() {
        return Err(output_failure(format!(
            "cannot write the result to {}: it is a folder; give a file name",
            output.display()
        )));
    }
    let dir = output_dir(output);
    if !dir.is_dir() {
        return Err(output_failure(format!(
            "cannot write the result to {}: the folder {} does not exist",
            output.display(),
            dir.display()
        )));
    }
    staging_file(output, dir).map(drop)
}

/// The folder a result file goes in.
fn output_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// A temporary file beside the result, removed unless persisted.
fn staging_file(path: &Path, dir: &Path) -> anyhow::Result<tempfile::NamedTempFile> {
    tempfile::Builder::new()
        .prefix(".precis-")
        .suffix(".partial")
        .tempfile_in(dir)
        .map_err(|e| {
            output_failure(format!(
                "cannot write the result to {}: cannot create a file in {}: {e}",
                path.display(),
                dir.display()
            ))
        })
}

/// Writes the whole result to a temporary file beside the target, then renames it, so an
/// interrupted run never leaves half a result under the final name.
fn write_output(output: Option<&Path>, rendered: &str) -> anyhow::Result<()> {
    let Some(path) = output else {
        let mut stdout = std::io::stdout().lock();
        return stdout
            .write_all(rendered.as_bytes())
            .and_then(|_| stdout.flush())
            .map_err(|e| output_failure(format!("cannot write to standard output: {e}")));
    };
    let mut staged = staging_file(path, output_dir(path))?;
    staged
        .write_all(rendered.as_bytes())
        .and_then(|_| staged.as_file().sync_all())
        .map_err(|e| output_failure(format!("cannot write {}: {e}", path.display())))?;
    staged
        .persist(path)
        .map_err(|e| output_failure(format!("cannot write {}: {}", path.display(), e.error)))?;
    Ok(())
}

fn output_failure(message: String) -> anyhow::Error {
    CommandFailure {
        kind: FailureKind::Output,
        message,
    }
    .into()
}

/// The generator model: `--model`, else the catalog's default; fetched on first use.
fn load_generator(
    context: &Context,
    requested: Option<&str>,
) -> anyhow::Result<(LlmEngine, String)> {
    let spec = match requested {
        Some(id) => context.catalog.get(id)?,
        None => context
            .catalog
            .default_for(Role::Generate)
            .ok_or_else(|| CommandFailure {
                kind: FailureKind::ModelMissing,
                message: "the catalog names no default generator model; pass --model".into(),
            })?,
    };
    if spec.role != Role::Generate || spec.format != WeightFormat::Gguf {
        return Err(CommandFailure {
            kind: FailureKind::ModelMissing,
            message: format!(
                "{} is a {} model; translation and summaries need a GGUF generator such as qwen2.5-coder-1.5b-instruct",
                spec.id, spec.role
            ),
        }
        .into());
    }
    let files = context.store.ensure(spec)?;
    let weights = spec
        .file_with_extension("gguf")
        .and_then(|f| files.path(&f.name))
        .with_context(|| format!("the catalog entry of {} lists no .gguf file", spec.id))?;
    if !context.quiet {
        eprintln!(
            "precis: loading {} ({} threads)",
            spec.id,
            engines::cpu_threads()
        );
    }
    let engine = LlmEngine::load(weights, &Device::Cpu).with_context(|| cannot_load(&spec.id))?;
    Ok((engine, spec.id.clone()))
}

/// The default sentence-embedding model, or `None` (with a warning saying why and what to do)
/// when it cannot be had: the summary then ranks and checks sentences with TF-IDF.
fn load_embedder(context: &Context, warnings: &mut Vec<String>) -> Option<(Embedder, String)> {
    let spec = context.catalog.default_for(Role::Embed)?;
    let loaded = context
        .store
        .ensure(spec)
        .map_err(anyhow::Error::from)
        .and_then(|files| {
            let path = |name: &str| {
                files
                    .path(name)
                    .with_context(|| format!("the catalog entry of {} lists no {name}", spec.id))
            };
            let files = EmbedderFiles {
                config: path("config.json")?,
                tokenizer: path("tokenizer.json")?,
                weights: path("model.safetensors")?,
            };
            let max_tokens = spec.context_length;
            Embedder::load(&files, max_tokens, &Device::Cpu).with_context(|| cannot_load(&spec.id))
        });
    match loaded {
        Ok(embedder) => Some((embedder, spec.id.clone())),
        Err(e) => {
            warnings.push(format!(
                "no sentence-embedding model ({e:#}); key sentences and summary support use \
                 TF-IDF word overlap instead, which misses paraphrases. Run `precis models fetch {}`",
                spec.id
            ));
            None
        }
    }
}

fn progress_bar(quiet: bool) -> ProgressBar {
    let target = if quiet {
        ProgressDrawTarget::hidden()
    } else {
        ProgressDrawTarget::stderr()
    };
    let bar = ProgressBar::with_draw_target(None, target);
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg} [{elapsed}]").expect("static template"),
    );
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    bar
}

/// Articles with at least this many paragraphs get progress lines when stderr is not a
/// terminal (a log, a pipe), where the progress bar draws nothing.
const PROGRESS_LINES_FROM: usize = 20;

fn progress_reporter(bar: &ProgressBar, quiet: bool) -> impl FnMut(Progress<'_>) + '_ {
    let lines = !quiet && !std::io::stderr().is_terminal();
    let mut stage = String::new();
    let mut last_tenth = 0;
    move |event| match event {
        Progress::Paragraph { index, count } => {
            stage = format!("translating paragraph {}/{count}", index + 1);
            bar.set_message(stage.clone());
            // One line per tenth of the article, so a long run in a log shows it is moving.
            let tenth = 10 * index / count;
            if lines && count >= PROGRESS_LINES_FROM && tenth > last_tenth {
                last_tenth = tenth;
                eprintln!("precis: {stage} ({}%)", 10 * tenth);
            }
        }
        Progress::Summary => {
            stage = "writing the summary".to_string();
            bar.set_message(stage.clone());
        }
        Progress::Token(token) => {
            bar.set_message(format!("{stage}: {} tokens", token.generated));
        }
    }
}
