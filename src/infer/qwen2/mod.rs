//! Qwen2 over GGUF quantised weights.
//!
//! Forked from candle-transformers 0.11.1 `models::quantized_qwen2` (same layers, same
//! quantised matrix products) for what it lacks:
//! - token embeddings kept quantised and dequantised row by row (candle turns the whole table
//!   into f32: 0.9 GiB for the 1.5B model);
//! - grouped-query attention without copying K and V once per query head;
//! - a KV cache that can be rewound to any earlier position, so a shared prompt prefix can be
//!   kept;
//! - several sequences at once, each with its own cache, their decoding steps computed in one
//!   pass over the weights (batched decoding).
//!
//! Numerics: logits differ from llama.cpp's by 0.07-0.09 on average (see `tests/llm_parity.rs`).
//! Emulating llama.cpp's f16 KV cache and its iterated RoPE angles was tried and did not bring
//! them closer: the model amplifies any rounding difference to that level (llama.cpp's own
//! logits move by up to 0.3 when only its KV cache changes from f16 to f32).

mod attention;
mod config;
mod kv_cache;
mod weights;

pub use config::Qwen2Config;

use super::cpu;
use super::kernels::kquant::{self, RowMode};
use super::kernels::math::exp;
use super::team::compute_pool;
use super::{CausalLm, InferError, SequenceRows, Started};
use attention::{Attention, PromptChunk};
use candle_core::quantized::gguf_file::Content;
use candle_core::{Device, Tensor};
use config::check_extents;
use kv_cache::KvCache;
use std::io::{Read, Seek};
use weights::{QLinear, RmsNorm, Rope, TokenEmbedding};

/// Prompts are run in chunks of this many tokens so that the attention scores
/// (heads × chunk × context floats) stay small however long the prompt is.
const PROMPT_CHUNK: usize = 512;

/// Chunks shorter than this go through every product and the attention row by row (see
/// `kquant::TILED_FROM_ROWS`): their logits equal those of feeding the tokens one at a time.
const ROW_EXACT_BELOW: usize = kquant::TILED_FROM_ROWS;

struct Layer {
    attn_norm: RmsNorm,
    attn: Attention,
    ffn_norm: RmsNorm,
    gate: QLinear,
    up: QLinear,
    down: QLinear,
}

/// How a pass runs its rows.
enum Pass<'p> {
    /// One prompt-sized chunk of one sequence: whole-chunk products and attention.
    Prompt(&'p PromptChunk),
    /// Rows of one or more sequences, each row exactly as a decoding step alone.
    Rows,
}

impl Layer {
    /// The layer over the rows of `x` (plain values, updated in place), which belong to the
    /// sequences of `groups` in order (each one's cache in this layer and its row count):
    /// attention, then the feed-forward block.
    fn forward(
        &self,
        x: &mut [f32],
        rope: &Rope,
        pass: &Pass<'_>,
        groups: &mut [(&mut KvCache, usize)],
    ) -> candle_core::Result<()> {
        let seq = groups.iter().map(|(_, rows)| rows).sum();
        let normed = self.attn_norm.rows(x);
        let (h, mode) = match (pass, groups) {
            (Pass::Prompt(chunk), [(cache, _)]) => (
                self.attn.forward(&normed, seq, chunk, cache)?,
                RowMode::Fastest,
            ),
            (Pass::Prompt(_), _) => unreachable!("a prompt chunk belongs to one sequence"),
            (Pass::Rows, groups) => (
                self.attn.forward_rows(&normed, rope, groups)?,
                RowMode::Exact,
            ),
        };
        x.iter_mut().zip(h).for_each(|(x, h)| *x += h);
        let [gate, up]: [Vec<f32>; 2] =
            QLinear::rows_many(&[&self.gate, &self.up], &self.ffn_norm.rows(x), seq, mode)?
                .try_into()
                .expect("two projections");
        // A plain loop: an iterator's `collect` would be a function of its own, compiled for
        // the baseline, not inlined into this level's code.
        let mut h = vec![0f32; gate.len()];
        cpu::vectorized(|| {
            for ((h, g), u) in h.iter_mut().zip(&gate).zip(&up) {
                *h = g / (1.0 + exp(-g)) * u;
            }
        });
        let h = self.down.rows(&h, seq, mode)?;
        x.iter_mut().zip(h).for_each(|(x, h)| *x += h);
        Ok(())
    }
}

