//! The Marian encoder-decoder (opus-mt), as Hugging Face's `MarianMTModel` computes it.
//!
//! Forked from candle-transformers 0.11.1 `models/marian.rs`, whose API cannot serve a real
//! translator: its encoder has no padding mask (so sentences cannot be batched), its decoder
//! projects the encoder output to cross-attention keys and values again at every step, and its
//! KV cache lives inside the layers with no way to reorder rows (so no beam search). Here the
//! encoder runs once per batch with a padding mask, the cross-attention keys and values are
//! computed once per source, and the decoder's state is a value the search owns and reorders.
//!
//! The model is only the network; choosing tokens is `super::beam`'s job.

use candle_core::{DType, Device, IndexOp, Module, Tensor};
use candle_nn::{Activation, Embedding, LayerNorm, VarBuilder};

mod dense;
mod self_cache;
use dense::Dense;
use self_cache::{Ancestry, LayerHistory};

use crate::infer::cpu;
use crate::infer::kernels::math;
use serde::Deserialize;

use super::InferError;

/// `config.json` of a Marian model: the fields the network depends on.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct MarianConfig {
    pub vocab_size: usize,
    #[serde(default)]
    pub decoder_vocab_size: Option<usize>,
    pub max_position_embeddings: usize,
    pub encoder_layers: usize,
    pub encoder_ffn_dim: usize,
    pub encoder_attention_heads: usize,
    pub decoder_layers: usize,
    pub decoder_ffn_dim: usize,
    pub decoder_attention_heads: usize,
    pub d_model: usize,
    pub activation_function: Activation,
    #[serde(default)]
    pub scale_embedding: bool,
    pub pad_token_id: u32,
    pub eos_token_id: u32,
    pub decoder_start_token_id: u32,
    #[serde(default)]
    pub forced_eos_token_id: Option<u32>,
    #[serde(default = "yes")]
    pub share_encoder_decoder_embeddings: bool,
    #[serde(default = "yes")]
    pub tie_word_embeddings: bool,
    /// Pre-norm transformers (`normalize_before`) are a different network; refuse them.
    #[serde(default)]
    pub normalize_before: bool,
}

fn yes() -> bool {
    true
}

impl MarianConfig {
    pub fn target_vocab_size(&self) -> usize {
        self.decoder_vocab_size.unwrap_or(self.vocab_size)
    }

    fn check(&self) -> Result<(), InferError> {
        let bad = |what: String| Err(InferError::Config(what));
        if self.normalize_before {
            return bad("pre-norm Marian models (normalize_before) are not supported".into());
        }
        if !self.d_model.is_multiple_of(self.encoder_attention_heads)
            || !self.d_model.is_multiple_of(self.decoder_attention_heads)
        {
            return bad(format!(
                "d_model {} is not a multiple of the attention heads",
                self.d_model
            ));
        }
        if !self.d_model.is_multiple_of(2) {
            return bad("d_model must be even for sinusoidal positions".into());
        }
        if !self.share_encoder_decoder_embeddings
            && self.target_vocab_size() != self.vocab_size
            && self.tie_word_embeddings
        {
            return bad("separate vocabularies with tied output embeddings".into());
        }
        Ok(())
    }
}

/// HF's `MarianSinusoidalPositionalEmbedding`: sines in the first half of each row, cosines in
/// the second, computed in f64 (as numpy does there) and rounded to f32, so that positions match
/// to the last bit. The table is not stored in the weights files.
fn sinusoidal_positions(n_pos: usize, dim: usize, device: &Device) -> Result<Tensor, InferError> {
    let half = dim / 2;
    let mut table = vec![0f32; n_pos * dim];
    for pos in 0..n_pos {
        for j in 0..half {
            let angle = pos as f64 / 10000f64.powf((2 * j) as f64 / dim as f64);
            table[pos * dim + j] = angle.sin() as f32;
            table[pos * dim + half + j] = angle.cos() as f32;
        }
    }
    Ok(Tensor::from_vec(table, (n_pos, dim), device)?)
}

