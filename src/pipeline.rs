//! Wires the stages for one article: paragraphs -> chunks -> translation -> summary.

use std::{ops::ControlFlow, time::Duration};

use serde::Serialize;

use crate::{
    assemble::{chunk::chunks_within, segment::sentences, Article},
    engines::{
        tasks::{self, Output, TokenProgress, Translator},
        EngineError, LlmEngine, StopReason,
    },
    failure::FailureKind,
};

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("the input has no text to translate")]
    EmptyInput,
}

impl PipelineError {
    pub fn kind(&self) -> FailureKind {
        match self {
            PipelineError::Engine(e) => e.kind(),
            PipelineError::EmptyInput => FailureKind::Input,
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
}

#[derive(Debug, Clone, Serialize)]
pub struct TranslatedParagraph {
    pub source: String,
    pub text: String,
    /// False when the paragraph was copied unchanged (nothing to translate: a bare URL, a number).
    pub translated: bool,
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

impl Translation {
    pub fn requests(&self) -> impl Iterator<Item = &Output> {
        self.paragraphs.iter().flat_map(|p| p.requests.iter())
    }
}

/// Translates every paragraph of the article. Paragraphs longer than one request are cut at
/// sentence boundaries; a request that ends in a loop or at its token limit is retried sentence
/// by sentence, so nothing is silently cut short.
pub fn translate_article(
    translator: &mut dyn Translator,
    article: &Article,
    progress: &mut dyn FnMut(Progress<'_>),
    warnings: &mut Vec<String>,
) -> Result<Translation, PipelineError> {
    if article.is_empty() {
        return Err(PipelineError::EmptyInput);
    }
    let count = article.paragraphs.len();
    let mut paragraphs = Vec::with_capacity(count);
    for (index, paragraph) in article.paragraphs.iter().enumerate() {
        progress(Progress::Paragraph { index, count });
        if !has_words_to_translate(&paragraph.text) {
            paragraphs.push(TranslatedParagraph {
                source: paragraph.text.clone(),
                text: paragraph.text.clone(),
                translated: false,
                requests: Vec::new(),
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
            let output = translate_chunk(translator, chunk, progress, &mut requests)?;
            if output.stop != StopReason::EndToken {
                warnings.push(format!(
                    "paragraph {}: the translation stopped early ({}); check it against the source",
                    index + 1,
                    tasks::stop_name(output.stop)
                ));
            }
            pieces.push(output.text);
        }
        paragraphs.push(TranslatedParagraph {
            source: paragraph.text.clone(),
            text: pieces.join(" "),
            translated: true,
            requests,
        });
    }
    let texts: Vec<&str> = paragraphs.iter().map(|p| p.text.as_str()).collect();
    Ok(Translation {
        model: translator.model_id().to_string(),
        text: article.reassemble(&texts),
        paragraphs,
    })
}

/// Translates one chunk; if the model stopped for any reason but its end token, translates the
/// chunk's sentences one by one instead. Returns the combined text and the worst stop reason.
fn translate_chunk(
    translator: &mut dyn Translator,
    chunk: &str,
    progress: &mut dyn FnMut(Progress<'_>),
    requests: &mut Vec<Output>,
) -> Result<Output, PipelineError> {
    let mut on_token = |p: TokenProgress<'_>| {
        progress(Progress::Token(p));
        ControlFlow::Continue(())
    };
    let output = translator.translate(chunk.trim(), &mut on_token)?;
    requests.push(output.clone());
    let parts = sentences(chunk);
    if output.stop == StopReason::EndToken || parts.len() < 2 {
        return Ok(output);
    }
    let mut texts = Vec::new();
    let mut stop = StopReason::EndToken;
    for sentence in parts.iter().filter(|s| !s.trim().is_empty()) {
        let retry = translator.translate(sentence.trim(), &mut on_token)?;
        if retry.stop != StopReason::EndToken {
            stop = retry.stop;
        }
        texts.push(retry.text.clone());
        requests.push(retry);
    }
    Ok(Output {
        text: texts.join(" "),
        stop,
        ..output
    })
}

/// Does the paragraph contain words (outside URLs) that a translator should see?
fn has_words_to_translate(text: &str) -> bool {
    text.split_whitespace()
        .filter(|word| !word.contains("://") && !word.starts_with("www."))
        .any(|word| word.chars().filter(|c| c.is_alphabetic()).count() >= 2)
}

#[derive(Debug, Clone, Serialize)]
pub struct Abstractive {
    pub model: String,
    pub text: String,
    #[serde(flatten)]
    pub request: Output,
}

/// Writes the abstractive summary of an English text.
pub fn summarize_text(
    engine: &mut LlmEngine,
    model_id: &str,
    english: &str,
    max_new_tokens: usize,
    progress: &mut dyn FnMut(Progress<'_>),
    warnings: &mut Vec<String>,
) -> Result<Abstractive, PipelineError> {
    if english.trim().is_empty() {
        return Err(PipelineError::EmptyInput);
    }
    progress(Progress::Summary);
    let mut on_token = |p: TokenProgress<'_>| {
        progress(Progress::Token(p));
        ControlFlow::Continue(())
    };
    let output = tasks::summarize(engine, english, max_new_tokens, &mut on_token)?;
    if output.stop != StopReason::EndToken {
        warnings.push(format!(
            "the summary stopped early ({})",
            tasks::stop_name(output.stop)
        ));
    }
    Ok(Abstractive {
        model: model_id.to_string(),
        text: output.text.clone(),
        request: output,
    })
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
