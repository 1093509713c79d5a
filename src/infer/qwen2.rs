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
use candle_core::{Device, Module, Tensor};
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

    /// Embeddings of `tokens`, `tokens.len() × width` values.
    fn rows(&self, tokens: &[u32]) -> Result<Vec<f32>, InferError> {
        Ok(self
            .forward(tokens, &Device::Cpu)?
            .flatten_all()?
            .to_vec1::<f32>()?)
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

    /// `x W^T` for each of `linears` (which share `x`, `rows` rows long), row-major. With
    /// k-quant kernels for every matrix, `x` is quantised once for all of them, and fewer rows
    /// than `ROW_EXACT_BELOW` run every product in one parallel region and give each row
    /// exactly its single-row result.
    fn rows_many(linears: &[&Self], x: &[f32], rows: usize) -> candle_core::Result<Vec<Vec<f32>>> {
        let matrices: Option<Vec<_>> = linears.iter().map(|l| l.matrix()).collect();
        if let Some(matrices) = matrices {
            return Ok(kquant::gemm_many(&matrices, x, rows));
        }
        let x = Tensor::from_slice(x, (rows, x.len() / rows), &Device::Cpu)?;
        linears
            .iter()
            .map(|l| l.matmul.forward(&x)?.flatten_all()?.to_vec1::<f32>())
            .collect()
    }

    fn rows(&self, x: &[f32], rows: usize) -> candle_core::Result<Vec<f32>> {
        Ok(Self::rows_many(&[self], x, rows)?.remove(0))
    }

    /// [`Self::rows_many`] on a tensor whose last dimension is the input width.
    fn forward_many(linears: &[&Self], x: &Tensor) -> candle_core::Result<Vec<Tensor>> {
        let dims = x.dims().to_vec();
        let rows = dims[..dims.len() - 1].iter().product::<usize>();
        let input = x.flatten_all()?.to_vec1::<f32>()?;
        Self::rows_many(linears, &input, rows)?
            .into_iter()
            .map(|out| {
                let mut shape = dims.clone();
                *shape.last_mut().expect("a tensor with dimensions") = out.len() / rows;
                Tensor::from_vec(out, shape, x.device())
            })
            .collect()
    }

    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        Ok(Self::forward_many(&[self], x)?.remove(0))
    }
}

/// Root-mean-square normalisation of each row, times a learned weight; candle's formula
/// (`x / sqrt(mean(x²) + eps) · w`), on plain rows.
struct RmsNorm {
    weight: Vec<f32>,
    eps: f32,
}

impl RmsNorm {
    fn new(weight: QTensor, eps: f32) -> candle_core::Result<Self> {
        let weight = weight.dequantize(&Device::Cpu)?.to_vec1::<f32>()?;
        Ok(Self { weight, eps })
    }

    fn rows(&self, x: &[f32]) -> Vec<f32> {
        let n = self.weight.len();
        let mut out = Vec::with_capacity(x.len());
        for row in x.chunks_exact(n) {
            let sum2: f32 = row.iter().map(|v| v * v).sum();
            let m = (sum2 / n as f32 + self.eps).sqrt();
            out.extend(row.iter().zip(&self.weight).map(|(v, w)| v / m * w));
        }
        out
    }

    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let rows = self.rows(&x.flatten_all()?.to_vec1::<f32>()?);
        Tensor::from_vec(rows, x.shape(), x.device())
    }
}

/// Rotary position embedding, NEOX style (dimension `i` turns with `i + head_dim / 2`), with
/// the angles of every position the context allows computed once.
struct Rope {
    /// `cos[position][i]`, `sin[position][i]` for `i < head_dim / 2`, flattened.
    cos: Vec<f32>,
    sin: Vec<f32>,
    half: usize,
}