struct Attention {
    q_proj: Dense,
    k_proj: Dense,
    v_proj: Dense,
    out_proj: Dense,
    heads: usize,
    head_dim: usize,
    scaling: f64,
}

impl Attention {
    fn new(
        d_model: usize,
        heads: usize,
        vb: VarBuilder,
        precision: Precision,
    ) -> Result<Self, InferError> {
        let head_dim = d_model / heads;
        Ok(Attention {
            q_proj: Dense::load(d_model, d_model, vb.pp("q_proj"), precision)?,
            k_proj: Dense::load(d_model, d_model, vb.pp("k_proj"), precision)?,
            v_proj: Dense::load(d_model, d_model, vb.pp("v_proj"), precision)?,
            out_proj: Dense::load(d_model, d_model, vb.pp("out_proj"), precision)?,
            heads,
            head_dim,
            scaling: (head_dim as f64).powf(-0.5),
        })
    }

    /// (batch, len, d_model) -> (batch, heads, len, head_dim)
    fn split_heads(&self, xs: &Tensor) -> Result<Tensor, InferError> {
        let (b, len, _) = xs.dims3()?;
        Ok(xs
            .reshape((b, len, self.heads, self.head_dim))?
            .transpose(1, 2)?
            .contiguous()?)
    }

    fn keys_values(&self, xs: &Tensor) -> Result<(Tensor, Tensor), InferError> {
        Ok((
            self.split_heads(&self.k_proj.forward(xs)?)?,
            self.split_heads(&self.v_proj.forward(xs)?)?,
        ))
    }

    /// Attention of `xs` over `keys`/`values` (already split into heads), with an additive
    /// mask broadcast over (key groups, heads, query, key). `keys` may hold fewer groups than
    /// `xs` has rows: consecutive queries then share a group (the beams of one source share
    /// its cross-attention keys), each query computed as if alone, since a score is one dot
    /// product whichever rows stand beside it.
    fn attend(
        &self,
        xs: &Tensor,
        keys: &Tensor,
        values: &Tensor,
        mask: Option<&Tensor>,
    ) -> Result<Tensor, InferError> {
        let (b, len, d) = xs.dims3()?;
        let groups = keys.dim(0)?;
        let q = (self.q_proj.forward(xs)? * self.scaling)?;
        let q = self.split_heads(&q.reshape((groups, b * len / groups, d))?)?;
        let scores = q.matmul(&keys.t()?)?;
        let scores = match mask {
            Some(mask) => scores.broadcast_add(mask)?,
            None => scores,
        };
        let probs = candle_nn::ops::softmax_last_dim(&scores)?;
        let out = probs
            .matmul(values)?
            .transpose(1, 2)?
            .reshape((b, len, d))?;
        self.out_proj.forward(&out)
    }
}

impl Attention {
    /// Self-attention of one new token per row (`xs`: (rows, 1, d_model)) over the row's
    /// history, to which this token's keys and values are added first: it attends to itself
    /// and everything before it, so no causal mask is needed.
    fn attend_history(
        &self,
        xs: &Tensor,
        history: &mut LayerHistory,
        ancestry: &Ancestry,
    ) -> Result<Tensor, InferError> {
        let dims = xs.dims3()?;
        let flat = |t: Tensor| t.flatten_all()?.to_vec1::<f32>();
        history.push(
            flat(self.k_proj.forward(xs)?)?,
            flat(self.v_proj.forward(xs)?)?,
        );
        let queries = flat((self.q_proj.forward(xs)? * self.scaling)?)?;
        let out = history.attend(ancestry, &queries, self.heads);
        let out = Tensor::from_vec(out, dims, xs.device())?;
        self.out_proj.forward(&out)
    }
}

struct FeedForward {
    fc1: Dense,
    fc2: Dense,
    activation: Activation,
    norm: LayerNorm,
}

