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

use super::kquant::{self, KQuant, KQuantMatrix};
use super::{CausalLm, InferError};
use candle_core::quantized::gguf_file::Content;
use candle_core::quantized::{ggml_file::qtensor_from_ggml, GgmlDType, QMatMul, QTensor};
use candle_core::{DType, Device, Module, Tensor};
use candle_transformers::quantized_nn::RmsNorm;
use std::borrow::Cow;
use std::io::{Read, Seek, SeekFrom};
use std::sync::Arc;

/// Prompts are run in chunks of this many tokens so that the attention scores
/// (heads × chunk × context floats) stay small however long the prompt is.
const PROMPT_CHUNK: usize = 512;

/// Chunks shorter than this go through every product and the attention row by row (see
/// `kquant::TILED_FROM_ROWS`): their logits equal those of feeding the tokens one at a time.
const ROW_EXACT_BELOW: usize = kquant::TILED_FROM_ROWS;

#[derive(Debug, Clone, PartialEq)]
pub struct Qwen2Config {
    pub block_count: usize,
    pub embedding_length: usize,
    pub head_count: usize,
    pub head_count_kv: usize,
    pub context_length: usize,
    pub rms_norm_eps: f32,
    pub rope_freq_base: f32,
}

impl Qwen2Config {
    pub fn from_gguf(ct: &Content) -> Result<Self, InferError> {
        let arch = ct
            .metadata
            .get("general.architecture")
            .and_then(|v| v.to_string().ok())
            .ok_or_else(|| InferError::MissingMetadata("general.architecture".into()))?;
        if arch != "qwen2" {
            return Err(InferError::Architecture(arch.clone()));
        }
        let value = |key: &str| {
            let key = format!("qwen2.{key}");
            ct.metadata
                .get(&key)
                .ok_or(InferError::MissingMetadata(key))
        };
        let int = |key: &str| -> Result<usize, InferError> {
            value(key)?
                .to_u32()
                .map(|v| v as usize)
                .map_err(|_| InferError::MissingMetadata(format!("qwen2.{key}")))
        };
        let float = |key: &str| -> Result<f32, InferError> {
            value(key)?
                .to_f32()
                .map_err(|_| InferError::MissingMetadata(format!("qwen2.{key}")))
        };
        let config = Self {
            block_count: int("block_count")?,
            embedding_length: int("embedding_length")?,
            head_count: int("attention.head_count")?,
            head_count_kv: int("attention.head_count_kv")?,
            context_length: int("context_length")?,
            rms_norm_eps: float("attention.layer_norm_rms_epsilon")?,
            // Qwen2's default when a converter leaves it out.
            rope_freq_base: float("rope.freq_base").unwrap_or(10_000.0),
        };
        let heads_fit = config.head_count_kv > 0
            && config.head_count.is_multiple_of(config.head_count_kv)
            && config.head_count > 0
            && config.embedding_length.is_multiple_of(config.head_count)
            && config.head_dim().is_multiple_of(2);
        if !heads_fit {
            return Err(InferError::Config(format!(
                "{} heads, {} KV heads and width {} do not fit together",
                config.head_count, config.head_count_kv, config.embedding_length
            )));
        }
        Ok(config)
    }

    pub fn head_dim(&self) -> usize {
        self.embedding_length / self.head_count
    }
}

fn tensor_size(dtype: GgmlDType, elems: usize) -> usize {
    elems / dtype.block_size() * dtype.type_size()
}

/// Checks that every tensor lies inside the file, so that a truncated download is reported
/// before reading hundreds of megabytes.
fn check_extents<R: Seek>(ct: &Content, reader: &mut R) -> Result<(), InferError> {
    let file_len = reader
        .seek(SeekFrom::End(0))
        .map_err(candle_core::Error::from)?;
    let needed = ct
        .tensor_infos
        .values()
        .map(|info| {
            let size = tensor_size(info.ggml_dtype, info.shape.elem_count());
            ct.tensor_data_offset + info.offset + size as u64
        })
        .max()
        .unwrap_or(0);
    if needed > file_len {
        return Err(InferError::Truncated { needed, file_len });
    }
    Ok(())
}

/// The token embedding table in its quantised form; rows are dequantised when looked up.
struct TokenEmbedding {
    dtype: GgmlDType,
    width: usize,
    row_bytes: usize,
    data: Vec<u8>,
}