/// One sequence's keys and values in every layer, and the tokens they are of, in position
/// order.
#[derive(Default)]
struct Sequence {
    layers: Vec<KvCache>,
    ids: Vec<u32>,
}

impl Sequence {
    fn truncate(&mut self, position: usize, hd: usize) {
        for cache in &mut self.layers {
            cache.truncate(position, hd);
        }
        self.ids.truncate(position);
    }

    /// Replaces this sequence by the first `positions` positions of `other`.
    fn copy_prefix(&mut self, other: &Self, positions: usize, hd: usize) {
        self.layers
            .resize_with(other.layers.len(), KvCache::default);
        for (cache, from) in self.layers.iter_mut().zip(&other.layers) {
            cache.copy_prefix(from, positions, hd);
        }
        self.ids = other.ids[..positions].to_vec();
    }
}

/// The Qwen2 decoder with the KV caches of its sequences.
pub struct Qwen2 {
    embedding: TokenEmbedding,
    layers: Vec<Layer>,
    norm: RmsNorm,
    output: QLinear,
    rope: Rope,
    config: Qwen2Config,
    device: Device,
    /// The sequences, by slot; they are made as they are first used.
    sequences: Vec<Sequence>,
    /// The slot of the sequence started last: a new sequence in another slot starts from the
    /// prefix it shares with that one, as it would in a model with a single cache.
    latest: usize,
}

impl Qwen2 {
    pub fn from_gguf<R: Read + Seek>(
        ct: &Content,
        reader: &mut R,
        device: &Device,
    ) -> Result<Self, InferError> {
        let config = Qwen2Config::from_gguf(ct)?;
        check_extents(ct, reader)?;
        let mut qtensor = |name: &str| {
            if !ct.tensor_infos.contains_key(name) {
                return Err(InferError::MissingTensor(name.into()));
            }
            Ok(ct.tensor(reader, name, device)?)
        };
        let eps = config.rms_norm_eps;
        let mut layers = Vec::with_capacity(config.block_count);
        for i in 0..config.block_count {
            let mut get = |suffix: &str| qtensor(&format!("blk.{i}.{suffix}"));
            layers.push(Layer {
                attn_norm: RmsNorm::new(get("attn_norm.weight")?, eps)?,
                attn: Attention {
                    wq: QLinear::new(get("attn_q.weight")?)?,
                    wk: QLinear::new(get("attn_k.weight")?)?,
                    wv: QLinear::new(get("attn_v.weight")?)?,
                    bq: get("attn_q.bias")?.dequantize(device)?.to_vec1()?,
                    bk: get("attn_k.bias")?.dequantize(device)?.to_vec1()?,
                    bv: get("attn_v.bias")?.dequantize(device)?.to_vec1()?,
                    wo: QLinear::new(get("attn_output.weight")?)?,
                    n_head: config.head_count,
                    n_kv_head: config.head_count_kv,
                    head_dim: config.head_dim(),
                },
                ffn_norm: RmsNorm::new(get("ffn_norm.weight")?, eps)?,
                gate: QLinear::new(get("ffn_gate.weight")?)?,
                up: QLinear::new(get("ffn_up.weight")?)?,
                down: QLinear::new(get("ffn_down.weight")?)?,
            });
        }
        let norm = RmsNorm::new(qtensor("output_norm.weight")?, eps)?;
        // Models with tied embeddings have no `output.weight`.
        let output_name = if ct.tensor_infos.contains_key("output.weight") {
            "output.weight"
        } else {
            "token_embd.weight"
        };
        let output = QLinear::new(qtensor(output_name)?)?;
        let embedding = TokenEmbedding::read(ct, reader, "token_embd.weight")?;
        let rope = Rope::new(
            config.head_dim(),
            config.rope_freq_base,
            config.context_length,
        );
        Ok(Self {
            embedding,
            layers,
            norm,
            output,
            rope,
            config,
            device: device.clone(),
            sequences: Vec::new(),
            latest: 0,
        })
    }