impl FeedForward {
    fn new(
        cfg: &MarianConfig,
        ffn_dim: usize,
        vb: &VarBuilder,
        precision: Precision,
    ) -> Result<Self, InferError> {
        Ok(FeedForward {
            fc1: Dense::load(cfg.d_model, ffn_dim, vb.pp("fc1"), precision)?,
            fc2: Dense::load(ffn_dim, cfg.d_model, vb.pp("fc2"), precision)?,
            activation: cfg.activation_function,
            norm: candle_nn::layer_norm(cfg.d_model, 1e-5, vb.pp("final_layer_norm"))?,
        })
    }

    /// Post-norm residual block, as Marian has it.
    fn forward(&self, xs: &Tensor) -> Result<Tensor, InferError> {
        let mut hidden = Vec::new();
        self.fc1.forward_into(xs, &mut hidden)?;
        let hidden = activate(self.activation, hidden, xs.device())?;
        let mut out = Vec::new();
        self.fc2.forward_rows(&hidden, &mut out);
        let h = Tensor::from_vec(out, xs.dims(), xs.device())?;
        Ok(self.norm.forward(&(h + xs)?)?)
    }
}

/// `activation` applied to `values`: swish and ReLU in place, in one vectorised loop (through
/// candle they cost two tensors and a pass of the C library's `expf` per value, a tenth of an
/// int8 beam search's time); any other activation through candle (all are elementwise).
fn activate(
    activation: Activation,
    mut values: Vec<f32>,
    device: &Device,
) -> Result<Vec<f32>, InferError> {
    match activation {
        // x · sigmoid(x), as candle and HF compute swish, with `math::exp` for `expf`.
        Activation::Swish | Activation::Silu => cpu::vectorized(|| {
            for v in &mut values {
                *v *= 1.0 / (1.0 + math::exp(-*v));
            }
        }),
        Activation::Relu => {
            for v in &mut values {
                *v = v.max(0.0);
            }
        }
        other => {
            let n = values.len();
            let tensor = Tensor::from_vec(values, n, device)?;
            return Ok(other.forward(&tensor)?.flatten_all()?.to_vec1::<f32>()?);
        }
    }
    Ok(values)
}

struct EncoderLayer {
    self_attn: Attention,
    self_attn_norm: LayerNorm,
    ffn: FeedForward,
}

struct DecoderLayer {
    self_attn: Attention,
    self_attn_norm: LayerNorm,
    cross_attn: Attention,
    cross_attn_norm: LayerNorm,
    ffn: FeedForward,
}

/// The encoder's output for a batch of sources, and its padding mask.
pub struct Encoded {
    /// (batch, source_len, d_model)
    pub hidden: Tensor,
    /// (batch, 1, 1, source_len): 0 for tokens, -inf for padding.
    pub mask: Tensor,
    pub lengths: Vec<usize>,
}

/// What the decoder carries from one step to the next, one row per hypothesis.
pub struct DecoderState {
    /// Per layer: self-attention keys and values so far, each step's where it was written.
    self_kv: Vec<LayerHistory>,
    /// Where each row's history lies in them.
    ancestry: Ancestry,
    /// Per layer: cross-attention keys and values of each source still decoded, computed
    /// once and shared by its rows: (sources, heads, source_len, head_dim).
    cross_kv: Vec<(Tensor, Tensor)>,
    /// (sources, 1, 1, source_len)
    cross_mask: Tensor,
    /// Beam width: a source's rows stand together, in source order.
    rows_per_source: usize,
    rows: usize,
    steps: usize,
}

impl DecoderState {
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Tokens decoded so far (the start token included).
    pub fn steps(&self) -> usize {
        self.steps
    }