impl TokenEmbedding {
    fn read<R: Read + Seek>(ct: &Content, reader: &mut R, name: &str) -> Result<Self, InferError> {
        let info = ct
            .tensor_infos
            .get(name)
            .ok_or_else(|| InferError::MissingTensor(name.into()))?;
        let (vocab, width) = info.shape.dims2()?;
        let dtype = info.ggml_dtype;
        if width == 0 || !width.is_multiple_of(dtype.block_size()) {
            return Err(candle_core::Error::Msg(format!(
                "{name}: rows of {width} do not divide into {dtype:?} blocks"
            ))
            .into());
        }
        let row_bytes = tensor_size(dtype, width);
        let mut data = vec![0; vocab * row_bytes];
        reader
            .seek(SeekFrom::Start(ct.tensor_data_offset + info.offset))
            .and_then(|_| reader.read_exact(&mut data))
            .map_err(candle_core::Error::from)?;
        Ok(Self {
            dtype,
            width,
            row_bytes,
            data,
        })
    }

    fn vocab_size(&self) -> usize {
        self.data.len() / self.row_bytes
    }

    /// Embeddings of `tokens`, shape `(1, tokens.len(), width)`.
    fn forward(&self, tokens: &[u32], device: &Device) -> Result<Tensor, InferError> {
        let mut rows = Vec::with_capacity(tokens.len() * self.row_bytes);
        for &t in tokens {
            let start = t as usize * self.row_bytes;
            let row = self
                .data
                .get(start..start + self.row_bytes)
                .ok_or_else(|| {
                    candle_core::Error::Msg(format!(
                        "token id {t} outside a vocabulary of {}",
                        self.vocab_size()
                    ))
                })?;
            rows.extend_from_slice(row);
        }
        let q = qtensor_from_ggml(self.dtype, &rows, vec![tokens.len(), self.width], device)?;
        Ok(q.dequantize(device)?.unsqueeze(0)?)
    }
}

/// A quantised weight matrix. A decoding step (one input row) goes through our k-quant kernels
/// where the format has one (see `kquant` for why); prompts and other formats through candle.
struct QLinear {
    matmul: QMatMul,
    /// The weights, when `kquant` has a kernel for their format.
    kquant: Option<(KQuant, Arc<QTensor>)>,
}

impl QLinear {
    fn new(tensor: QTensor) -> candle_core::Result<Self> {
        let format = KQuant::from_ggml(tensor.dtype()).filter(|_| kquant::accelerated());
        let matmul = QMatMul::from_qtensor(tensor)?;
        let kquant = match (&matmul, format) {
            (QMatMul::QTensor(t), Some(format)) => Some((format, t.clone())),
            _ => None,
        };
        Ok(Self { matmul, kquant })
    }

    /// The weights as a k-quant matrix, when they are one and lie in CPU memory.
    fn matrix(&self) -> Option<KQuantMatrix<'_>> {
        let (format, tensor) = self.kquant.as_ref()?;
        let (rows, cols) = tensor.shape().dims2().ok()?;
        match tensor.data().ok()? {
            Cow::Borrowed(bytes) => KQuantMatrix::new(*format, rows, cols, bytes),
            Cow::Owned(_) => None,
        }
    }

    /// `x W^T` for each of `linears` (which share `x`). With k-quant kernels for every matrix,
    /// `x` is quantised once for all of them, and fewer rows than `ROW_EXACT_BELOW` run every
    /// product in one parallel region and give each row exactly its single-row result.
    fn forward_many(linears: &[&Self], x: &Tensor) -> candle_core::Result<Vec<Tensor>> {
        let matrices: Option<Vec<_>> = linears.iter().map(|l| l.matrix()).collect();
        let Some(matrices) = matrices else {
            return linears.iter().map(|l| l.matmul.forward(x)).collect();
        };
        let dims = x.dims().to_vec();
        let rows = dims[..dims.len() - 1].iter().product::<usize>();
        let input = x.flatten_all()?.to_vec1::<f32>()?;
        kquant::gemm_many(&matrices, &input, rows)
            .into_iter()
            .zip(&matrices)
            .map(|(out, m)| {
                let mut shape = dims.clone();
                *shape.last_mut().expect("a tensor with dimensions") = m.rows;
                Tensor::from_vec(out, shape, x.device())
            })
            .collect()
    }

    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        Ok(Self::forward_many(&[self], x)?.remove(0))
    }
}

