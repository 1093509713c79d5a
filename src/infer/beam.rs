//! Search for sequence-to-sequence models: greedy decoding and beam search with the exact
//! semantics of Hugging Face `generate` (transformers 5), so that a model gives the same tokens
//! here as there.
//!
//! What "the same" takes, beyond taking the best tokens:
//! * greedy picks the arg-max of the processed raw logits; a finished row stops;
//! * beam search adds log-softmax scores, keeps the best `2 * beams` continuations of each
//!   source, lets only the first `beams` of them finish (at the end token or at the length
//!   limit), scores finished hypotheses by `sum / generated_len ^ length_penalty`, and stops a
//!   source by HF's heuristic (`early_stopping` false: when the best running score, normalised
//!   at the current length, cannot beat the worst of `beams` finished ones; `true`: as soon as
//!   `beams` hypotheses are finished; `"never"`: as false, but normalised at the maximum length
//!   when the length penalty is positive);
//! * the logits processors of a Marian generation config, in HF's order: end token banned
//!   below `min_length`, `bad_words_ids` banned, end token forced at `max_length - 1`.
//!
//! The search never touches the model's internals: it sees a [`Seq2SeqDecoder`], which feeds
//! one token per row and reorders or drops rows when told.

use rayon::prelude::*;

use super::cpu;
use super::kernels::math::{argmax, exp};
use super::InferError;