    /// Keeps rows in the given order: new row `i` is old row `rows[i]`. Beam search uses it to
    /// follow the surviving hypotheses, and to drop the rows of finished sources. A source's
    /// rows must stay together, taken from that source's rows: the cross-attention keys and
    /// values are kept per source, and copied only when a source leaves.
    pub fn select_rows(&mut self, rows: &[u32]) -> Result<(), InferError> {
        let identity =
            rows.len() == self.rows && rows.iter().enumerate().all(|(i, &r)| r == i as u32);
        if identity {
            return Ok(());
        }
        let per_source = self.rows_per_source as u32;
        let sources: Vec<u32> = rows
            .chunks(self.rows_per_source)
            .map(|g| g[0] / per_source)
            .collect();
        let grouped = rows.len().is_multiple_of(self.rows_per_source)
            && rows
                .chunks(self.rows_per_source)
                .zip(&sources)
                .all(|(group, &source)| group.iter().all(|&r| r / per_source == source));
        if !grouped {
            return Err(InferError::Config(format!(
                "decoder rows {rows:?} mix sources ({} rows per source)",
                self.rows_per_source
            )));
        }
        self.ancestry.select_rows(rows);
        let device = self.cross_mask.device().clone();
        let same_sources = sources.len() == self.cross_mask.dim(0)?
            && sources.iter().enumerate().all(|(i, &s)| s == i as u32);
        if !same_sources {
            let index = Tensor::from_slice(&sources, sources.len(), &device)?;
            for kv in &mut self.cross_kv {
                *kv = (kv.0.index_select(&index, 0)?, kv.1.index_select(&index, 0)?);
            }
            self.cross_mask = self.cross_mask.index_select(&index, 0)?;
        }
        self.rows = rows.len();
        Ok(())
    }
}

/// How the model's matrix products are computed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Precision {
    /// f32 throughout, as HF transformers computes (what the parity tests check).
    #[default]
    F32,
    /// The linear layers and the output projection with int8 weights and activations,
    /// quantised per row (`kernels::int8`), as CTranslate2's `int8` computes: faster, and its
    /// output may differ from f32's where two continuations score alike.
    Int8,
}

pub struct MarianModel {
    config: MarianConfig,
    encoder_embed: Embedding,
    decoder_embed: Embedding,
    positions: Tensor,
    encoder_layers: Vec<EncoderLayer>,
    decoder_layers: Vec<DecoderLayer>,
    /// The (tied) output embedding, with `final_logits_bias`: the next-token logits.
    output: Dense,
    embed_scale: f64,
    device: Device,
}