/// RoPE tables `(positions, head_dim / 2)` for NEOX-style rotation (halves, not pairs).
fn rope_tables(
    head_dim: usize,
    freq_base: f32,
    positions: usize,
    device: &Device,
) -> Result<(Tensor, Tensor), InferError> {
    let inv_freq: Vec<f32> = (0..head_dim / 2)
        .map(|i| 1.0 / freq_base.powf((2 * i) as f32 / head_dim as f32))
        .collect();
    let inv_freq = Tensor::from_vec(inv_freq, (1, head_dim / 2), device)?;
    let angles = Tensor::arange(0, positions as u32, device)?
        .to_dtype(DType::F32)?
        .reshape((positions, 1))?
        .broadcast_mul(&inv_freq)?;
    Ok((angles.cos()?, angles.sin()?))
}

/// Keys and values of every cached position, one plain vector per KV head (`[position][dim]`):
/// a decoding step appends its position in place (no copy of the cache into a new tensor, no
/// fresh pages per token), and the decoding attention streams each head's keys and values in
/// order.
#[derive(Default)]
struct KvCache {
    keys: Vec<Vec<f32>>,
    values: Vec<Vec<f32>>,
}

impl KvCache {
    /// Appends `k` and `v`, shaped `(1, n_kv_head, positions, head_dim)`.
    fn append(&mut self, k: &Tensor, v: &Tensor) -> candle_core::Result<()> {
        let n_kv = k.dim(1)?;
        for (cache, new) in [(&mut self.keys, k), (&mut self.values, v)] {
            let head_major = new.flatten_all()?.to_vec1::<f32>()?;
            cache.resize_with(n_kv, Vec::new);
            for (head, new) in cache
                .iter_mut()
                .zip(head_major.chunks_exact(head_major.len() / n_kv))
            {
                head.extend_from_slice(new);
            }
        }
        Ok(())
    }

    /// The cache as `(1, n_kv_head, positions, head_dim)` tensors, for prompt chunks.
    fn tensors(&self, n_kv: usize, hd: usize, device: &Device) -> candle_core::Result<[Tensor; 2]> {
        let tensor = |heads: &[Vec<f32>]| {
            let positions = heads.first().map_or(0, |h| h.len() / hd);
            Tensor::from_vec(heads.concat(), (1, n_kv, positions, hd), device)
        };
        Ok([tensor(&self.keys)?, tensor(&self.values)?])
    }

    fn truncate(&mut self, position: usize, hd: usize) {
        for head in self.keys.iter_mut().chain(self.values.iter_mut()) {
            head.truncate(position * hd);
        }
    }

    fn clear(&mut self) {
        *self = Self::default();
    }
}

/// Attention of one query position over the first `positions` cached positions. `q` is
/// `[head][dim]`; the query heads sharing a KV head (head `h` reads KV head
/// `h / (heads / kv heads)`) are done together, so each cached key and value is read once per
/// KV head, and the KV heads run on rayon's threads.
fn decode_attention(
    q: &[f32],
    cache: &KvCache,
    positions: usize,
    (n_head, n_kv, hd): (usize, usize, usize),
) -> Vec<f32> {
    use rayon::prelude::*;
    let n_rep = n_head / n_kv;
    let scale = 1.0 / (hd as f32).sqrt();
    let mut out = vec![0f32; n_head * hd];
    out.par_chunks_mut(n_rep * hd)
        .enumerate()
        .for_each(|(kv, out)| {
            let queries = &q[kv * n_rep * hd..(kv + 1) * n_rep * hd];
            let keys = &cache.keys[kv][..positions * hd];
            let values = &cache.values[kv][..positions * hd];
            // scores[r][p] for query head r of this group.
            let mut scores = vec![0f32; n_rep * positions];
            for (p, key) in keys.chunks_exact(hd).enumerate() {
                for (r, query) in queries.chunks_exact(hd).enumerate() {
                    scores[r * positions + p] = dot(query, key) * scale;
                }
            }
            for row in scores.chunks_exact_mut(positions) {
                let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let mut total = 0f32;
                for s in row.iter_mut() {
                    *s = (*s - max).exp();
                    total += *s;
                }
                for s in row.iter_mut() {
                    *s /= total;
                }
            }
            for (p, value) in values.chunks_exact(hd).enumerate() {
                for (r, out) in out.chunks_exact_mut(hd).enumerate() {
                    let weight = scores[r * positions + p];
                    for (o, v) in out.iter_mut().zip(value) {
                        *o += weight * v;
                    }
                }
            }
        });
    out
}

