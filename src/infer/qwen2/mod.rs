//! Qwen2 over GGUF quantised weights.
//!
//! Forked from candle-transformers 0.11.1 `models::quantized_qwen2` (same layers, same
//! quantised matrix products) for what it lacks:
//! - token embeddings kept quantised and dequantised row by row (candle turns the whole table
//!   into f32: 0.9 GiB for the 1.5B model);
//! - grouped-query attention without copying K and V once per query head;
//! - a KV cache that can be rewound to any earlier position, so a shared prompt prefix can be
//!   kept.
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
use super::kernels::kquant;
use super::kernels::math::exp;
use super::team::compute_pool;
use super::{CausalLm, InferError};
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

impl Layer {
    /// The layer over `seq` rows of `x` (plain values, updated in place): attention row by row
    /// (see [`Attention::forward_rows`]), or over the whole chunk for a prompt chunk, then the
    /// feed-forward block.
    fn forward(
        &mut self,
        x: &mut [f32],
        seq: usize,
        rope: &Rope,
        prompt: Option<&PromptChunk>,
    ) -> candle_core::Result<()> {
        let normed = self.attn_norm.rows(x);
        let h = match prompt {
            None => self.attn.forward_rows(&normed, seq, rope)?,
            Some(chunk) => self.attn.forward(&normed, seq, chunk)?,
        };
        x.iter_mut().zip(h).for_each(|(x, h)| *x += h);
        let [gate, up]: [Vec<f32>; 2] =
            QLinear::rows_many(&[&self.gate, &self.up], &self.ffn_norm.rows(x), seq)?
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
        let h = self.down.rows(&h, seq)?;
        x.iter_mut().zip(h).for_each(|(x, h)| *x += h);
        Ok(())
    }
}

/// The Qwen2 decoder with its KV cache.
pub struct Qwen2 {
    embedding: TokenEmbedding,
    layers: Vec<Layer>,
    norm: RmsNorm,
    output: QLinear,
    rope: Rope,
    config: Qwen2Config,
    device: Device,
    /// The tokens whose keys and values the cache holds, in position order.
    cached_ids: Vec<u32>,
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
                    cache: KvCache::default(),
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
            cached_ids: Vec::new(),
        })
    }

    pub fn config(&self) -> &Qwen2Config {
        &self.config
    }

    /// Runs `tokens` from `position` on; returns the logits after each token when `each`,
    /// else after the last one only.
    fn run(
        &mut self,
        tokens: &[u32],
        position: usize,
        each: bool,
    ) -> Result<Vec<Vec<f32>>, InferError> {
        for layer in &mut self.layers {
            layer.attn.truncate_cache(position);
        }
        self.cached_ids.truncate(position);
        let chunk_len = if each {
            ROW_EXACT_BELOW - 1
        } else {
            PROMPT_CHUNK
        };
        // On one of the pool's threads, each parallel loop of the pass is split between this
        // thread and the others, instead of handed over while this one sleeps until it ends.
        compute_pool().install(|| {
            let mut logits = Vec::new();
            for chunk in tokens.chunks(chunk_len) {
                if !each {
                    logits.clear();
                }
                logits.extend(self.forward_chunk(chunk, each)?);
                self.cached_ids.extend_from_slice(chunk);
            }
            Ok(logits)
        })
    }

    /// Checks `position`, skips what the cache already holds (but the last token when only
    /// its logits are asked for) and runs the rest; a failed pass leaves an empty cache.
    fn forward_from(
        &mut self,
        tokens: &[u32],
        position: usize,
        each: bool,
    ) -> Result<Vec<Vec<f32>>, InferError> {
        let cached = self.cached_ids.len();
        if position > cached {
            return Err(InferError::Position {
                got: position,
                cached,
            });
        }
        let end = position + tokens.len();
        if end > self.config.context_length {
            return Err(InferError::ContextOverflow {
                tokens: end,
                context: self.config.context_length,
            });
        }
        let known = if each {
            0
        } else {
            self.cached_ids[position..]
                .iter()
                .zip(tokens)
                .take_while(|(a, b)| a == b)
                .count()
                .min(tokens.len().saturating_sub(1))
        };
        let result = self.run(&tokens[known..], position + known, each);
        if result.is_err() {
            // Some layers may have cached part of the failed pass: only a fresh start is safe.
            for layer in &mut self.layers {
                layer.attn.cache.clear();
            }
            self.cached_ids.clear();
        }
        result
    }

    fn forward_chunk(&mut self, tokens: &[u32], each: bool) -> Result<Vec<Vec<f32>>, InferError> {
        let (pos, seq) = (self.cached_ids.len(), tokens.len());
        let mut x = self.embedding.rows(tokens)?;
        let prompt = if seq >= ROW_EXACT_BELOW {
            let kv_len = pos + seq;
            let mask: Vec<f32> = (0..seq)
                .flat_map(|i| {
                    (0..kv_len).map(move |j| if j > pos + i { f32::NEG_INFINITY } else { 0.0 })
                })
                .collect();
            let (cos, sin) = self.rope.tables(pos, seq)?;
            let mask = Tensor::from_vec(mask, (seq, kv_len), &self.device)?;
            Some(PromptChunk { cos, sin, mask })
        } else {
            None
        };
        for layer in &mut self.layers {
            layer.forward(&mut x, seq, &self.rope, prompt.as_ref())?;
        }
        let width = self.config.embedding_length;
        let rows = if each {
            &x[..]
        } else {
            &x[(seq - 1) * width..]
        };
        let logits = self
            .output
            .rows(&self.norm.rows(rows), rows.len() / width)?;
        let vocab = logits.len() / (rows.len() / width);
        Ok(logits.chunks_exact(vocab).map(<[f32]>::to_vec).collect())
    }
}

impl CausalLm for Qwen2 {
    /// A `position` below the cached length rewinds the cache. Tokens that the cache already
    /// holds at their positions are not computed again (all but the last, whose logits are
    /// returned): requests that share a prefix, such as a system prompt, pay for it once.
    fn forward(&mut self, tokens: &[u32], position: usize) -> Result<Vec<f32>, InferError> {
        let mut logits = self.forward_from(tokens, position, false)?;
        logits.pop().ok_or(InferError::EmptyPrompt)
    }

    /// In chunks shorter than `ROW_EXACT_BELOW`, which go row by row through every step.
    fn forward_each(
        &mut self,
        tokens: &[u32],
        position: usize,
    ) -> Result<Vec<Vec<f32>>, InferError> {
        self.forward_from(tokens, position, true)
    }

    fn context_length(&self) -> usize {
        self.config.context_length
    }
}
