//! Greedy decoding for causal language models, independent of the model's architecture.

use super::kernels::math::argmax;
use super::InferError;
use std::collections::VecDeque;
use std::ops::ControlFlow;
use std::time::{Duration, Instant};

/// A causal language model that keeps its own KV cache, for one sequence or several (each in a
/// slot of its own, numbered from 0).
pub trait CausalLm {
    /// Runs `tokens` at positions `position..position + tokens.len()` of sequence 0 and returns
    /// the logits (one per vocabulary entry) that predict the token after the last one.
    /// Position 0 starts a new sequence; a later position continues the sequence cached up to
    /// it.
    fn forward(&mut self, tokens: &[u32], position: usize) -> Result<Vec<f32>, InferError>;

    /// Runs `tokens` as [`forward`](Self::forward) does and returns the logits after each of
    /// them, every one equal bit for bit to what `forward` gives when the tokens are fed one
    /// at a time: what checking a speculative draft needs for the output to stay exactly the
    /// greedy one.
    fn forward_each(
        &mut self,
        tokens: &[u32],
        position: usize,
    ) -> Result<Vec<Vec<f32>>, InferError> {
        let rows = SequenceRows {
            slot: 0,
            position,
            tokens,
        };
        Ok(self.step(&[rows])?.remove(0))
    }

    /// The longest sequence (prompt and generated tokens) the model can attend over.
    fn context_length(&self) -> usize;

    /// How many sequences the model can hold at once (slots `0..max_sequences()`).
    fn max_sequences(&self) -> usize {
        1
    }

    /// Starts the sequence in `slot` with `prompt`: the logits after its last token, and how
    /// many of its tokens the cache already held (this default computes them all).
    fn start(&mut self, slot: usize, prompt: &[u32]) -> Result<Started, InferError> {
        assert_eq!(slot, 0, "a model of one sequence");
        Ok(Started {
            logits: self.forward(prompt, 0)?,
            cached: 0,
        })
    }

    /// Continues several sequences (distinct slots) in one pass: for each, the logits after
    /// each of its tokens, equal bit for bit to what feeding them one at a time to that
    /// sequence alone gives. This default does exactly that, for a model of one sequence; a
    /// model overrides it with one pass over the weights for all rows.
    fn step(&mut self, rows: &[SequenceRows<'_>]) -> Result<Vec<Vec<Vec<f32>>>, InferError> {
        rows.iter()
            .map(|r| {
                assert_eq!(r.slot, 0, "a model of one sequence");
                (r.position..)
                    .zip(r.tokens)
                    .map(|(p, &token)| self.forward(&[token], p))
                    .collect()
            })
            .collect()
    }
}

/// A sequence started by [`CausalLm::start`].
#[derive(Debug)]
pub struct Started {
    /// The logits after the prompt's last token.
    pub logits: Vec<f32>,
    /// Leading prompt tokens whose keys and values came from the cache, not computed.
    pub cached: usize,
}

/// Tokens of one sequence in a [`CausalLm::step`]: they run at positions
/// `position..position + tokens.len()` of the sequence in `slot`.
#[derive(Debug, Clone, Copy)]
pub struct SequenceRows<'a> {
    pub slot: usize,
    pub position: usize,
    pub tokens: &'a [u32],
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
    /// Of `prompt_tokens`, those the KV cache held from an earlier request: not computed, and
    /// not in `prompt_time`.
    pub cached_prompt_tokens: usize,
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
    /// Prompt tokens computed per second (those taken from the cache cost no time).
    pub fn prompt_tokens_per_s(&self) -> f64 {
        (self.prompt_tokens - self.cached_prompt_tokens) as f64 / self.prompt_time.as_secs_f64()
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
    let request = Request {
        prompt,
        opts,
        constraint,
    };
    let mut decoded = batch(model, &[request], 1, |_, step| on_step(step))?;
    Ok(decoded.remove(0))
}

/// One request of a [`batch`]: a prompt and how to decode after it.
#[derive(Clone, Copy)]
pub struct Request<'a> {
    pub prompt: &'a [u32],
    pub opts: &'a DecodeOptions,
    pub constraint: Option<&'a dyn TokenConstraint>,
}

