//! Greedy decoding for causal language models, independent of the model's architecture.

use super::kernels::math::argmax;
use super::InferError;
use std::collections::VecDeque;
use std::ops::ControlFlow;
use std::time::{Duration, Instant};

/// A causal language model that keeps its own KV cache.
pub trait CausalLm {
    /// Runs `tokens` at positions `position..position + tokens.len()` and returns the logits
    /// (one per vocabulary entry) that predict the token after the last one. Position 0 starts
    /// a new sequence; a later position continues the sequence cached up to it.
    fn forward(&mut self, tokens: &[u32], position: usize) -> Result<Vec<f32>, InferError>;

    /// Runs `tokens` as [`forward`](Self::forward) does and returns the logits after each of
    /// them, every one equal bit for bit to what `forward` gives when the tokens are fed one
    /// at a time: what checking a speculative draft needs for the output to stay exactly the
    /// greedy one. This default does exactly that; a model overrides it with one batched pass.
    fn forward_each(
        &mut self,
        tokens: &[u32],
        position: usize,
    ) -> Result<Vec<Vec<f32>>, InferError> {
        (position..)
            .zip(tokens)
            .map(|(p, &token)| self.forward(&[token], p))
            .collect()
    }

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

/// Prompt-lookup drafting (speculative decoding without a draft model): when the sequence's
/// last `n` tokens occurred before, for `n` from `max_ngram` down to `min_ngram`, the tokens
/// that followed their latest earlier occurrence are proposed as a draft, and one forward pass
/// checks the whole draft. A summary copies whole phrases from its article, a translation
/// names and numbers from its source; the output is the greedy output whatever the drafts are
/// (see [`CausalLm::forward_each`]).
///
/// Checking a draft costs more than a plain step (each extra row adds arithmetic to the same
/// weight pass: `cargo bench --bench kquant` has a second Q4_K row at 1.3x one row, so a draft
/// token costs about a third of a pass), so a draft starts at one token, doubles (up to
/// `max_draft`) each time it holds in full, and falls back to what held when it does not; and
/// drafting stops for the rest of a generation once fewer than a third of at least 8 draft
/// tokens held, below which failed drafts cost more than those that hold save (most of a long
/// translation; the bench's single prompt held 5 of 21).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PromptLookup {
    pub max_ngram: usize,
    pub min_ngram: usize,
    pub max_draft: usize,
}

impl Default for PromptLookup {
    fn default() -> Self {
        Self {
            max_ngram: 3,
            min_ngram: 2,
            max_draft: 7,
        }
    }
}

impl PromptLookup {
    /// The draft that follows `sequence`: empty when its last n-gram occurred nowhere before.
    pub fn draft<'a>(&self, sequence: &'a [u32]) -> &'a [u32] {
        for n in (self.min_ngram.max(1)..=self.max_ngram).rev() {
            if sequence.len() <= n {
                continue;
            }
            let suffix = &sequence[sequence.len() - n..];
            // The latest earlier occurrence that has a token after it.
            if let Some(start) = (0..sequence.len() - n)
                .rev()
                .find(|&i| &sequence[i..i + n] == suffix)
            {
                let after = start + n;
                return &sequence[after..(after + self.max_draft).min(sequence.len())];
            }
        }
        &[]
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeOptions {
    pub max_new_tokens: usize,
    /// Tokens that end generation (kept as the last generated token).
    pub stop_tokens: Vec<u32>,
    pub repetition: Option<RepetitionGuard>,
    /// Drafts checked in one pass; `None` decodes one token per pass.
    pub lookup: Option<PromptLookup>,
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
    /// The constraint allowed no token at all: the text cannot go on under it.
    DeadEnd,
}

#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct DecodeStats {
    pub prompt_tokens: usize,
    pub generated_tokens: usize,
    /// Forward pass over the prompt, which also yields the first generated token.
    pub prompt_time: Duration,
    /// Forward passes after the first generated token, which yielded the other
    /// `generated_tokens - 1`.
    pub generation_time: Duration,
    /// Those forward passes (fewer than `generated_tokens - 1` when drafts held).
    pub generation_passes: usize,
    /// Draft tokens proposed by prompt lookup, and how many of them the model confirmed.
    pub draft_tokens: usize,
    pub accepted_draft_tokens: usize,
}

impl DecodeStats {
    pub fn prompt_tokens_per_s(&self) -> f64 {
        self.prompt_tokens as f64 / self.prompt_time.as_secs_f64()
    }