/// Dot product in eight independent lanes, which the compiler keeps in one vector register.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    for (a, b) in a.chunks_exact(8).zip(b.chunks_exact(8)) {
        for i in 0..8 {
            lanes[i] += a[i] * b[i];
        }
    }
    let tail: f32 = a
        .chunks_exact(8)
        .remainder()
        .iter()
        .zip(b.chunks_exact(8).remainder())
        .map(|(a, b)| a * b)
        .sum();
    lanes.iter().sum::<f32>() + tail
}

struct Attention {
    wq: QLinear,
    wk: QLinear,
    wv: QLinear,
    bq: Tensor,
    bk: Tensor,
    bv: Tensor,
    wo: QLinear,
    n_head: usize,
    n_kv_head: usize,
    head_dim: usize,
    cache: KvCache,
}

impl Attention {
    /// Drops cached positions from `position` on.
    fn truncate_cache(&mut self, position: usize) {
        self.cache.truncate(position, self.head_dim);
    }

    fn forward(
        &mut self,
        x: &Tensor,
        cos: &Tensor,
        sin: &Tensor,
        mask: Option<&Tensor>,
    ) -> candle_core::Result<Tensor> {
        let (b, seq, _) = x.dims3()?;
        let (hd, n_kv) = (self.head_dim, self.n_kv_head);
        let heads = |projected: &Tensor, bias: &Tensor, n: usize| -> candle_core::Result<Tensor> {
            projected
                .broadcast_add(bias)?
                .reshape((b, seq, n, hd))?
                .transpose(1, 2)?
                .contiguous()
        };
        let [q, k, v]: [Tensor; 3] = QLinear::forward_many(&[&self.wq, &self.wk, &self.wv], x)?
            .try_into()
            .expect("three projections");
        let q = heads(&q, &self.bq, self.n_head)?;
        let k = heads(&k, &self.bk, n_kv)?;
        let v = heads(&v, &self.bv, n_kv)?;
        let q = candle_nn::rotary_emb::rope(&q, cos, sin)?;
        let k = candle_nn::rotary_emb::rope(&k, cos, sin)?;
        self.cache.append(&k, &v)?;
        if seq < ROW_EXACT_BELOW {
            // Row by row, each query over the positions up to its own, as decoding does, so
            // that a short chunk gives its tokens' one-at-a-time results bit for bit.
            let q = q.flatten_all()?.to_vec1::<f32>()?;
            let cached = self.cache.keys.first().map_or(0, |h| h.len() / hd);
            let mut y = Vec::with_capacity(seq * self.n_head * hd);
            for i in 0..seq {
                let row: Vec<f32> = (0..self.n_head)
                    .flat_map(|h| &q[(h * seq + i) * hd..(h * seq + i + 1) * hd])
                    .copied()
                    .collect();
                let dims = (self.n_head, n_kv, hd);
                y.extend(decode_attention(
                    &row,
                    &self.cache,
                    cached - seq + i + 1,
                    dims,
                ));
            }
            return self.wo.forward(&Tensor::from_vec(
                y,
                (b, seq, self.n_head * hd),
                x.device(),
            )?);
        }
        let [k, v] = self.cache.tensors(n_kv, hd, x.device())?;
        let kv_len = k.dim(2)?;

        // Grouped-query attention without copying K and V per query head: the query heads
        // sharing a KV head are stacked as extra rows (head h uses KV head h / n_rep).
        let n_rep = self.n_head / n_kv;
        let q = q.reshape((b, n_kv, n_rep * seq, hd))?;
        let scores = (q.matmul(&k.t()?)? * (1.0 / (hd as f64).sqrt()))?;
        let scores = match mask {
            Some(mask) => scores
                .reshape((b, n_kv, n_rep, seq, kv_len))?
                .broadcast_add(mask)?
                .reshape((b, n_kv, n_rep * seq, kv_len))?,
            None => scores,
        };
        let weights = candle_nn::ops::softmax_last_dim(&scores)?;
        let y = weights
            .matmul(&v)?
            .reshape((b, self.n_head, seq, hd))?
            .transpose(1, 2)?
            .reshape((b, seq, self.n_head * hd))?;
        self.wo.forward(&y)
    }
}

struct Layer {
    attn_norm: RmsNorm,
    attn: Attention,
    ffn_norm: RmsNorm,
    gate: QLinear,
    up: QLinear,
    down: QLinear,
}

