//! `precis batch`: many articles with the models loaded once. The articles already in the
//! results file are skipped, the others done one after another, each written as one JSON line
//! as soon as it is done; an article that fails gets an error line and the batch goes on.

use std::{
    collections::HashSet,
    io::IsTerminal,
    path::Path,
    time::{Duration, Instant},
};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use precis::{
    batch::{self, inputs, ArticleFailure, BatchError, Limits, Record, Results},
    failure::FailureKind,
    pipeline::{Engines, Job, ModelSource, PipelineError, Progress},
};

use super::{CommandFailure, Context};
use crate::{cli::BatchArgs, settings};

pub fn run(context: &Context, args: BatchArgs) -> anyhow::Result<()> {
    let job = settings::article_job(Job::Run, args.job)?;
    let limits = Limits {
        max_chars: args.max_chars,
        any_language: args.any_language,
        lossy: args.lossy,
    };
    let output = args.output.as_deref().filter(|p| *p != Path::new("-"));
    if let Some(output) = output {
        refuse_output_among_inputs(output, &args.inputs)?;
    }
    let records = inputs::collect(&args.inputs)?;
    let total = records.len();
    let mine: Vec<Record> = match args.shard {
        Some(shard) => records
            .into_iter()
            .filter(|r| shard.contains(&r.id))
            .collect(),
        None => records,
    };
    let shown = output.map_or("standard output".into(), |p| p.display().to_string());
    let mut results = Results::open(output)?;
    let notice = |message: String| {
        if !context.quiet {
            eprintln!("precis: {message}");
        }
    };
    if results.dropped_torn_line {
        notice(format!(
            "dropped the last line of {shown}, cut short when a run stopped; its article is done \
             again"
        ));
    }
    let job_sha256 = batch::job_sha256(&job);
    if results
        .existing
        .values()
        .any(|line| line.job_sha256 != job_sha256)
    {
        return Err(BatchError::OtherSettings { path: shown }.into());
    }

    let Split {
        todo,
        redo,
        skipped,
        failed_before,
    } = split_done(mine, &results, args.retry_failed);
    results.forget(&redo)?;
    let share = match args.shard {
        Some(shard) => format!(
            "{} of {total} articles are shard {shard}",
            skipped + todo.len()
        ),
        None => format!("{total} articles"),
    };
    let again = match redo.len() {
        0 => String::new(),
        n => format!(" ({n} again: changed since, or retried)"),
    };
    notice(if skipped > 0 {
        format!(
            "{share}; {skipped} already done in {shown}, {} to do{again}",
            todo.len()
        )
    } else {
        format!("{share} to do{again}")
    });
    if todo.is_empty() {
        return failures(0, failed_before, skipped, &shown);
    }

    let models = ModelSource {
        catalog: &context.catalog,
        store: &context.store,
    };
    let mut engines = Engines::load(&job, models, &mut |event| {
        if let Progress::Notice(message) = event {
            notice(message);
        }
    })?;
    for warning in &engines.load_warnings {
        eprintln!("precis: warning: {warning}");
    }

    let mut tally = Tally::new(todo.len(), context.quiet);
    for record in &todo {
        tally.start(&record.id);
        let mut warnings = Vec::new();
        let read = inputs::read(record);
        let text_sha256 = read.as_ref().ok().map(|(_, digest)| digest.clone());
        let outcome = read.and_then(|(bytes, _)| {
            let text = batch::article_text(record, &bytes, &limits, &mut warnings)?;
            let mut on_progress = |event: Progress<'_>| tally.progress(event);
            Ok(engines.run(&job, &record.source, &text, warnings, &mut on_progress)?)
        });
        let interrupted = matches!(&outcome, Err(ArticleFailure::Pipeline(error))
            if matches!(**error, PipelineError::Interrupted));
        if interrupted {
            tally.finish();
            return Err(CommandFailure {
                kind: FailureKind::Interrupted,
                message: format!(
                    "interrupted (Ctrl-C) during {}; the {} articles done are in {shown}: run \
                     the same command again to do the rest",
                    record.id, tally.done
                ),
            }
            .into());
        }
        let line = batch::result_line(
            record,
            text_sha256.as_deref(),
            &job_sha256,
            outcome.as_ref(),
        )?;
        results.append(&line)?;
        match &outcome {
            Ok(report) => tally.record_success(report.timings.generated_tokens),
            Err(failure) => {
                let message = precis::failure::message(precis::failure::chain(failure));
                tally.record_failure(&record.id, &message);
                if args.fail_fast {
                    tally.finish();
                    return Err(CommandFailure {
                        kind: FailureKind::SomeArticlesFailed,
                        message: format!(
                            "stopped at the first article that failed (--fail-fast): {}: \
                             {message}",
                            record.id
                        ),
                    }
                    .into());
                }
            }
        }
    }
    tally.finish();
    notice(format!(
        "{} articles done, {} failed, {skipped} done before; {:.1} generated tokens/s; results \
         in {shown}",
        tally.done - tally.failed,
        tally.failed,
        tally.tokens_per_second()
    ));
    failures(tally.failed, failed_before, tally.done + skipped, &shown)
}

/// Exit code 8 while any article of the batch has an error line, this run's or an earlier
/// one's: the results are complete only when every article is done.
fn failures(now: usize, before: usize, articles: usize, shown: &str) -> anyhow::Result<()> {
    if now + before == 0 {
        return Ok(());
    }
    let earlier = match before {
        0 => String::new(),
        n => format!(" ({n} in an earlier run; --retry-failed does them again)"),
    };
    Err(CommandFailure {
        kind: FailureKind::SomeArticlesFailed,
        message: format!(
            "{} of {articles} articles failed{earlier}; their error lines in {shown} say why, \
             the others are done",
            now + before
        ),
    }
    .into())
}