    pub fn config(&self) -> &Qwen2Config {
        &self.config
    }

    /// The sequence in `slot`, made (empty) if it is new.
    fn sequence(&mut self, slot: usize) -> &mut Sequence {
        if self.sequences.len() <= slot {
            self.sequences.resize_with(slot + 1, Sequence::default);
        }
        &mut self.sequences[slot]
    }

    /// Bytes held by the KV caches of every sequence.
    pub fn cache_bytes(&self) -> usize {
        self.sequences
            .iter()
            .flat_map(|s| &s.layers)
            .map(KvCache::bytes)
            .sum()
    }

    /// Checks that `len` tokens can run from `position` in `slot`.
    fn check_position(&self, slot: usize, position: usize, len: usize) -> Result<(), InferError> {
        let cached = self.sequences.get(slot).map_or(0, |s| s.ids.len());
        if position > cached {
            return Err(InferError::Position {
                got: position,
                cached,
            });
        }
        let end = position + len;
        if end > self.config.context_length {
            return Err(InferError::ContextOverflow {
                tokens: end,
                context: self.config.context_length,
            });
        }
        Ok(())
    }

    /// Runs a prompt (or its continuation) in `slot` from `position` on and returns the logits
    /// after its last token. Tokens the cache already holds at their positions are skipped (but
    /// the last); the rest goes in chunks of `PROMPT_CHUNK` tokens. A failed pass leaves the
    /// sequence empty.
    fn prefill(
        &mut self,
        slot: usize,
        tokens: &[u32],
        position: usize,
    ) -> Result<Started, InferError> {
        self.check_position(slot, position, tokens.len())?;
        let hd = self.config.head_dim();
        let sequence = self.sequence(slot);
        let known = sequence.ids[position..]
            .iter()
            .zip(tokens)
            .take_while(|(a, b)| a == b)
            .count()
            .min(tokens.len().saturating_sub(1));
        sequence.truncate(position + known, hd);
        // On one of the pool's threads, each parallel loop of the pass is split between this
        // thread and the others, instead of handed over while this one sleeps until it ends.
        let result = compute_pool().install(|| {
            let mut logits = Vec::new();
            for chunk in tokens[known..].chunks(PROMPT_CHUNK) {
                logits = self.pass(&[(slot, chunk)], false)?;
            }
            logits.pop().ok_or(InferError::EmptyPrompt)
        });
        if result.is_err() {
            // Some layers may have cached part of the failed pass: only a fresh start is safe.
            self.sequences[slot] = Sequence::default();
        }
        Ok(Started {
            logits: result?,
            cached: known,
        })
    }

    /// One pass over `groups` (each a slot whose cache ends where its tokens start, and the
    /// tokens); returns the logits after every token when `each`, else after the last one of
    /// the last group. A single group of `ROW_EXACT_BELOW` tokens or more, with only its last
    /// logits asked for, is a prompt chunk; every other pass goes row by row.
    fn pass(
        &mut self,
        groups: &[(usize, &[u32])],
        each: bool,
    ) -> Result<Vec<Vec<f32>>, InferError> {
        let tokens: Vec<u32> = groups.iter().flat_map(|(_, t)| t.iter().copied()).collect();
        let seq = tokens.len();
        let mut x = self.embedding.rows(&tokens)?;
        let prompt = match groups {
            [(slot, chunk)] if !each && chunk.len() >= ROW_EXACT_BELOW => {
                let pos = self.sequences[*slot].ids.len();
                let kv_len = pos + seq;
                let mask: Vec<f32> = (0..seq)
                    .flat_map(|i| {
                        (0..kv_len).map(move |j| if j > pos + i { f32::NEG_INFINITY } else { 0.0 })
                    })
                    .collect();
                let (cos, sin) = self.rope.tables(pos, seq)?;
                let mask = Tensor::from_vec(mask, (seq, kv_len), &self.device)?;
                Some(PromptChunk { cos, sin, mask })
            }
            _ => None,
        };
        let pass = prompt.as_ref().map_or(Pass::Rows, Pass::Prompt);
        // The groups' sequences in row order (their slots are distinct).
        let mut by_slot: Vec<Option<&mut Sequence>> = self.sequences.iter_mut().map(Some).collect();
        let mut sequences: Vec<&mut Sequence> = groups
            .iter()
            .map(|(slot, _)| by_slot[*slot].take().expect("distinct slots"))
            .collect();
        for sequence in &mut sequences {
            sequence
                .layers
                .resize_with(self.layers.len(), KvCache::default);
        }
        for (l, layer) in self.layers.iter().enumerate() {
            let mut caches: Vec<(&mut KvCache, usize)> = sequences
                .iter_mut()
                .zip(groups)
                .map(|(s, (_, t))| (&mut s.layers[l], t.len()))
                .collect();
            layer.forward(&mut x, &self.rope, &pass, &mut caches)?;
        }
        for (sequence, (_, t)) in sequences.iter_mut().zip(groups) {
            sequence.ids.extend_from_slice(t);
        }
        let width = self.config.embedding_length;
        let rows = if each {
            &x[..]
        } else {
            &x[(seq - 1) * width..]
        };
        let mode = if prompt.is_some() {
            RowMode::Fastest
        } else {
            RowMode::Exact
        };
        let logits = self
            .output
            .rows(&self.norm.rows(rows), rows.len() / width, mode)?;
        let vocab = logits.len() / (rows.len() / width);
        Ok(logits.chunks_exact(vocab).map(<[f32]>::to_vec).collect())
    }
}