impl Rope {
    fn new(head_dim: usize, freq_base: f32, positions: usize) -> Self {
        let half = head_dim / 2;
        let inv_freq: Vec<f32> = (0..half)
            .map(|i| 1.0 / freq_base.powf((2 * i) as f32 / head_dim as f32))
            .collect();
        let angles: Vec<f32> = (0..positions)
            .flat_map(|p| inv_freq.iter().map(move |f| p as f32 * f))
            .collect();
        Self {
            cos: angles.iter().map(|a| a.cos()).collect(),
            sin: angles.iter().map(|a| a.sin()).collect(),
            half,
        }
    }

    /// Rotates each head (`head_dim` values) of `heads` to `position`.
    fn rotate(&self, heads: &mut [f32], position: usize) {
        let range = position * self.half..(position + 1) * self.half;
        let (cos, sin) = (&self.cos[range.clone()], &self.sin[range]);
        for head in heads.chunks_exact_mut(2 * self.half) {
            let (a, b) = head.split_at_mut(self.half);
            for i in 0..self.half {
                (a[i], b[i]) = (a[i] * cos[i] - b[i] * sin[i], a[i] * sin[i] + b[i] * cos[i]);
            }
        }
    }

    /// The tables of positions `start..start + len`, `(len, head_dim / 2)`, for candle's
    /// `rope`.
    fn tables(&self, start: usize, len: usize) -> candle_core::Result<(Tensor, Tensor)> {
        let range = start * self.half..(start + len) * self.half;
        let table =
            |t: &[f32]| Tensor::from_slice(&t[range.clone()], (len, self.half), &Device::Cpu);
        Ok((table(&self.cos)?, table(&self.sin)?))
    }
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