impl Layer {
    fn forward(
        &mut self,
        x: &Tensor,
        cos: &Tensor,
        sin: &Tensor,
        mask: Option<&Tensor>,
    ) -> candle_core::Result<Tensor> {
        let h = self
            .attn
            .forward(&self.attn_norm.forward(x)?, cos, sin, mask)?;
        let x = (x + h)?;
        let h = self.ffn_norm.forward(&x)?;
        let [gate, up]: [Tensor; 2] = QLinear::forward_many(&[&self.gate, &self.up], &h)?
            .try_into()
            .expect("two projections");
        let h = (candle_nn::ops::silu(&gate)? * up)?;
        x + self.down.forward(&h)?
    }
}

/// The pool forward passes run in, sized as rayon's global one (`RAYON_NUM_THREADS`, else one
/// thread per core).
fn compute_pool() -> &'static rayon::ThreadPool {
    static POOL: std::sync::OnceLock<rayon::ThreadPool> = std::sync::OnceLock::new();
    POOL.get_or_init(|| {
        rayon::ThreadPoolBuilder::new()
            .thread_name(|i| format!("precis-compute-{i}"))
            .build()
            .expect("a thread pool")
    })
}

/// The Qwen2 decoder with its KV cache.
pub struct Qwen2 {
    embedding: TokenEmbedding,
    layers: Vec<Layer>,
    norm: RmsNorm,
    output: QLinear,
    cos: Tensor,
    sin: Tensor,
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
        let eps = f64::from(config.rms_norm_eps);
        let mut layers = Vec::with_capacity(config.block_count);
        for i in 0..config.block_count {
            let mut get = |suffix: &str| qtensor(&format!("blk.{i}.{suffix}"));
            layers.push(Layer {
                attn_norm: RmsNorm::from_qtensor(get("attn_norm.weight")?, eps)?,
                attn: Attention {
                    wq: QLinear::new(get("attn_q.weight")?)?,
                    wk: QLinear::new(get("attn_k.weight")?)?,
                    wv: QLinear::new(get("attn_v.weight")?)?,
                    bq: get("attn_q.bias")?.dequantize(device)?,
                    bk: get("attn_k.bias")?.dequantize(device)?,
                    bv: get("attn_v.bias")?.dequantize(device)?,
                    wo: QLinear::new(get("attn_output.weight")?)?,
                    n_head: config.head_count,
                    n_kv_head: config.head_count_kv,
                    head_dim: config.head_dim(),
                    cache: KvCache::default(),
                },
                ffn_norm: RmsNorm::from_qtensor(get("ffn_norm.weight")?, eps)?,
                gate: QLinear::new(get("ffn_gate.weight")?)?,
                up: QLinear::new(get("ffn_up.weight")?)?,
                down: QLinear::new(get("ffn_down.weight")?)?,
            });
        }
        let norm = RmsNorm::from_qtensor(qtensor("output_norm.weight")?, eps)?;
        // Models with tied embeddings have no `output.weight`.
        let output_name = if ct.tensor_infos.contains_key("output.weight") {
            "output.weight"
        } else {
            "token_embd.weight"
        };
        let output = QLinear::new(qtensor(output_name)?)?;
        let embedding = TokenEmbedding::read(ct, reader, "token_embd.weight")?;
        let (cos, sin) = rope_tables(
            config.head_dim(),
            config.rope_freq_base,
            config.context_length,
            device,
        )?;
        Ok(Self {
            embedding,
            layers,
            norm,
            output,
            cos,
            sin,
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
        let mut x = self.embedding.forward(tokens, &self.device)?;
        let mask = if seq >= ROW_EXACT_BELOW {
            let kv_len = pos + seq;
            let mask: Vec<f32> = (0..seq)
                .flat_map(|i| {
                    (0..kv_len).map(move |j| if j > pos + i { f32::NEG_INFINITY } else { 0.0 })
                })
                .collect();
            Some(Tensor::from_vec(mask, (seq, kv_len), &self.device)?)
        } else {
            None
        };
        let cos = self.cos.narrow(0, pos, seq)?;
        let sin = self.sin.narrow(0, pos, seq)?;
        for layer in &mut self.layers {
            x = layer.forward(&x, &cos, &sin, mask.as_ref())?;
        }
        let rows = if each { x } else { x.narrow(1, seq - 1, 1)? };
        let logits = self
            .output
            .forward(&self.norm.forward(&rows)?)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        let vocab = logits.len() / rows.dim(1)?;
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