/// [`constrained`] decoding of several requests, up to `width` of them at a time in the
/// model's sequence slots, their steps computed together ([`CausalLm::step`]): when one
/// finishes, the next waiting one starts (continuous batching). Each request's tokens are
/// exactly those it gets alone, and those it gets when the requests run one after another
/// (`width` 1): its steps are computed row by row, and a prompt starts from the prefix it
/// shares with the request started before it, as in a single cache. `on_step` gets each token
/// with its request's index. The results are in the requests' order; a prompt that is empty or
/// does not fit the context fails the whole call before any work.
pub fn batch(
    model: &mut impl CausalLm,
    requests: &[Request<'_>],
    width: usize,
    mut on_step: impl FnMut(usize, &Step<'_>) -> ControlFlow<()>,
) -> Result<Vec<Decoded>, InferError> {
    let context = model.context_length();
    for request in requests {
        if request.prompt.is_empty() {
            return Err(InferError::EmptyPrompt);
        }
        if request.prompt.len() >= context {
            return Err(InferError::ContextOverflow {
                tokens: request.prompt.len(),
                context,
            });
        }
    }
    let width = width.min(model.max_sequences()).max(1);
    let mut results: Vec<Option<Decoded>> = vec![None; requests.len()];
    let mut waiting = requests.iter().enumerate();
    let mut active: Vec<Active<'_>> = Vec::with_capacity(width);
    loop {
        // Start waiting requests while there is room, then take every active request to the
        // point where it needs a pass (or to its end); a request that ends makes room.
        loop {
            while active.len() < width {
                let Some((index, request)) = waiting.next() else {
                    break;
                };
                let max_new = request
                    .opts
                    .max_new_tokens
                    .min(context - request.prompt.len());
                let stats = DecodeStats {
                    prompt_tokens: request.prompt.len(),
                    ..DecodeStats::default()
                };
                if max_new == 0 {
                    results[index] = Some(Decoded {
                        tokens: Vec::new(),
                        stop: StopReason::MaxTokens,
                        stats,
                    });
                    continue;
                }
                let slot = (0..width)
                    .find(|slot| active.iter().all(|a| a.slot != *slot))
                    .expect("a free slot");
                let started = Instant::now();
                let sequence = model.start(slot, request.prompt)?;
                active.push(Active::new(
                    index, slot, request, max_new, stats, sequence, started,
                ));
            }
            let before = active.len();
            let mut i = 0;
            while i < active.len() {
                let index = active[i].index;
                match active[i].advance(&mut |step| on_step(index, step))? {
                    Some(stop) => {
                        let done = active.swap_remove(i);
                        results[index] = Some(done.finish(stop));
                    }
                    None => i += 1,
                }
            }
            if active.len() == before || waiting.len() == 0 {
                break;
            }
        }
        if active.is_empty() {
            break;
        }
        let rows: Vec<SequenceRows<'_>> = active
            .iter()
            .map(|a| SequenceRows {
                slot: a.slot,
                position: a.sequence.len() - 1,
                tokens: &a.rows,
            })
            .collect();
        let logits = model.step(&rows)?;
        for (a, logits) in active.iter_mut().zip(logits) {
            a.receive(logits);
        }
    }
    Ok(results
        .into_iter()
        .map(|r| r.expect("every request decoded"))
        .collect())
}

/// A request being decoded.
struct Active<'r> {
    index: usize,
    slot: usize,
    request: &'r Request<'r>,
    max_new: usize,
    stats: DecodeStats,
    /// Generated tokens.
    tokens: Vec<u32>,
    /// The prompt and the tokens generated so far, where drafts are looked up.
    sequence: Vec<u32>,
    /// Logits of the tokens still to emit, in order: one after a plain pass, those of the
    /// confirmed draft tokens and of the token after them after a draft's check.
    pending: VecDeque<Vec<f32>>,
    /// Tokens of the next pass: the last generated token, then the draft, if any.
    rows: Vec<u32>,
    draft_len: usize,
    generation_start: Instant,
}

impl<'r> Active<'r> {
    fn new(
        index: usize,
        slot: usize,
        request: &'r Request<'r>,
        max_new: usize,
        mut stats: DecodeStats,
        sequence: Started,
        started: Instant,
    ) -> Self {
        stats.prompt_time = started.elapsed();
        stats.cached_prompt_tokens = sequence.cached;
        let logits = sequence.logits;
        Self {
            index,
            slot,
            request,
            max_new,
            stats,
            tokens: Vec::new(),
            sequence: request.prompt.to_vec(),
            pending: VecDeque::from([logits]),
            rows: Vec::new(),
            draft_len: 1,
            generation_start: Instant::now(),
        }
    }

    /// Emits the tokens whose logits are pending; returns why the request ended, or `None`
    /// with the rows of its next pass in `rows`.
    fn advance(
        &mut self,
        on_step: &mut dyn FnMut(&Step<'_>) -> ControlFlow<()>,
    ) -> Result<Option<StopReason>, InferError> {
        let (opts, constraint) = (self.request.opts, self.request.constraint);
        while let Some(logits) = self.pending.pop_front() {
            let Some(token) = choose(&logits, &self.tokens, constraint) else {
                // A repair held to the source's numbers can write itself into a corner ("1,351"
                // of 1,3517, with no digit left that fits): that request ends there, unfinished.
                if constraint.is_some() && argmax(&logits).is_some() {
                    return Ok(Some(StopReason::DeadEnd));
                }
                return Err(InferError::NoLogits);
            };
            self.tokens.push(token);
            self.sequence.push(token);
            let flow = on_step(&Step {
                index: self.tokens.len() - 1,
                token,
                logits: &logits,
            });
            if opts.stop_tokens.contains(&token) {
                return Ok(Some(StopReason::EndToken));
            }
            if flow.is_break() {
                return Ok(Some(StopReason::Cancelled));
            }
            if opts
                .repetition
                .is_some_and(|g| g.detect(&self.tokens).is_some())
            {
                return Ok(Some(StopReason::Repetition));
            }
            if self.tokens.len() >= self.max_new {
                return Ok(Some(StopReason::MaxTokens));
            }
            self.rows.clear();
        }
        if self.rows.is_empty() {
            // A draft never reaches past the token budget: its last token's logits would not
            // be used.
            let room = self.max_new - self.tokens.len() - 1;
            let stats = &self.stats;
            let drafts_fail =
                stats.draft_tokens >= 8 && 3 * stats.accepted_draft_tokens < stats.draft_tokens;
            let draft = match opts.lookup {
                Some(lookup) if !drafts_fail => lookup.draft(&self.sequence),
                _ => &[],
            };
            let draft = &draft[..draft.len().min(room).min(self.draft_len)];
            self.rows
                .push(*self.sequence.last().expect("a generated token"));
            self.rows.extend_from_slice(draft);
            self.stats.generation_passes += 1;
            self.stats.draft_tokens += draft.len();
        }
        Ok(None)
    }

    /// Takes the logits of the pass over `rows`: a draft's tokens hold as long as each is the
    /// token the logits before it choose.
    fn receive(&mut self, logits: Vec<Vec<f32>>) {
        let constraint = self.request.constraint;
        let draft = &self.rows[1..];
        if draft.is_empty() {
            self.pending.extend(logits);
            return;
        }
        // The tokens each draft position follows, for the constraint (none to copy without
        // one: the argmax needs no context).
        let mut context = match constraint {
            Some(_) => self.tokens.clone(),
            None => Vec::new(),
        };
        let mut held = 0;
        for (logits, proposed) in logits.into_iter().zip(draft.iter().map(Some).chain([None])) {
            let holds = proposed.is_some_and(|&p| choose(&logits, &context, constraint) == Some(p));
            self.pending.push_back(logits);
            if !holds {
                break;
            }
            if constraint.is_some() {
                context.extend(proposed);
            }
            held += 1;
        }
        self.stats.accepted_draft_tokens += held;
        let max_draft = self.request.opts.lookup.map_or(1, |l| l.max_draft);
        self.draft_len = if held == draft.len() {
            (2 * self.draft_len).min(max_draft)
        } else {
            held.max(1)
        };
    }

    fn finish(self, stop: StopReason) -> Decoded {
        let mut stats = self.stats;
        stats.generation_time = self.generation_start.elapsed();
        stats.generated_tokens = self.tokens.len();
        Decoded {
            tokens: self.tokens,
            stop,
            stats,
        }
    }
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

    /// Predicts the next token from its sequence's tokens so far, one history per slot, and
    /// counts the sequences of each step.
    struct Sequences {
        seen: Vec<Vec<u32>>,
        widest_step: usize,
    }

    impl Sequences {
        const END: u32 = 2;

        fn new() -> Self {
            Self {
                seen: vec![Vec::new(); 4],
                widest_step: 0,
            }
        }

        /// Echoes the token five back, every third position a token of its own, and ends once
        /// the sequence is longer than 12 plus its first token: drafts hold in places, and
        /// lengths vary.
        fn next(seen: &[u32]) -> u32 {
            let n = seen.len();
            if n > 12 + seen[0] as usize {
                Self::END
            } else if n.is_multiple_of(3) || n < 5 {
                (seen[n - 1] * 7 + 1) % 20 + 3
            } else {
                seen[n - 5]
            }
        }

        fn run(&mut self, slot: usize, tokens: &[u32], position: usize) -> Vec<f32> {
            let seen = &mut self.seen[slot];
            assert!(position <= seen.len(), "slot {slot} run out of order");
            seen.truncate(position);
            seen.extend_from_slice(tokens);
            let mut logits = vec![0.0; 32];
            logits[Self::next(seen) as usize] = 1.0;
            logits
        }
    }

    impl CausalLm for Sequences {
        fn forward(&mut self, tokens: &[u32], position: usize) -> Result<Vec<f32>, InferError> {
            Ok(self.run(0, tokens, position))
        }

        fn context_length(&self) -> usize {
            64
        }

        fn max_sequences(&self) -> usize {
            self.seen.len()
        }

        fn start(&mut self, slot: usize, prompt: &[u32]) -> Result<Started, InferError> {
            Ok(Started {
                logits: self.run(slot, prompt, 0),
                cached: 0,
            })
        }

        fn step(&mut self, rows: &[SequenceRows<'_>]) -> Result<Vec<Vec<Vec<f32>>>, InferError> {
            self.widest_step = self.widest_step.max(rows.len());
            Ok(rows
                .iter()
                .map(|r| {
                    (0..r.tokens.len())
                        .map(|i| self.run(r.slot, &r.tokens[i..=i], r.position + i))
                        .collect()
                })
                .collect())
        }
    }

    #[test]
    fn a_batch_gives_each_request_what_it_gets_alone() {
        let prompts: Vec<Vec<u32>> = (0..7u32).map(|i| vec![i % 5, 9, 4 + i, 7]).collect();
        let with_lookup = DecodeOptions {
            max_new_tokens: 30,
            stop_tokens: vec![Sequences::END],
            repetition: None,
            lookup: Some(PromptLookup::default()),
        };
        let short = DecodeOptions {
            max_new_tokens: 6,
            lookup: None,
            ..with_lookup.clone()
        };
        let upto = Upto(9);
        let requests: Vec<Request<'_>> = prompts
            .iter()
            .enumerate()
            .map(|(i, prompt)| Request {
                prompt,
                opts: if i == 3 { &short } else { &with_lookup },
                constraint: (i == 5).then_some(&upto as &dyn TokenConstraint),
            })
            .collect();
        let mut streamed = vec![Vec::new(); requests.len()];
        let mut model = Sequences::new();
        let together = batch(&mut model, &requests, 3, |index, step| {
            streamed[index].push(step.token);
            ControlFlow::Continue(())
        })
        .unwrap();
        assert_eq!(model.widest_step, 3);
        for (i, request) in requests.iter().enumerate() {
            let alone = constrained(
                &mut Sequences::new(),
                request.prompt,
                request.opts,
                request.constraint,
                |_| ControlFlow::Continue(()),
            )
            .unwrap();
            assert_eq!(together[i].tokens, alone.tokens, "request {i}");
            assert_eq!(together[i].stop, alone.stop, "request {i}");
            assert_eq!(streamed[i], alone.tokens, "request {i}");
            let drafts = |d: &Decoded| (d.stats.draft_tokens, d.stats.accepted_draft_tokens);
            assert_eq!(drafts(&together[i]), drafts(&alone), "request {i}");
        }
        let stops: Vec<StopReason> = together.iter().map(|d| d.stop).collect();
        assert!(stops.contains(&StopReason::EndToken) && stops.contains(&StopReason::MaxTokens));
        assert!(stops.contains(&StopReason::DeadEnd));
        assert!(together.iter().any(|d| d.stats.accepted_draft_tokens > 0));
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