impl MarianModel {
    /// Builds the model from `MarianMTModel` weights (names as `save_pretrained` writes them),
    /// its products at `precision`.
    pub fn load(
        config: &MarianConfig,
        vb: VarBuilder,
        precision: Precision,
    ) -> Result<Self, InferError> {
        config.check()?;
        let d = config.d_model;
        let model = vb.pp("model");
        let embedding = |name: &str, rows: usize| -> Result<Embedding, InferError> {
            Ok(Embedding::new(model.get((rows, d), name)?, d))
        };
        let shared_name = if model.contains_tensor("shared.weight") {
            "shared.weight"
        } else {
            "encoder.embed_tokens.weight"
        };
        let encoder_embed = if config.share_encoder_decoder_embeddings {
            embedding(shared_name, config.vocab_size)?
        } else {
            embedding("encoder.embed_tokens.weight", config.vocab_size)?
        };
        let decoder_embed = if config.share_encoder_decoder_embeddings {
            encoder_embed.clone()
        } else {
            embedding("decoder.embed_tokens.weight", config.target_vocab_size())?
        };
        let lm_head = if !config.tie_word_embeddings && vb.contains_tensor("lm_head.weight") {
            vb.get((config.target_vocab_size(), d), "lm_head.weight")?
        } else {
            decoder_embed.embeddings().clone()
        };
        let final_logits_bias = if vb.contains_tensor("final_logits_bias") {
            vb.get((1, config.target_vocab_size()), "final_logits_bias")?
        } else {
            Tensor::zeros((1, config.target_vocab_size()), DType::F32, vb.device())?
        };
        let attention = |vb: VarBuilder, heads| Attention::new(d, heads, vb, precision);
        let norm = |vb: &VarBuilder, name| candle_nn::layer_norm(d, 1e-5, vb.pp(name));
        let mut encoder_layers = Vec::with_capacity(config.encoder_layers);
        for i in 0..config.encoder_layers {
            let vb = model.pp(format!("encoder.layers.{i}"));
            encoder_layers.push(EncoderLayer {
                self_attn: attention(vb.pp("self_attn"), config.encoder_attention_heads)?,
                self_attn_norm: norm(&vb, "self_attn_layer_norm")?,
                ffn: FeedForward::new(config, config.encoder_ffn_dim, &vb, precision)?,
            });
        }
        let mut decoder_layers = Vec::with_capacity(config.decoder_layers);
        for i in 0..config.decoder_layers {
            let vb = model.pp(format!("decoder.layers.{i}"));
            decoder_layers.push(DecoderLayer {
                self_attn: attention(vb.pp("self_attn"), config.decoder_attention_heads)?,
                self_attn_norm: norm(&vb, "self_attn_layer_norm")?,
                cross_attn: attention(vb.pp("encoder_attn"), config.decoder_attention_heads)?,
                cross_attn_norm: norm(&vb, "encoder_attn_layer_norm")?,
                ffn: FeedForward::new(config, config.decoder_ffn_dim, &vb, precision)?,
            });
        }
        let device = vb.device().clone();
        // Made once the weights file is unmapped (the var builders are gone), so that the
        // mapped file and this copy never count together in peak memory.
        drop((vb, model));
        let output = Dense::new(&lm_head, Some(&final_logits_bias), precision)?;
        Ok(MarianModel {
            positions: sinusoidal_positions(config.max_position_embeddings, d, &device)?,
            config: config.clone(),
            encoder_embed,
            decoder_embed,
            encoder_layers,
            decoder_layers,
            output,
            embed_scale: if config.scale_embedding {
                (d as f64).sqrt()
            } else {
                1.0
            },
            device,
        })
    }

    pub fn config(&self) -> &MarianConfig {
        &self.config
    }

    /// The longest source (its `</s>` included) the position table covers.
    pub fn max_source_tokens(&self) -> usize {
        self.config.max_position_embeddings
    }

    fn embed(
        &self,
        embedding: &Embedding,
        ids: &Tensor,
        start: usize,
    ) -> Result<Tensor, InferError> {
        let (_, len) = ids.dims2()?;
        let tokens = (embedding.forward(ids)? * self.embed_scale)?;
        let positions = self.positions.i(start..start + len)?;
        Ok(tokens.broadcast_add(&positions)?)
    }

    /// Runs the encoder over a batch of token id sequences (each ending in `</s>`), padded on
    /// the right with the pad token and masked, as the HF tokenizer pads.
    pub fn encode(&self, sources: &[Vec<u32>]) -> Result<Encoded, InferError> {
        let lengths: Vec<usize> = sources.iter().map(Vec::len).collect();
        let max_len = lengths.iter().copied().max().unwrap_or(0);
        if max_len == 0 {
            return Err(InferError::EmptyPrompt);
        }
        if max_len > self.config.max_position_embeddings {
            return Err(InferError::ContextOverflow {
                tokens: max_len,
                context: self.config.max_position_embeddings,
            });
        }
        let b = sources.len();
        let mut ids = Vec::with_capacity(b * max_len);
        let mut mask = Vec::with_capacity(b * max_len);
        for source in sources {
            ids.extend_from_slice(source);
            ids.extend(std::iter::repeat_n(
                self.config.pad_token_id,
                max_len - source.len(),
            ));
            mask.extend(std::iter::repeat_n(0f32, source.len()));
            mask.extend(std::iter::repeat_n(
                f32::NEG_INFINITY,
                max_len - source.len(),
            ));
        }
        let ids = Tensor::from_vec(ids, (b, max_len), &self.device)?;
        let mask = Tensor::from_vec(mask, (b, 1, 1, max_len), &self.device)?;
        let mut xs = self.embed(&self.encoder_embed, &ids, 0)?;
        for layer in &self.encoder_layers {
            let (k, v) = layer.self_attn.keys_values(&xs)?;
            let h = layer.self_attn.attend(&xs, &k, &v, Some(&mask))?;
            xs = layer.self_attn_norm.forward(&(h + &xs)?)?;
            xs = layer.ffn.forward(&xs)?;
        }
        Ok(Encoded {
            hidden: xs,
            mask,
            lengths,
        })
    }