    /// Appends one position: `k` and `v` hold `n_kv_head` heads of `head_dim` values.
    fn append_row(&mut self, k: &[f32], v: &[f32], n_kv: usize) {
        for (cache, new) in [(&mut self.keys, k), (&mut self.values, v)] {
            cache.resize_with(n_kv, Vec::new);
            for (head, new) in cache.iter_mut().zip(new.chunks_exact(new.len() / n_kv)) {
                head.extend_from_slice(new);
            }
        }
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
    bq: Vec<f32>,
    bk: Vec<f32>,
    bv: Vec<f32>,
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

    /// A chunk of `seq` rows (plain values, `seq × hidden`), each query over the positions up
    /// to its own, as decoding does: every step is per row, so a short chunk gives its tokens'
    /// one-at-a-time results bit for bit.
    fn forward_rows(
        &mut self,
        x: &[f32],
        seq: usize,
        rope: &Rope,
    ) -> candle_core::Result<Vec<f32>> {
        let (hd, n_kv) = (self.head_dim, self.n_kv_head);
        let [mut q, mut k, mut v]: [Vec<f32>; 3] =
            QLinear::rows_many(&[&self.wq, &self.wk, &self.wv], x, seq)?
                .try_into()
                .expect("three projections");
        let cached = self.cache.keys.first().map_or(0, |h| h.len() / hd);
        let (q_width, kv_width) = (self.n_head * hd, n_kv * hd);
        for i in 0..seq {
            let q = &mut q[i * q_width..(i + 1) * q_width];
            let k = &mut k[i * kv_width..(i + 1) * kv_width];
            let v = &mut v[i * kv_width..(i + 1) * kv_width];
            for (row, bias) in [
                (&mut *q, &self.bq),
                (&mut *k, &self.bk),
                (&mut *v, &self.bv),
            ] {
                row.iter_mut().zip(bias).for_each(|(x, b)| *x += b);
            }
            rope.rotate(q, cached + i);
            rope.rotate(k, cached + i);
            self.cache.append_row(k, v, n_kv);
        }
        let dims = (self.n_head, n_kv, hd);
        let y: Vec<f32> = q
            .chunks_exact(q_width)
            .enumerate()
            .flat_map(|(i, q)| decode_attention(q, &self.cache, cached + i + 1, dims))
            .collect();
        self.wo.rows(&y, seq)
    }

    /// A prompt chunk, with `mask` hiding later positions.
    fn forward(
        &mut self,
        x: &Tensor,
        (cos, sin): (&Tensor, &Tensor),
        mask: &Tensor,
    ) -> candle_core::Result<Tensor> {
        let (b, seq, _) = x.dims3()?;
        let (hd, n_kv) = (self.head_dim, self.n_kv_head);
        let heads = |projected: &Tensor, bias: &[f32], n: usize| -> candle_core::Result<Tensor> {
            projected
                .broadcast_add(&Tensor::from_slice(bias, bias.len(), x.device())?)?
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
        let [k, v] = self.cache.tensors(n_kv, hd, x.device())?;
        let kv_len = k.dim(2)?;

        // Grouped-query attention without copying K and V per query head: the query heads
        // sharing a KV head are stacked as extra rows (head h uses KV head h / n_rep).
        let n_rep = self.n_head / n_kv;
        let q = q.reshape((b, n_kv, n_rep * seq, hd))?;
        let scores = (q.matmul(&k.t()?)? * (1.0 / (hd as f64).sqrt()))?;
        let scores = scores
            .reshape((b, n_kv, n_rep, seq, kv_len))?
            .broadcast_add(mask)?
            .reshape((b, n_kv, n_rep * seq, kv_len))?;
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
    /// [`Attention::forward_rows`] and the feed-forward block on plain rows, updating `x`.
    fn forward_rows(&mut self, x: &mut [f32], seq: usize, rope: &Rope) -> candle_core::Result<()> {
        let h = self.attn.forward_rows(&self.attn_norm.rows(x), seq, rope)?;
        x.iter_mut().zip(h).for_each(|(x, h)| *x += h);
        let [gate, up]: [Vec<f32>; 2] =
            QLinear::rows_many(&[&self.gate, &self.up], &self.ffn_norm.rows(x), seq)?
                .try_into()
                .expect("two projections");
        let h: Vec<f32> = gate
            .iter()
            .zip(&up)
            .map(|(g, u)| g / (1.0 + (-g).exp()) * u)
            .collect();
        let h = self.down.rows(&h, seq)?;
        x.iter_mut().zip(h).for_each(|(x, h)| *x += h);
        Ok(())
    }

    fn forward(
        &mut self,
        x: &Tensor,
        rope: (&Tensor, &Tensor),
        mask: &Tensor,
    ) -> candle_core::Result<Tensor> {
        let h = self.attn.forward(&self.attn_norm.forward(x)?, rope, mask)?;
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
        let seq = tokens.len();
        let x = if seq < ROW_EXACT_BELOW {
            let mut x = self.embedding.rows(tokens)?;
            for layer in &mut self.layers {
                layer.forward_rows(&mut x, seq, &self.rope)?;
            }
            x
        } else {
            self.forward_prompt_chunk(tokens)?
        };
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

    /// The hidden states after the last layer for a prompt-sized chunk (`seq × hidden`), with
    /// whole-chunk products and attention.
    fn forward_prompt_chunk(&mut self, tokens: &[u32]) -> Result<Vec<f32>, InferError> {
        let (pos, seq) = (self.cached_ids.len(), tokens.len());
        let mut x = self.embedding.forward(tokens, &self.device)?;
        let kv_len = pos + seq;
        let mask: Vec<f32> = (0..seq)
            .flat_map(|i| {
                (0..kv_len).map(move |j| if j > pos + i { f32::NEG_INFINITY } else { 0.0 })
            })
            .collect();
        let mask = Tensor::from_vec(mask, (seq, kv_len), &self.device)?;
        let (cos, sin) = self.rope.tables(pos, seq)?;
        for layer in &mut self.layers {
            x = layer.forward(&x, (&cos, &sin), &mask)?;
        }
        Ok(x.flatten_all()?.to_vec1::<f32>()?)
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