/// A decoder whose rows (hypotheses) the search steers.
pub trait Seq2SeqDecoder {
    /// Feeds one token per row; writes the next-token logits into `logits`, row after row
    /// (the search passes the same buffer at every step).
    fn step(&mut self, tokens: &[u32], logits: &mut Vec<f32>) -> Result<(), InferError>;
    /// Keeps rows in this order: new row `i` is old row `rows[i]`.
    fn select_rows(&mut self, rows: &[u32]) -> Result<(), InferError>;
    fn vocab_size(&self) -> usize;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EarlyStopping {
    /// HF `early_stopping=False` (the default).
    Heuristic,
    /// HF `early_stopping=True`.
    WhenFull,
    /// HF `early_stopping="never"`.
    Never,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SearchConfig {
    pub num_beams: usize,
    /// Decoder length limit, the start token included (HF `max_length`).
    pub max_length: usize,
    /// The end token is banned while the decoder length, start token included, is below this
    /// (HF `min_length`; `1 + min_new_tokens` for `min_new_tokens`).
    pub min_length: usize,
    pub length_penalty: f32,
    pub early_stopping: EarlyStopping,
    pub decoder_start_token_id: u32,
    pub eos_token_id: u32,
    pub forced_eos_token_id: Option<u32>,
    /// Tokens never generated (HF `bad_words_ids` made of single tokens: Marian's pad ban).
    pub banned_tokens: Vec<u32>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Hypothesis {
    /// Generated tokens, the end token included if there is one; the start token excluded.
    pub tokens: Vec<u32>,
    /// Sum of log-probabilities over `len ^ length_penalty` (beam search); the sum of the
    /// chosen tokens' log-probabilities for greedy decoding is not computed (0).
    pub score: f32,
    /// True when the model chose to end: false when the length limit ended the hypothesis,
    /// including by forcing the end token at the last position (`forced_eos_token_id`).
    pub ended: bool,
}

/// Step statistics, for progress and speed figures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SearchStats {
    pub steps: usize,
    /// Decoder rows summed over steps: the work done.
    pub row_steps: usize,
}

/// Runs greedy decoding (`num_beams == 1`) or beam search for `sources` sources. The decoder
/// must start with `num_beams` rows per source, in source order.
pub fn generate(
    decoder: &mut dyn Seq2SeqDecoder,
    sources: usize,
    config: &SearchConfig,
    on_step: &mut dyn FnMut(usize),
) -> Result<(Vec<Hypothesis>, SearchStats), InferError> {
    if config.max_length < 2 {
        return Err(InferError::Config(format!(
            "max_length {} leaves no room for a token",
            config.max_length
        )));
    }
    if config.num_beams <= 1 {
        greedy(decoder, sources, config, on_step)
    } else {
        beam_search(decoder, sources, config, on_step)
    }
}

/// The logits processors, applied in HF's order to one row of scores. `cur_len` counts the
/// decoder tokens so far, the start token included.
fn process(scores: &mut [f32], cur_len: usize, config: &SearchConfig) {
    let eos = config.eos_token_id as usize;
    if cur_len < config.min_length && eos < scores.len() {
        scores[eos] = f32::NEG_INFINITY;
    }
    for &t in &config.banned_tokens {
        if let Some(s) = scores.get_mut(t as usize) {
            *s = f32::NEG_INFINITY;
        }
    }
    if let Some(forced) = config.forced_eos_token_id {
        if cur_len == config.max_length - 1 && (forced as usize) < scores.len() {
            scores.fill(f32::NEG_INFINITY);
            scores[forced as usize] = 0.0;
        }
    }
}

/// Whether the end token is forced at this step (so a hypothesis ending here was cut).
fn is_forced_step(cur_len: usize, config: &SearchConfig) -> bool {
    config.forced_eos_token_id.is_some() && cur_len == config.max_length - 1
}

fn greedy(
    decoder: &mut dyn Seq2SeqDecoder,
    sources: usize,
    config: &SearchConfig,
    on_step: &mut dyn FnMut(usize),
) -> Result<(Vec<Hypothesis>, SearchStats), InferError> {
    let vocab = decoder.vocab_size();
    let mut outputs: Vec<Hypothesis> = (0..sources)
        .map(|_| Hypothesis {
            tokens: Vec::new(),
            score: 0.0,
            ended: false,
        })
        .collect();
    // Which source each decoder row decodes; finished rows are dropped from the decoder.
    let mut live: Vec<usize> = (0..sources).collect();
    let mut last: Vec<u32> = vec![config.decoder_start_token_id; sources];
    let mut cur_len = 1;
    let mut stats = SearchStats::default();
    let mut logits = Vec::new();
    while !live.is_empty() && cur_len < config.max_length {
        decoder.step(&last, &mut logits)?;
        stats.steps += 1;
        stats.row_steps += live.len();
        let mut keep = Vec::with_capacity(live.len());
        let mut next_last = Vec::with_capacity(live.len());
        for (row, &source) in live.iter().enumerate() {
            let scores = &mut logits_row(&logits, row, vocab)?.to_vec();
            process(scores, cur_len, config);
            // The first index of the maximum, as `torch.argmax` (NaN aside: torch picks a NaN,
            // this never does, and a row with nothing else is an error).
            let token = argmax(scores).ok_or(InferError::NoLogits)?;
            let out = &mut outputs[source];
            out.tokens.push(token);
            if token == config.eos_token_id {
                out.ended = !is_forced_step(cur_len, config);
            } else {
                keep.push(row as u32);
                next_last.push(token);
            }
        }
        cur_len += 1;
        if keep.len() != live.len() {
            live = keep.iter().map(|&r| live[r as usize]).collect();
            if !live.is_empty() {
                decoder.select_rows(&keep)?;
            }
        }
        last = next_last;
        on_step(cur_len - 1);
    }
    Ok((outputs, stats))
}

fn logits_row(logits: &[f32], row: usize, vocab: usize) -> Result<&[f32], InferError> {
    logits
        .get(row * vocab..(row + 1) * vocab)
        .ok_or(InferError::NoLogits)
}

/// `log_softmax` in f32, as torch computes it: `x - max - log(sum(exp(x - max)))`, with the
/// maximum and the sum kept in 16 lanes and `math::exp`, so that the loops vectorise (the C
/// library's `expf`, one call per value, was 8% of an int8 beam search's time over 59,514
/// tokens; `perf`). torch's own sum is vectorised too, in another order: neither is the other's
/// bits. A NaN makes the whole row NaN.
fn log_softmax(row: &mut [f32]) {
    const LANES: usize = 16;
    cpu::vectorized(|| {
        let (chunks, tail) = row.as_chunks::<LANES>();
        let mut lanes = [f32::NEG_INFINITY; LANES];
        for chunk in chunks {
            for l in 0..LANES {
                lanes[l] = lanes[l].max(chunk[l]);
            }
        }
        let max = lanes
            .into_iter()
            .chain(tail.iter().copied())
            .fold(f32::NEG_INFINITY, f32::max);
        let mut sums = [0f32; LANES];
        for chunk in chunks {
            for l in 0..LANES {
                sums[l] += exp(chunk[l] - max);
            }
        }
        let sum = sums.iter().sum::<f32>() + tail.iter().map(|&x| exp(x - max)).sum::<f32>();
        let log_sum = sum.ln();
        for x in row.iter_mut() {
            *x = *x - max - log_sum;
        }
    })
}

/// One source's beam search state.
struct Beams {
    /// Running hypotheses: tokens and accumulated log-probability, best first.
    running: Vec<(Vec<u32>, f32)>,
    /// Finished hypotheses, best first, at most `num_beams`.
    finished: Vec<Hypothesis>,
    /// HF's `is_early_stop_heuristic_unsatisfied`: false once no running hypothesis can
    /// beat the finished ones.
    improvable: bool,
}

impl Beams {
    fn done(&self, config: &SearchConfig) -> bool {
        !self.improvable
            || (config.early_stopping == EarlyStopping::WhenFull
                && self.finished.len() == config.num_beams)
    }
}

/// `len ^ length_penalty` as HF computes it (a Python float), applied to an f32 score.
fn normalise(score: f32, len: usize, length_penalty: f32) -> f32 {
    let denominator = (len as f64).powf(f64::from(length_penalty));
    score / denominator as f32
}

/// Keeps in `best` the `k` best (score, index) pairs of what it held and `scores`, best first;
/// ties go to the pair seen first (the lower index, where indices rise).
fn keep_top_k(best: &mut Vec<(f32, usize)>, scores: impl Iterator<Item = (f32, usize)>, k: usize) {
    for (s, i) in scores {
        if best.len() == k && s.partial_cmp(&best[k - 1].0) != Some(std::cmp::Ordering::Greater) {
            continue;
        }
        let at = best.partition_point(|&(bs, _)| bs >= s);
        best.insert(at, (s, i));
        best.truncate(k);
    }
}

fn beam_search(
    decoder: &mut dyn Seq2SeqDecoder,
    sources: usize,
    config: &SearchConfig,
    on_step: &mut dyn FnMut(usize),
) -> Result<(Vec<Hypothesis>, SearchStats), InferError> {
    let k = config.num_beams;
    let vocab = decoder.vocab_size();
    if vocab < 2 * k {
        return Err(InferError::Config(format!(
            "{k} beams need a vocabulary of at least {} tokens",
            2 * k
        )));
    }
    let mut beams: Vec<Beams> = (0..sources)
        .map(|_| Beams {
            // Only the first beam is live at the start; the others are HF's -1e9 placeholders,
            // kept so that rows line up with the decoder.
            running: (0..k)
                .map(|i| (Vec::new(), if i == 0 { 0.0 } else { -1e9 }))
                .collect(),
            finished: Vec::new(),
            improvable: true,
        })
        .collect();
    // Sources whose rows are still in the decoder, in row order (k rows each).
    let mut live: Vec<usize> = (0..sources).collect();
    let mut logits = Vec::new();
    let mut cur_len = 1;
    let mut stats = SearchStats::default();
    while !live.is_empty() {
        let last: Vec<u32> = live
            .iter()
            .flat_map(|&s| {
                beams[s]
                    .running
                    .iter()
                    .map(|(t, _)| t.last().copied().unwrap_or(config.decoder_start_token_id))
            })
            .collect();
        decoder.step(&last, &mut logits)?;
        stats.steps += 1;
        stats.row_steps += last.len();
        let hits_max_length = cur_len + 1 >= config.max_length;
        // The 2k best continuations of every live source, sources in parallel: scoring all
        // k * vocab of them is most of the search's work, and each source's is its own.
        let best: Vec<Vec<(f32, usize)>> = live
            .par_iter()
            .enumerate()
            .map(|(slot, &source)| {
                let mut scratch = vec![0f32; vocab];
                let mut best = Vec::with_capacity(2 * k + 1);
                for (b, (_, beam_score)) in beams[source].running.iter().enumerate() {
                    scratch.copy_from_slice(logits_row(&logits, slot * k + b, vocab)?);
                    log_softmax(&mut scratch);
                    process(&mut scratch, cur_len, config);
                    let scores = scratch.iter().map(|&lp| lp + beam_score);
                    keep_top_k(&mut best, scores.zip(b * vocab..), 2 * k);
                }
                Ok(best)
            })
            .collect::<Result<_, InferError>>()?;
        // For every live source: the rows (old row numbers) its next running beams come from.
        let mut next_rows: Vec<u32> = Vec::with_capacity(last.len());
        for ((slot, &source), candidates) in live.iter().enumerate().zip(best) {
            let state = &mut beams[source];
            let mut running = Vec::with_capacity(k);
            let mut from_rows = Vec::with_capacity(k);
            let mut newly_finished = Vec::new();
            for (j, &(score, index)) in candidates.iter().enumerate() {
                let (beam, token) = (index / vocab, (index % vocab) as u32);
                let hits = token == config.eos_token_id || hits_max_length;
                if hits {
                    // Only the first k continuations may finish a hypothesis.
                    if j < k {
                        let mut tokens = state.running[beam].0.clone();
                        tokens.push(token);
                        newly_finished.push(Hypothesis {
                            score: normalise(score, cur_len, config.length_penalty),
                            ended: token == config.eos_token_id && !is_forced_step(cur_len, config),
                            tokens,
                        });
                    }
                } else if running.len() < k {
                    let mut tokens = state.running[beam].0.clone();
                    tokens.push(token);
                    running.push((tokens, score));
                    from_rows.push((slot * k + beam) as u32);
                }
            }
            // HF would fill missing running slots with finished continuations scored -1e9;
            // that only happens at the length limit, where the search ends anyway.
            while running.len() < k {
                let (tokens, _) = state.running[0].clone();
                running.push((tokens, -1e9));
                from_rows.push((slot * k) as u32);
            }
            let accepts = state.improvable
                && !(config.early_stopping == EarlyStopping::WhenFull && state.finished.len() == k);
            if accepts {
                for hypothesis in newly_finished {
                    let at = state
                        .finished
                        .partition_point(|h| h.score >= hypothesis.score);
                    if at < k {
                        state.finished.insert(at, hypothesis);
                        state.finished.truncate(k);
                    }
                }
            }
            state.running = running;
            next_rows.extend(from_rows);
        }
        cur_len += 1;
        for &source in &live {
            let state = &mut beams[source];
            let best_len =
                if config.early_stopping == EarlyStopping::Never && config.length_penalty > 0.0 {
                    config.max_length - 1
                } else {
                    cur_len - 1
                };
            let best_possible = normalise(state.running[0].1, best_len, config.length_penalty);
            let full = state.finished.len() == k;
            let worst = state.finished.last().map(|h| h.score);
            if full
                && worst.is_some_and(|w| {
                    best_possible.partial_cmp(&w) != Some(std::cmp::Ordering::Greater)
                })
            {
                state.improvable = false;
            }
        }
        on_step(cur_len - 1);
        if hits_max_length {
            break;
        }
        // Sources that cannot change any more leave the decoder.
        let mut keep_rows = Vec::with_capacity(next_rows.len());
        let mut still_live = Vec::with_capacity(live.len());
        for (slot, &source) in live.iter().enumerate() {
            if !beams[source].done(config) {
                still_live.push(source);
                keep_rows.extend_from_slice(&next_rows[slot * k..(slot + 1) * k]);
            }
        }
        live = still_live;
        if !live.is_empty() {
            decoder.select_rows(&keep_rows)?;
        }
    }
    let outputs = beams
        .into_iter()
        .map(|b| {
            b.finished.into_iter().next().unwrap_or_else(|| Hypothesis {
                tokens: Vec::new(),
                score: f32::NEG_INFINITY,
                ended: false,
            })
        })
        .collect();
    Ok((outputs, stats))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A decoder whose logits depend only on the tokens of each row so far, through a table:
    /// `table(prefix) -> logits`. Rows are tracked as prefixes, so reordering is checked.
    struct Scripted<F: Fn(&[u32]) -> Vec<f32>> {
        rows: Vec<Vec<u32>>,
        vocab: usize,
        logits: F,
    }

    impl<F: Fn(&[u32]) -> Vec<f32>> Seq2SeqDecoder for Scripted<F> {
        fn step(&mut self, tokens: &[u32], out: &mut Vec<f32>) -> Result<(), InferError> {
            assert_eq!(tokens.len(), self.rows.len());
            out.clear();
            for (row, &t) in self.rows.iter_mut().zip(tokens) {
                row.push(t);
                out.extend((self.logits)(row));
            }
            Ok(())
        }
        fn select_rows(&mut self, rows: &[u32]) -> Result<(), InferError> {
            self.rows = rows
                .iter()
                .map(|&r| self.rows[r as usize].clone())
                .collect();
            Ok(())
        }
        fn vocab_size(&self) -> usize {
            self.vocab
        }
    }

    fn config(beams: usize, max_length: usize) -> SearchConfig {
        SearchConfig {
            num_beams: beams,
            max_length,
            min_length: 0,
            length_penalty: 1.0,
            early_stopping: EarlyStopping::Heuristic,
            decoder_start_token_id: 9,
            eos_token_id: 0,
            forced_eos_token_id: Some(0),
            banned_tokens: vec![9],
        }
    }

    #[test]
    fn greedy_stops_at_the_end_token_and_bans_pad() {
        // Token 9 (pad) always scores highest but is banned; then 3, 4, then the end token.
        let logits = |prefix: &[u32]| {
            let mut l = vec![0.0; 10];
            l[9] = 100.0;
            match prefix.len() {
                1 => l[3] = 5.0,
                2 => l[4] = 5.0,
                _ => l[0] = 5.0,
            }
            l
        };
        let mut d = Scripted {
            rows: vec![vec![]],
            vocab: 10,
            logits,
        };
        let (out, _) = generate(&mut d, 1, &config(1, 20), &mut |_| {}).unwrap();
        assert_eq!(out[0].tokens, [3, 4, 0]);
        assert!(out[0].ended);
    }

    #[test]
    fn greedy_forces_the_end_token_at_the_length_limit() {
        let logits = |_: &[u32]| {
            let mut l = vec![0.0; 10];
            l[5] = 1.0;
            l
        };
        let mut d = Scripted {
            rows: vec![vec![]],
            vocab: 10,
            logits,
        };
        let (out, _) = generate(&mut d, 1, &config(1, 4), &mut |_| {}).unwrap();
        assert_eq!(out[0].tokens, [5, 5, 0]);
        assert!(!out[0].ended, "a forced end token is a cut, not an end");
        let mut cfg = config(1, 4);
        cfg.forced_eos_token_id = None;
        let mut d = Scripted {
            rows: vec![vec![]],
            vocab: 10,
            logits,
        };
        let (out, _) = generate(&mut d, 1, &cfg, &mut |_| {}).unwrap();
        assert_eq!(out[0].tokens, [5, 5, 5]);
        assert!(!out[0].ended);
    }

    #[test]
    fn beam_search_finds_the_better_path_greedy_misses() {
        // Greedy takes 1 (p=0.6) then gets a flat continuation; 2 (p=0.4) leads to a
        // near-certain end. Beam search must prefer 2, 0.
        let logits = |prefix: &[u32]| {
            let ln = |p: f32| p.ln();
            let mut l = vec![ln(1e-6); 10];
            match prefix {
                [_] => {
                    l[1] = ln(0.6);
                    l[2] = ln(0.4);
                }
                [_, 1] => {
                    for x in l.iter_mut().take(5) {
                        *x = ln(0.2);
                    }
                }
                [_, 2] => l[0] = ln(0.999),
                _ => l[0] = 0.0,
            }
            l
        };
        let mut d = Scripted {
            rows: vec![vec![]; 2],
            vocab: 10,
            logits,
        };
        let (out, _) = generate(&mut d, 1, &config(2, 10), &mut |_| {}).unwrap();
        assert_eq!(out[0].tokens, [2, 0]);
        let mut d = Scripted {
            rows: vec![vec![]],
            vocab: 10,
            logits,
        };
        let (out, _) = generate(&mut d, 1, &config(1, 10), &mut |_| {}).unwrap();
        assert_eq!(out[0].tokens, [1, 0]);
    }

    #[test]
    fn sources_in_one_batch_do_not_affect_each_other() {
        // The source is told apart by the first row's prefix length parity... simpler: two
        // sources, identical logits, must give identical outputs.
        let logits = |prefix: &[u32]| {
            let mut l = vec![0.0f32; 12];
            let n = prefix.len() as f32;
            for (i, x) in l.iter_mut().enumerate() {
                *x = ((i as f32 * 1.3 + n * 0.7).sin()) * 3.0;
            }
            l[0] = n - 4.0;
            l
        };
        let mut d = Scripted {
            rows: vec![vec![]; 3],
            vocab: 12,
            logits,
        };
        let (single, _) = generate(&mut d, 1, &config(3, 12), &mut |_| {}).unwrap();
        let mut d = Scripted {
            rows: vec![vec![]; 6],
            vocab: 12,
            logits,
        };
        let (pair, _) = generate(&mut d, 2, &config(3, 12), &mut |_| {}).unwrap();
        assert_eq!(pair[0], single[0]);
        assert_eq!(pair[1], single[0]);
    }

    #[test]
    fn top_k_is_sorted_and_prefers_lower_indices_on_ties() {
        let v = [1.0, 3.0, 3.0, f32::NEG_INFINITY, 2.0];
        let mut best = Vec::new();
        keep_top_k(&mut best, v.iter().copied().zip(0..), 3);
        assert_eq!(best, [(3.0, 1), (3.0, 2), (2.0, 4)]);
        // Fed in two parts, as a beam search feeds each beam's scores in turn: the same.
        let mut parts = Vec::new();
        keep_top_k(&mut parts, v[..2].iter().copied().zip(0..), 3);
        keep_top_k(&mut parts, v[2..].iter().copied().zip(2..), 3);
        assert_eq!(parts, best);
    }
}
