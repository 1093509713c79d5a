//! `precis run | translate | summarize`: read the article, run the pipeline's article job,
//! render the report as text or JSON and write it where asked.

use std::{io::IsTerminal, path::Path};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use precis::{
    engines::tasks::Output,
    files::Target,
    interrupt,
    pipeline::{self, ArticleReport, Job, ModelSource, Progress},
    text::{
        input::{self, decode_text},
        language::{self, Language},
    },
};

use super::Context;
use crate::cli::Format;
use crate::settings::ArticleSettings;

pub fn run(context: &Context, settings: ArticleSettings) -> anyhow::Result<()> {
    let mut warnings = Vec::new();
    let text = read_input(&settings, &mut warnings)?;
    let expected = match settings.job.job {
        Job::Summarize => Language::English,
        Job::Run | Job::Translate => Language::French,
    };
    warnings.extend(language::mismatch_warning(&text, expected));
    // Said now, not after minutes of work on the wrong input; the report repeats them.
    // `--quiet` silences progress and notices, never warnings.
    let early_warnings = warnings.len();
    for warning in &warnings {
        eprintln!("precis: warning: {warning}");
    }

    let bar = progress_bar(context.quiet);
    let mut on_progress = progress_reporter(&bar, context.quiet);
    let models = ModelSource {
        catalog: &context.catalog,
        store: &context.store,
    };
    let report = pipeline::run_article(
        &settings.job,
        models,
        &settings.source_name,
        &text,
        warnings,
        &mut on_progress,
    )?;
    bar.finish_and_clear();
    if let Some(path) = &settings.save_requests {
        save_requests(path, report.requests())?;
    }

    let rendered = match settings.format {
        Format::Json => serde_json::to_string_pretty(&report)? + "\n",
        Format::Text => render_text(&report),
    };
    {
        // A result that is being written is finished rather than left half-written.
        let _finish_first = interrupt::defer();
        settings.output.write_all(rendered.as_bytes())?;
    }
    if settings.format == Format::Text {
        for warning in &report.warnings[early_warnings..] {
            eprintln!("precis: warning: {warning}");
        }
        for finding in &report.fidelity {
            eprintln!("precis: warning: {}", finding.describe());
        }
    }
    Ok(())
}

fn save_requests<'a>(
    path: &Path,
    requests: impl Iterator<Item = &'a Output>,
) -> anyhow::Result<()> {
    let replay: Vec<serde_json::Value> = requests
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
    Target::check(path)?.write_all(serde_json::to_string_pretty(&replay)?.as_bytes())?;
    Ok(())
}

fn render_text(report: &ArticleReport) -> String {
    let mut sections: Vec<String> = Vec::new();
    if let Some(translation) = &report.translation {
        sections.push(
            report
                .article
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

/// The article's text: decoded (`--lossy` replaces what is invalid), and stripped of its
/// markup with `--html`.
fn read_input(settings: &ArticleSettings, warnings: &mut Vec<String>) -> anyhow::Result<String> {
    let source_name = &settings.source_name;
    let bytes = input::read_input(&settings.input)?;
    let decoded = decode_text(&bytes, source_name, settings.lossy)?;
    warnings.extend(decoded.warning);
    Ok(input::article_text(
        decoded.text,
        settings.html,
        source_name,
        warnings,
    )?)
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
        Progress::Notice(message) => {
            if !quiet {
                bar.suspend(|| eprintln!("precis: {message}"));
            }
        }
    }
}