    /// A decoder state with `rows_per_source` rows for each source (beam width), its
    /// cross-attention keys and values computed here, once.
    pub fn start_decoder(
        &self,
        encoded: &Encoded,
        rows_per_source: usize,
    ) -> Result<DecoderState, InferError> {
        if rows_per_source == 0 {
            return Err(InferError::Config("no decoder rows per source".into()));
        }
        let cross_kv = self
            .decoder_layers
            .iter()
            .map(|layer| layer.cross_attn.keys_values(&encoded.hidden))
            .collect::<Result<_, _>>()?;
        Ok(DecoderState {
            self_kv: self
                .decoder_layers
                .iter()
                .map(|_| LayerHistory::default())
                .collect(),
            ancestry: Ancestry::default(),
            cross_kv,
            cross_mask: encoded.mask.clone(),
            rows_per_source,
            rows: encoded.lengths.len() * rows_per_source,
            steps: 0,
        })
    }

    /// Feeds one token per row and writes the next-token logits into `logits`, row after row
    /// (rows × target_vocab). The caller keeps the buffer from one step to the next: at beam
    /// 4 × 16 sentences the logits are 15 MB, and a fresh allocation each step faulted its
    /// pages in every time (a sixth of an int8 beam search's time, `perf`).
    pub fn decode_step(
        &self,
        state: &mut DecoderState,
        tokens: &[u32],
        logits: &mut Vec<f32>,
    ) -> Result<(), InferError> {
        if tokens.len() != state.rows {
            return Err(InferError::Config(format!(
                "{} tokens for {} decoder rows",
                tokens.len(),
                state.rows
            )));
        }
        if state.steps >= self.config.max_position_embeddings {
            return Err(InferError::ContextOverflow {
                tokens: state.steps + 1,
                context: self.config.max_position_embeddings,
            });
        }
        let ids = Tensor::from_slice(tokens, (tokens.len(), 1), &self.device)?;
        let mut xs = self.embed(&self.decoder_embed, &ids, state.steps)?;
        state.ancestry.push_step(state.rows);
        for (i, layer) in self.decoder_layers.iter().enumerate() {
            let h = layer
                .self_attn
                .attend_history(&xs, &mut state.self_kv[i], &state.ancestry)?;
            xs = layer.self_attn_norm.forward(&(h + &xs)?)?;
            let (ck, cv) = &state.cross_kv[i];
            let h = layer
                .cross_attn
                .attend(&xs, ck, cv, Some(&state.cross_mask))?;
            xs = layer.cross_attn_norm.forward(&(h + &xs)?)?;
            xs = layer.ffn.forward(&xs)?;
        }
        state.steps += 1;
        let hidden = xs.squeeze(1)?;
        self.output.forward_into(&hidden, logits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_put_sines_then_cosines() {
        let table = sinusoidal_positions(3, 4, &Device::Cpu).unwrap();
        let rows = table.to_vec2::<f32>().unwrap();
        assert_eq!(rows[0], [0.0, 0.0, 1.0, 1.0]);
        // Row 2, column 1: sin(2 / 10000^(2/4)) = sin(0.02).
        assert!((rows[2][1] - 0.02f64.sin() as f32).abs() < 1e-7);
        assert!((rows[2][3] - 0.02f64.cos() as f32).abs() < 1e-7);
        assert!((rows[2][0] - 2f64.sin() as f32).abs() < 1e-7);
    }
}
