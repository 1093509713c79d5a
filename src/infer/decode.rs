//! Greedy decoding for causal language models, independent of the model's architecture.

use super::InferError;
use std::ops::ControlFlow;
use std::time::{Duration, Instant};

/// A causal language model that keeps its own KV cache.
pub trait CausalLm {
    /// Runs `tokens` at positions `position..position + tokens.len()` and returns the logits
    /// (one per vocabulary entry) that predict the token after the last one. Position 0 starts
    /// a new sequence; a later position continues the sequence cached up to it.
    fn forward(&mut self, tokens: &[u32], position: usize) -> Result<Vec<f32>, InferError>;

    /// The longest sequence (prompt and generated tokens) the model can attend over.
    fn context_length(&self) -> usize;
}

/// Stops generation when the output has fallen into a loop: when the last tokens are a block
/// of `period` tokens repeated, for some `period` in `1..=max_period`, over at least
/// `min_span` tokens and at least `min_repeats` times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RepetitionGuard {
    pub max_period: usize,
    pub min_span: usize,
    pub min_repeats: usize,
}

impl Default for RepetitionGuard {
    /// A 16-token sentence fragment repeated 3 times, or one token 48 times: far beyond what
    /// a translation or a summary legitimately repeats.
    fn default() -> Self {
        Self {
            max_period: 16,
            min_span: 48,
            min_repeats: 3,
        }
    }
}

impl RepetitionGuard {
    /// The period of the loop `tokens` ends in, if any.
    pub fn detect(&self, tokens: &[u32]) -> Option<usize> {
        (1..=self.max_period).find(|&period| {
            let span = self.min_span.max(period * self.min_repeats);
            span <= tokens.len() && {
                let tail = &tokens[tokens.len() - span..];
                tail[period..].iter().zip(tail).all(|(a, b)| a == b)
            }
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeOptions {
    pub max_new_tokens: usize,
    /// Tokens that end generation (kept as the last generated token).
    pub stop_tokens: Vec<u32>,
    pub repetition: Option<RepetitionGuard>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// The model produced one of the stop tokens.
    EndToken,
    /// `max_new_tokens` were generated, or the model's context is full.
    MaxTokens,
    /// The repetition guard saw a loop.
    Repetition,
    /// The per-token callback asked to stop.
    Cancelled,
}

#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct DecodeStats {
    pub prompt_tokens: usize,
    pub generated_tokens: usize,
    /// Forward pass over the prompt, which also yields the first generated token.
    pub prompt_time: Duration,
    /// Forward passes after the first generated token: `generated_tokens - 1` of them.
    pub generation_time: Duration,
}

impl DecodeStats {
    pub fn prompt_tokens_per_s(&self) -> f64 {
        self.prompt_tokens as f64 / self.prompt_time.as_secs_f64()
    }

    /// Tokens per second of the one-token forward passes (as llama.cpp's "eval time").
    pub fn generation_tokens_per_s(&self) -> f64 {
        self.generated_tokens.saturating_sub(1) as f64 / self.generation_time.as_secs_f64()
    }
}

/// One generated token, as seen by the per-token callback.
#[derive(Debug)]
pub struct Step<'a> {
    /// 0 for the first generated token.
    pub index: usize,
    pub token: u32,
    /// The logits the token was chosen from.
    pub logits: &'a [f32],
}

#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    /// Generated tokens, including the stop token when there was one.
    pub tokens: Vec<u32>,
    pub stop: StopReason,
    pub stats: DecodeStats,
}

/// The highest logit's index; the lowest id wins a tie, as llama.cpp's greedy sampler (it keeps
/// the first maximum of the unsorted candidates, which are in id order). NaN never wins.
pub fn argmax(logits: &[f32]) -> Option<u32> {
    let mut best: Option<(usize, f32)> = None;
    for (i, &l) in logits.iter().enumerate() {
        if !l.is_nan() && best.is_none_or(|(_, b)| l > b) {
            best = Some((i, l));
        }
    }
    best.map(|(i, _)| i as u32)
}

/// Greedy generation after `prompt`, calling `on_step` for every generated token (stop token
/// included); `on_step` returning `Break` ends generation with [`StopReason::Cancelled`].
/// When several reasons apply to the same token, the first of `EndToken`, `Cancelled`,
/// `Repetition`, `MaxTokens` is reported.
pub fn greedy(
    model: &mut impl CausalLm,
    prompt: &[u32],
    opts: &DecodeOptions,
    mut on_step: impl FnMut(&Step<'_>) -> ControlFlow<()>,
) -> Result<Decoded, InferError> {
    if prompt.is_empty() {
        return Err(InferError::EmptyPrompt);
    }
    let context = model.context_length();
    if prompt.len() >= context {
        return Err(InferError::ContextOverflow {
            tokens: prompt.len(),
            context,
        });
    }
    let max_new = opts.max_new_tokens.min(context - prompt.len());
    let mut stats = DecodeStats {
        prompt_tokens: prompt.len(),
        ..DecodeStats::default()
    };
    let mut tokens = Vec::new();
    if max_new == 0 {
        return Ok(Decoded {
            tokens,
            stop: StopReason::MaxTokens,
            stats,
        });
    }

    let start = Instant::now();
    let mut logits = model.forward(prompt, 0)?;
    stats.prompt_time = start.elapsed();
    let generation_start = Instant::now();
    let stop = loop {
        let token = argmax(&logits).ok_or(InferError::NoLogits)?;
        tokens.push(token);
        let flow = on_step(&Step {
            index: tokens.len() - 1,
            token,
            logits: &logits,
        });
        if opts.stop_tokens.contains(&token) {
            break StopReason::EndToken;
        }
        if flow.is_break() {
            break StopReason::Cancelled;
        }
        if opts.repetition.is_some_and(|g| g.detect(&tokens).is_some()) {
            break StopReason::Repetition;
        }
        if tokens.len() >= max_new {
            break StopReason::MaxTokens;
        }
        logits = model.forward(&[token], prompt.len() + tokens.len() - 1)?;
    };
    stats.generation_time = generation_start.elapsed();
    stats.generated_tokens = tokens.len();
    Ok(Decoded {
        tokens,
        stop,
        stats,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argmax_prefers_the_lowest_id_on_ties_and_skips_nan() {
        assert_eq!(argmax(&[1.0, 3.0, 3.0, 2.0]), Some(1));
        assert_eq!(argmax(&[f32::NAN, -1.0, f32::NAN]), Some(1));
        assert_eq!(argmax(&[f32::NEG_INFINITY]), Some(0));
        assert_eq!(argmax(&[]), None);
        assert_eq!(argmax(&[f32::NAN]), None);
    }

    #[test]
    fn repetition_needs_the_whole_span() {
        let g = RepetitionGuard {
            max_period: 4,
            min_span: 9,
            min_repeats: 3,
        };
        let looped = [7, 1, 2, 3, 1, 2, 3, 1, 2, 3];
        assert_eq!(g.detect(&looped), Some(3));
        assert_eq!(g.detect(&looped[..9]), None);
        assert_eq!(g.detect(&[5; 9]), Some(1));
        assert_eq!(g.detect(&[5; 8]), None);
        // A period of 4 needs 12 tokens (3 repeats), more than min_span.
        let four = [1, 2, 3, 4, 1, 2, 3, 4, 1, 2, 3];
        assert_eq!(g.detect(&four), None);
        assert_eq!(g.detect(&[&four[..], &[4]].concat()), Some(4));
    }
}