/// The articles of this run against the lines already written.
struct Split {
    /// Still to do.
    todo: Vec<Record>,
    /// Ids whose old line must go: the article changed since, or failed and is retried.
    redo: HashSet<String>,
    /// Done already.
    skipped: usize,
    /// Done already, with an error line.
    failed_before: usize,
}

fn split_done(records: Vec<Record>, results: &Results, retry_failed: bool) -> Split {
    let mut split = Split {
        todo: Vec::new(),
        redo: HashSet::new(),
        skipped: 0,
        failed_before: 0,
    };
    for record in records {
        match results.existing.get(&record.id) {
            None => split.todo.push(record),
            Some(line) => {
                let digest = inputs::read(&record).ok().map(|(_, digest)| digest);
                if digest == line.text_sha256 && !(line.error && retry_failed) {
                    split.skipped += 1;
                    split.failed_before += usize::from(line.error);
                } else {
                    split.redo.insert(record.id.clone());
                    split.todo.push(record);
                }
            }
        }
    }
    split
}

/// Results written into one of the inputs would destroy it, and results written into an input
/// folder as `*.txt` or `*.html` would be read as an article by the next run.
fn refuse_output_among_inputs(output: &Path, inputs: &[std::path::PathBuf]) -> anyhow::Result<()> {
    let Some(output) = std::fs::canonicalize(output).ok().or_else(|| {
        let dir = std::fs::canonicalize(
            output
                .parent()?
                .to_str()
                .filter(|d| !d.is_empty())
                .unwrap_or("."),
        )
        .ok()?;
        Some(dir.join(output.file_name()?))
    }) else {
        return Ok(());
    };
    let article_file = inputs::is_article_file(&output);
    for input in inputs {
        let Ok(input) = std::fs::canonicalize(input) else {
            continue;
        };
        if output == input || (input.is_dir() && output.starts_with(&input) && article_file) {
            return Err(CommandFailure {
                kind: FailureKind::Output,
                message: format!(
                    "refusing to write the results {} among the inputs ({}); choose an -o \
                     file elsewhere, or one that does not end in .txt or .html",
                    output.display(),
                    input.display()
                ),
            }
            .into());
        }
    }
    Ok(())
}

/// Articles done and failed, tokens, time left: a bar on a terminal, a line per article in a
/// log (where a cluster job's output goes).
struct Tally {
    todo: usize,
    done: usize,
    failed: usize,
    generated_tokens: usize,
    started: Instant,
    current: String,
    bar: Option<ProgressBar>,
    lines: bool,
}

impl Tally {
    fn new(todo: usize, quiet: bool) -> Tally {
        let terminal = std::io::stderr().is_terminal();
        let bar = (!quiet && terminal).then(|| {
            let bar =
                ProgressBar::with_draw_target(Some(todo as u64), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} {pos}/{len} articles [{elapsed}, ~{eta} left] {msg}",
                )
                .expect("static template"),
            );
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        Tally {
            todo,
            done: 0,
            failed: 0,
            generated_tokens: 0,
            started: Instant::now(),
            current: String::new(),
            bar,
            lines: !quiet && !terminal,
        }
    }

    fn start(&mut self, id: &str) {
        self.current = id.to_string();
        if let Some(bar) = &self.bar {
            bar.set_message(self.current.clone());
        }
    }

    fn progress(&self, event: Progress<'_>) {
        let Some(bar) = &self.bar else { return };
        let stage = match event {
            Progress::Paragraph { index, count } => {
                format!("translating paragraph {}/{count}", index + 1)
            }
            Progress::Summary => "writing the summary".into(),
            Progress::Token(_) | Progress::Notice(_) => return,
        };
        bar.set_message(format!(
            "{}: {stage} | {} failed, {:.1} tokens/s",
            self.current,
            self.failed,
            self.tokens_per_second()
        ));
    }

    fn record_success(&mut self, generated_tokens: usize) {
        self.generated_tokens += generated_tokens;
        self.done += 1;
        self.report("done");
    }

    fn record_failure(&mut self, id: &str, message: &str) {
        self.done += 1;
        self.failed += 1;
        let line = format!("precis: {id} failed: {message}");
        match &self.bar {
            Some(bar) => bar.suspend(|| eprintln!("{line}")),
            None => eprintln!("{line}"),
        }
        self.report("failed");
    }

    fn report(&self, outcome: &str) {
        if let Some(bar) = &self.bar {
            bar.inc(1);
        }
        if self.lines {
            let left = self.todo - self.done;
            let per_article = self.started.elapsed() / self.done as u32;
            eprintln!(
                "precis: {}/{} articles ({} failed): {} {outcome}; {:.1} generated tokens/s; \
                 about {} left",
                self.done,
                self.todo,
                self.failed,
                self.current,
                self.tokens_per_second(),
                duration_text(per_article * left as u32)
            );
        }
    }

    fn tokens_per_second(&self) -> f64 {
        let seconds = self.started.elapsed().as_secs_f64();
        if seconds > 0.0 {
            self.generated_tokens as f64 / seconds
        } else {
            0.0
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

fn duration_text(duration: Duration) -> String {
    let seconds = duration.as_secs();
    match seconds {
        0..=59 => format!("{seconds} s"),
        60..=3599 => format!("{} min", seconds.div_ceil(60)),
        _ => format!("{}h{:02}", seconds / 3600, seconds % 3600 / 60),
    }
}