    /// Tokens per second after the first generated token (as llama.cpp's "eval time").
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

/// Rules out tokens that the output must not take (constrained decoding): greedy decoding then
/// takes the most likely token the constraint allows.
pub trait TokenConstraint {
    /// Whether `token` may follow `generated`, the tokens generated so far.
    fn allows(&self, generated: &[u32], token: u32) -> bool;
}

/// Several constraints at once: a token must be allowed by each.
impl TokenConstraint for Vec<&dyn TokenConstraint> {
    fn allows(&self, generated: &[u32], token: u32) -> bool {
        self.iter().all(|c| c.allows(generated, token))
    }
}

/// The most likely token after `generated` that `constraint` allows. The argmax is asked first
/// (almost always allowed); only when it is refused are all tokens scanned.
fn choose(
    logits: &[f32],
    generated: &[u32],
    constraint: Option<&dyn TokenConstraint>,
) -> Option<u32> {
    let best = argmax(logits)?;
    let Some(constraint) = constraint else {
        return Some(best);
    };
    if constraint.allows(generated, best) {
        return Some(best);
    }
    (0..logits.len() as u32)
        .filter(|&t| !logits[t as usize].is_nan() && constraint.allows(generated, t))
        .fold(None, |best: Option<u32>, t| match best {
            Some(b) if logits[b as usize] >= logits[t as usize] => Some(b),
            _ => Some(t),
        })
}

/// Greedy generation after `prompt`, calling `on_step` for every generated token (stop token
/// included); `on_step` returning `Break` ends generation with [`StopReason::Cancelled`].
/// When several reasons apply to the same token, the first of `EndToken`, `Cancelled`,
/// `Repetition`, `MaxTokens` is reported.
pub fn greedy(
    model: &mut impl CausalLm,
    prompt: &[u32],
    opts: &DecodeOptions,
    on_step: impl FnMut(&Step<'_>) -> ControlFlow<()>,
) -> Result<Decoded, InferError> {
    constrained(model, prompt, opts, None, on_step)
}

/// [`greedy`], taking at each step the most likely token that `constraint` allows. Drafts are
/// checked under the same constraint, so the output is the same with and without them.
pub fn constrained(
    model: &mut impl CausalLm,
    prompt: &[u32],
    opts: &DecodeOptions,
    constraint: Option<&dyn TokenConstraint>,
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
    // Logits of the tokens still to emit, in order: one after a plain pass, those of the
    // confirmed draft tokens and of the token after them after a draft's check.
    let mut pending = VecDeque::from([model.forward(prompt, 0)?]);
    stats.prompt_time = start.elapsed();
    let generation_start = Instant::now();
    // The prompt and the tokens generated so far, where drafts are looked up.
    let mut sequence = prompt.to_vec();
    let mut draft_len = 1;
    let stop = loop {
        let logits = pending.pop_front().expect("logits for the next token");
        let Some(token) = choose(&logits, &tokens, constraint) else {
            // A repair held to the source's numbers can write itself into a corner ("1,351"
            // of 1,3517, with no digit left that fits): that request ends there, unfinished.
            if constraint.is_some() && argmax(&logits).is_some() {
                break StopReason::DeadEnd;
            }
            return Err(InferError::NoLogits);
        };
        tokens.push(token);
        sequence.push(token);
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
        if pending.is_empty() {
            let position = sequence.len() - 1;
            // A draft never reaches past the token budget: its last token's logits would not
            // be used.
            let room = max_new - tokens.len() - 1;
            let drafts_fail =
                stats.draft_tokens >= 8 && 3 * stats.accepted_draft_tokens < stats.draft_tokens;
            let draft = match opts.lookup {
                Some(lookup) if !drafts_fail => lookup.draft(&sequence),
                _ => &[],
            };
            let draft = &draft[..draft.len().min(room).min(draft_len)];
            stats.generation_passes += 1;
            if draft.is_empty() {
                pending.push_back(model.forward(&[token], position)?);
                continue;
            }
            let checked = [&[token], draft].concat();
            stats.draft_tokens += draft.len();
            let mut held = 0;
            // The tokens each draft position follows, for the constraint (none to copy
            // without one: the argmax needs no context).
            let mut context = match constraint {
                Some(_) => tokens.clone(),
                None => Vec::new(),
            };
            for (logits, proposed) in model
                .forward_each(&checked, position)?
                .into_iter()
                .zip(draft.iter().map(Some).chain([None]))
            {
                let holds =
                    proposed.is_some_and(|&p| choose(&logits, &context, constraint) == Some(p));
                pending.push_back(logits);
                if !holds {
                    break;
                }
                if constraint.is_some() {
                    context.extend(proposed);
                }
                held += 1;
            }
            stats.accepted_draft_tokens += held;
            let max_draft = opts.lookup.map_or(1, |l| l.max_draft);
            draft_len = if held == draft.len() {
                (2 * draft_len).min(max_draft)
            } else {
                held.max(1)
            };
        }
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

    /// Ranks token 2 first, then 1, then 0, whatever came before.
    struct Fixed;

    impl CausalLm for Fixed {
        fn forward(&mut self, _: &[u32], _: usize) -> Result<Vec<f32>, InferError> {
            Ok(vec![0.0, 1.0, 2.0])
        }

        fn context_length(&self) -> usize {
            64
        }
    }

    /// Allows `limit` tokens, then none.
    struct Upto(usize);

    impl TokenConstraint for Upto {
        fn allows(&self, generated: &[u32], _: u32) -> bool {
            generated.len() < self.0
        }
    }

    #[test]
    fn a_constraint_that_allows_nothing_ends_the_request() {
        let opts = DecodeOptions {
            max_new_tokens: 10,
            stop_tokens: vec![],
            repetition: None,
            lookup: None,
        };
        let decoded = constrained(&mut Fixed, &[1], &opts, Some(&Upto(3)), |_| {
            ControlFlow::Continue(())
        })
        .unwrap();
        assert_eq!(decoded.tokens, [2, 2, 2]);
        assert_eq!(decoded.stop, StopReason::DeadEnd);
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