impl CausalLm for Qwen2 {
    /// Sequence 0. A `position` below the cached length rewinds the cache. Tokens that the
    /// cache already holds at their positions are not computed again (all but the last, whose
    /// logits are returned): requests that share a prefix, such as a system prompt, pay for it
    /// once.
    fn forward(&mut self, tokens: &[u32], position: usize) -> Result<Vec<f32>, InferError> {
        if position == 0 {
            return Ok(self.start(0, tokens)?.logits);
        }
        Ok(self.prefill(0, tokens, position)?.logits)
    }

    fn context_length(&self) -> usize {
        self.config.context_length
    }

    fn max_sequences(&self) -> usize {
        usize::MAX
    }

    /// The new sequence first takes the keys and values of the prefix it shares with the
    /// sequence started last, then runs the rest as [`forward`](Self::forward) does.
    fn start(&mut self, slot: usize, prompt: &[u32]) -> Result<Started, InferError> {
        if prompt.is_empty() {
            return Err(InferError::EmptyPrompt);
        }
        if slot != self.latest {
            let hd = self.config.head_dim();
            self.sequence(slot.max(self.latest));
            let [sequence, latest] = self
                .sequences
                .get_disjoint_mut([slot, self.latest])
                .expect("two distinct slots");
            let shared = latest
                .ids
                .iter()
                .zip(prompt)
                .take_while(|(a, b)| a == b)
                .count();
            sequence.copy_prefix(latest, shared, hd);
            self.latest = slot;
        }
        self.prefill(slot, prompt, 0)
    }

    /// Every row on its own (exact mode), however many there are.
    fn step(&mut self, rows: &[SequenceRows<'_>]) -> Result<Vec<Vec<Vec<f32>>>, InferError> {
        for (i, r) in rows.iter().enumerate() {
            if r.tokens.is_empty() {
                return Err(InferError::EmptyPrompt);
            }
            assert!(
                rows[..i].iter().all(|o| o.slot != r.slot),
                "slot {} twice in one step",
                r.slot
            );
            self.check_position(r.slot, r.position, r.tokens.len())?;
        }
        let hd = self.config.head_dim();
        for r in rows {
            self.sequence(r.slot).truncate(r.position, hd);
        }
        let groups: Vec<(usize, &[u32])> = rows.iter().map(|r| (r.slot, r.tokens)).collect();
        let result = compute_pool().install(|| self.pass(&groups, true));
        match result {
            Ok(logits) => {
                let mut logits = logits.into_iter();
                Ok(rows
                    .iter()
                    .map(|r| logits.by_ref().take(r.tokens.len()).collect())
                    .collect())
            }
            Err(e) => {
                for r in rows {
                    self.sequences[r.slot] = Sequence::default();
                }
                Err(e)
            }
        }
    }
}
