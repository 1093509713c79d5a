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
use super::team::Team;
use super::{CausalLm, InferError};
use candle_core::quantized::gguf_file::Content;
use candle_core::quantized::{ggml_file::qtensor_from_ggml, GgmlDType, QMatMul, QTensor};
use candle_core::{Device, Module, Tensor};
use half::{f16, slice::HalfFloatSliceExt};
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
        let device = &Device::Cpu;
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
        Ok(q.dequantize(device)?.flatten_all()?.to_vec1::<f32>()?)
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

/// Positions per block of the key cache.
const KEY_BLOCK: usize = 16;

/// Keys and values of every cached position, one plain vector per KV head: a decoding step
/// appends its position in place (no copy of the cache into a new tensor, no fresh pages per
/// token). Stored as f16, as llama.cpp's cache is by default: a decoding step reads the whole
/// cache (45 MB per token at 800 positions in f32 for the 1.5B model), so half the bytes is a
/// faster step. Values are position-major (`[position][dim]`); keys are in blocks of
/// `KEY_BLOCK` positions, dimension-major within a block (`[block][dim][position]`), so that a
/// query's scores for a block are multiply-adds of whole rows, with no horizontal sum per
/// position (which took half the decoding attention's time).
#[derive(Default)]
struct KvCache {
    keys: Vec<Vec<f16>>,
    values: Vec<Vec<f16>>,
}

impl KvCache {
    /// Positions cached, for heads of `hd` values.
    fn positions(&self, hd: usize) -> usize {
        self.values.first().map_or(0, |head| head.len() / hd)
    }

    /// Appends `k` and `v`, shaped `(1, n_kv_head, positions, head_dim)`.
    fn append(&mut self, k: &Tensor, v: &Tensor) -> candle_core::Result<()> {
        let (n_kv, positions, hd) = (k.dim(1)?, k.dim(2)?, k.dim(3)?);
        let [k, v] = [k, v].map(|t| t.flatten_all()?.to_vec1::<f32>());
        let (k, v) = (k?, v?);
        let row = |heads: &[f32], p: usize| -> Vec<f32> {
            (0..n_kv)
                .flat_map(|h| &heads[(h * positions + p) * hd..][..hd])
                .copied()
                .collect()
        };
        for p in 0..positions {
            self.append_row(&row(&k, p), &row(&v, p), n_kv);
        }
        Ok(())
    }

    /// Appends one position: `k` and `v` hold `n_kv_head` heads of `head_dim` values.
    fn append_row(&mut self, k: &[f32], v: &[f32], n_kv: usize) {
        let hd = k.len() / n_kv;
        let position = self.positions(hd);
        let (block, lane) = (position / KEY_BLOCK, position % KEY_BLOCK);
        self.keys.resize_with(n_kv, Vec::new);
        self.values.resize_with(n_kv, Vec::new);
        for (head, k) in self.keys.iter_mut().zip(k.chunks_exact(hd)) {
            if lane == 0 {
                head.resize((block + 1) * hd * KEY_BLOCK, f16::ZERO);
            }
            let block = &mut head[block * hd * KEY_BLOCK..][..hd * KEY_BLOCK];
            for (d, &k) in k.iter().enumerate() {
                block[d * KEY_BLOCK + lane] = f16::from_f32(k);
            }
        }
        for (head, v) in self.values.iter_mut().zip(v.chunks_exact(hd)) {
            head.extend(v.iter().map(|&v| f16::from_f32(v)));
        }
    }

    /// The cache as `(1, n_kv_head, positions, head_dim)` tensors, for prompt chunks.
    fn tensors(&self, n_kv: usize, hd: usize, device: &Device) -> candle_core::Result<[Tensor; 2]> {
        let positions = self.positions(hd);
        let keys: Vec<f32> = self
            .keys
            .iter()
            .flat_map(|head| {
                (0..positions).flat_map(move |p| {
                    let block = &head[p / KEY_BLOCK * hd * KEY_BLOCK..][..hd * KEY_BLOCK];
                    (0..hd).map(move |d| block[d * KEY_BLOCK + p % KEY_BLOCK].to_f32())
                })
            })
            .collect();
        let values: Vec<f32> = self.values.iter().flat_map(|h| h.to_f32_vec()).collect();
        let shape = (1, n_kv, positions, hd);
        Ok([
            Tensor::from_vec(keys, shape, device)?,
            Tensor::from_vec(values, shape, device)?,
        ])
    }

    /// Keeps the first `position` positions; later appends overwrite the rest of the last
    /// key block.
    fn truncate(&mut self, position: usize, hd: usize) {
        for head in &mut self.keys {
            head.truncate(position.div_ceil(KEY_BLOCK) * hd * KEY_BLOCK);
        }
        for head in &mut self.values {
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
/// KV head, and the KV heads run on the team's threads.
fn decode_attention(
    q: &[f32],
    cache: &KvCache,
    positions: usize,
    (n_head, n_kv, hd): (usize, usize, usize),
) -> Vec<f32> {
    let n_rep = n_head / n_kv;
    let scale = 1.0 / (hd as f32).sqrt();
    let mut out = vec![0f32; n_head * hd];
    let mut groups: Vec<(usize, &mut [f32])> = out.chunks_mut(n_rep * hd).enumerate().collect();
    let block_scores = block_scores_kernel();
    Team::get().for_each_mut(&mut groups, |(kv, out)| {
        let kv = *kv;
        let queries = &q[kv * n_rep * hd..(kv + 1) * n_rep * hd];
        let keys = &cache.keys[kv][..positions.div_ceil(KEY_BLOCK) * hd * KEY_BLOCK];
        let values = &cache.values[kv][..positions * hd];
        // scores[r][p] for query head r of this group, whole blocks (the lanes past
        // `positions` are never read).
        let width = positions.next_multiple_of(KEY_BLOCK);
        let mut scores = vec![0f32; n_rep * width];
        for (b, block) in keys.chunks_exact(hd * KEY_BLOCK).enumerate() {
            for (pass, heads) in queries.chunks(HEADS_PER_PASS * hd).enumerate() {
                let out = &mut scores[pass * HEADS_PER_PASS * width + b * KEY_BLOCK..];
                block_scores(heads, block, scale, out, width);
            }
        }
        for row in scores.chunks_exact_mut(width) {
            let row = &mut row[..positions];
            let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            for s in row.iter_mut() {
                *s = exp(*s - max);
            }
            let total: f32 = row.iter().sum();
            for s in row.iter_mut() {
                *s /= total;
            }
        }
        let add_weighted = match hd {
            _ if hd.is_multiple_of(128) => add_weighted::<128>,
            _ if hd.is_multiple_of(64) => add_weighted::<64>,
            _ if hd.is_multiple_of(16) => add_weighted::<16>,
            _ => add_weighted::<1>,
        };
        // Values are converted from f16 a tile of positions at a time, into a buffer that
        // stays in the L1 cache.
        let mut tile = vec![0f32; ATTENTION_TILE * hd];
        for (t, values) in values.chunks(ATTENTION_TILE * hd).enumerate() {
            let tile = &mut tile[..values.len()];
            values.convert_to_f32_slice(tile);
            for (r, out) in out.chunks_exact_mut(hd).enumerate() {
                let weights = &scores[r * width + t * ATTENTION_TILE..][..values.len() / hd];
                add_weighted(weights, tile, out);
            }
        }
    });
    out
}

/// Query heads scored against a key block at a time: the block's rows are converted from
/// f16 once for all of them.
const HEADS_PER_PASS: usize = 8;

/// `out[r · stride + i] = scale · (query r · key i)` for the query heads in `queries` (at most
/// `HEADS_PER_PASS`, `[head][dim]`) and the `KEY_BLOCK` keys of `block` (`[dim][position]`).
type BlockScores = fn(&[f32], &[f16], f32, &mut [f32], usize);

/// The block scores for this CPU: AVX-512 where it has it.
fn block_scores_kernel() -> BlockScores {
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx512f") {
        return |queries, block, scale, out, stride| {
            let hd = block.len() / KEY_BLOCK;
            macro_rules! heads {
                ($($r:literal)*) => {
                    match queries.len() / hd {
                        // SAFETY: the CPU has AVX-512 F.
                        $($r => unsafe {
                            block_scores_avx512::<$r>(queries, block, scale, out, stride)
                        },)*
                        n => unreachable!("{n} heads in one pass"),
                    }
                };
            }
            heads!(1 2 3 4 5 6 7 8)
        };
    }
    block_scores
}

/// Each key dimension is a row of `KEY_BLOCK` values, multiplied by one query value and added
/// to the head's scores: fixed-size arrays the compiler keeps in vector registers.
fn block_scores(queries: &[f32], block: &[f16], scale: f32, out: &mut [f32], stride: usize) {
    let hd = block.len() / KEY_BLOCK;
    let mut acc = [[0f32; KEY_BLOCK]; HEADS_PER_PASS];
    let mut keys = [0f32; KEY_BLOCK];
    for (d, row) in block.chunks_exact(KEY_BLOCK).enumerate() {
        row.convert_to_f32_slice(&mut keys);
        for (acc, query) in acc.iter_mut().zip(queries.chunks_exact(hd)) {
            for (a, k) in acc.iter_mut().zip(keys) {
                *a = query[d].mul_add(k, *a);
            }
        }
    }
    for (r, acc) in acc.iter().take(queries.len() / hd).enumerate() {
        for (s, a) in out[r * stride..][..KEY_BLOCK].iter_mut().zip(acc) {
            *s = a * scale;
        }
    }
}

/// [`block_scores`] with AVX-512 for `R` heads: a row of keys converted from f16 in one
/// instruction, then one multiply-add per head, in two chains per head (even and odd
/// dimensions) so that enough are in flight.
///
/// # Safety
/// The CPU has AVX-512 F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn block_scores_avx512<const R: usize>(
    queries: &[f32],
    block: &[f16],
    scale: f32,
    out: &mut [f32],
    stride: usize,
) {
    use std::arch::x86_64::*;
    let hd = block.len() / KEY_BLOCK;
    assert!(queries.len() >= R * hd && out.len() >= (R - 1) * stride + KEY_BLOCK);
    let (q, k) = (queries.as_ptr(), block.as_ptr().cast::<__m256i>());
    let row = |d: usize| _mm512_cvtph_ps(_mm256_loadu_si256(k.add(d)));
    let mut even = [_mm512_setzero_ps(); R];
    let mut odd = [_mm512_setzero_ps(); R];
    let mut d = 0;
    while d + 2 <= hd {
        let (k0, k1) = (row(d), row(d + 1));
        for r in 0..R {
            even[r] = _mm512_fmadd_ps(_mm512_set1_ps(*q.add(r * hd + d)), k0, even[r]);
            odd[r] = _mm512_fmadd_ps(_mm512_set1_ps(*q.add(r * hd + d + 1)), k1, odd[r]);
        }
        d += 2;
    }
    if d < hd {
        let k0 = row(d);
        for (r, even) in even.iter_mut().enumerate() {
            *even = _mm512_fmadd_ps(_mm512_set1_ps(*q.add(r * hd + d)), k0, *even);
        }
    }
    for (r, (even, odd)) in even.into_iter().zip(odd).enumerate() {
        let sum = _mm512_mul_ps(_mm512_add_ps(even, odd), _mm512_set1_ps(scale));
        _mm512_storeu_ps(out.as_mut_ptr().add(r * stride), sum);
    }
}

/// `e^x` to within a few ulp (Cephes' `expf`: `x = n ln 2 + r`, a degree-6 polynomial in `r`,
/// times `2^n`), in branch-free arithmetic so that a loop over it vectorises, where the C
/// library's `expf` is one call per value (a fifth of the decoding attention's time, and most
/// of the time between products: SiLU takes 250,000 per token on the 1.5B model).
fn exp(x: f32) -> f32 {
    const LN2_HIGH: f32 = 0.693_359_4;
    const LN2_LOW: f32 = -2.121_944_4e-4;
    let x = x.clamp(-87.3, 88.7);
    let n = (x * std::f32::consts::LOG2_E + 0.5).floor();
    let r = n.mul_add(-LN2_LOW, n.mul_add(-LN2_HIGH, x));
    let p = 1.987_569_1e-4f32
        .mul_add(r, 1.398_199_9e-3)
        .mul_add(r, 8.333_452e-3)
        .mul_add(r, 4.166_579_6e-2)
        .mul_add(r, 0.166_666_65)
        .mul_add(r, 0.5);
    let p = (p * r).mul_add(r, r) + 1.0;
    p * f32::from_bits(((n as i32 + 127) as u32) << 23)
}

/// Positions whose keys or values `decode_attention` converts to f32 at a time (16 KiB at
/// a head width of 128).
const ATTENTION_TILE: usize = 32;

/// `out += Σ_i weights[i] · rows[i]` for the rows of `rows` (each `out.len()` wide; `weights`
/// may be longer), `W` output values at a time, which stay in registers while every row is
/// added (`W` divides the width).
fn add_weighted<const W: usize>(weights: &[f32], rows: &[f32], out: &mut [f32]) {
    let width = out.len();
    for (c, out) in out.chunks_exact_mut(W).enumerate() {
        let mut acc = [0f32; W];
        acc.copy_from_slice(out);
        for (w, row) in weights.iter().zip(rows.chunks_exact(width)) {
            for (a, v) in acc.iter_mut().zip(&row[c * W..(c + 1) * W]) {
                *a = w.mul_add(*v, *a);
            }
        }
        out.copy_from_slice(&acc);
    }
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
        let cached = self.cache.positions(hd);
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

    /// A prompt chunk of `seq` rows, with whole-chunk products and attention.
    fn forward(
        &mut self,
        x: &[f32],
        seq: usize,
        chunk: &PromptChunk,
    ) -> candle_core::Result<Vec<f32>> {
        let (b, (cos, sin), mask) = (1, (&chunk.cos, &chunk.sin), &chunk.mask);
        let (hd, n_kv) = (self.head_dim, self.n_kv_head);
        let device = &Device::Cpu;
        let heads = |projected: Vec<f32>, bias: &[f32], n: usize| -> candle_core::Result<Tensor> {
            Tensor::from_vec(projected, (b, seq, n * hd), device)?
                .broadcast_add(&Tensor::from_slice(bias, bias.len(), device)?)?
                .reshape((b, seq, n, hd))?
                .transpose(1, 2)?
                .contiguous()
        };
        let [q, k, v]: [Vec<f32>; 3] = QLinear::rows_many(&[&self.wq, &self.wk, &self.wv], x, seq)?
            .try_into()
            .expect("three projections");
        let q = heads(q, &self.bq, self.n_head)?;
        let k = heads(k, &self.bk, n_kv)?;
        let v = heads(v, &self.bv, n_kv)?;
        let q = candle_nn::rotary_emb::rope(&q, cos, sin)?;
        let k = candle_nn::rotary_emb::rope(&k, cos, sin)?;
        self.cache.append(&k, &v)?;
        let [k, v] = self.cache.tensors(n_kv, hd, device)?;
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
            .reshape((b * seq, self.n_head * hd))?
            .flatten_all()?
            .to_vec1::<f32>()?;
        self.wo.rows(&y, seq)
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

/// What a prompt-sized chunk's attention needs beside its rows: the RoPE tables of its
/// positions and the mask that hides later positions.
struct PromptChunk {
    cos: Tensor,
    sin: Tensor,
    mask: Tensor,
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
        let h: Vec<f32> = gate
            .iter()
            .zip(&up)
            .map(|(g, u)| g / (1.0 + exp(-g)) * u)
            .collect();
        let h = self.down.rows(&h, seq)?;
        x.iter_mut().zip(h).for_each(|(x, h)| *x += h);
        Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic values in [-1, 1) (a linear congruential sequence).
    fn values(n: usize, seed: u32) -> Vec<f32> {
        let mut state = seed;
        (0..n)
            .map(|_| {
                state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (state >> 8) as f32 / (1 << 23) as f32 - 1.0
            })
            .collect()
    }

    #[test]
    fn block_scores_agree_with_direct_dot_products() {
        // Head counts for every kernel instance, odd and even head widths.
        for hd in [40, 64, 128, 7] {
            for heads in 1..=HEADS_PER_PASS {
                let queries = values(heads * hd, 5);
                let block: Vec<f16> = values(hd * KEY_BLOCK, 6)
                    .into_iter()
                    .map(f16::from_f32)
                    .collect();
                let stride = KEY_BLOCK + 3;
                for (name, kernel) in [
                    ("portable", block_scores as BlockScores),
                    ("this CPU's", block_scores_kernel()),
                ] {
                    let mut out = vec![f32::NAN; heads * stride];
                    kernel(&queries, &block, 0.5, &mut out, stride);
                    for r in 0..heads {
                        for i in 0..KEY_BLOCK {
                            let want: f64 = (0..hd)
                                .map(|d| {
                                    f64::from(queries[r * hd + d])
                                        * f64::from(block[d * KEY_BLOCK + i].to_f32())
                                })
                                .sum::<f64>()
                                * 0.5;
                            let got = f64::from(out[r * stride + i]);
                            assert!(
                                (got - want).abs() < 1e-5,
                                "{name}: hd {hd}, {heads} heads, head {r}, key {i}: {got} vs {want}"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn the_key_blocks_give_back_every_position_after_truncation() {
        let (n_kv, hd) = (2, 8);
        let row = n_kv * hd;
        let keys = values(40 * row, 7);
        let vals = values(40 * row, 8);
        let mut cache = KvCache::default();
        for p in 0..37 {
            cache.append_row(&keys[p * row..][..row], &vals[p * row..][..row], n_kv);
        }
        // Rewind into the middle of a block, then overwrite its tail with other positions.
        cache.truncate(20, hd);
        for p in 20..33 {
            let p_src = p + 7;
            cache.append_row(
                &keys[p_src * row..][..row],
                &vals[p_src * row..][..row],
                n_kv,
            );
        }
        let [k, v] = cache.tensors(n_kv, hd, &Device::Cpu).unwrap();
        let (k, v) = (
            k.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            v.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
        );
        assert_eq!(k.len(), n_kv * 33 * hd);
        let rounded = |x: f32| f16::from_f32(x).to_f32();
        for h in 0..n_kv {
            for p in 0..33 {
                let src = if p < 20 { p } else { p + 7 };
                for d in 0..hd {
                    let at = (h * 33 + p) * hd + d;
                    assert_eq!(
                        k[at],
                        rounded(keys[src * row + h * hd + d]),
                        "key {h} {p} {d}"
                    );
                    assert_eq!(
                        v[at],
                        rounded(vals[src * row + h * hd + d]),
                        "value {h} {p} {d}"
                    );
                }
            }
        }
    }

    #[test]
    fn exp_is_within_a_few_ulp() {
        for i in 0..=200_000 {
            let x = -87.0 + 87.0 * i as f32 / 200_000.0;
            let want = f64::from(x).exp();
            let got = f64::from(exp(x));
            assert!(
                ((got - want) / want).abs() < 4.0 * f64::from(f32::EPSILON),
                "exp({x}) = {got}, want {want}"
            );
        }
        assert_eq!(exp(0.0), 1.0);
    }

    #[test]
    fn decode_attention_matches_a_direct_computation() {
        // Head widths that take each accumulation path, enough positions for several tiles
        // and key blocks and a partial one, and groups of query heads wider than one pass.
        for (hd, positions, n_head) in [(128, 75, 12), (64, 33, 20), (40, 7, 14)] {
            let n_kv = 2;
            let mut cache = KvCache::default();
            let keys = values(positions * n_kv * hd, 1);
            let vals = values(positions * n_kv * hd, 2);
            let row = n_kv * hd;
            for p in 0..positions {
                cache.append_row(&keys[p * row..][..row], &vals[p * row..][..row], n_kv);
            }
            let q = values(n_head * hd, 3);
            let got = decode_attention(&q, &cache, positions, (n_head, n_kv, hd));
            // The cache holds f16: the reference uses the same rounded keys and values.
            let at = |v: &[f32], p: usize, kv: usize, d: usize| {
                f64::from(f16::from_f32(v[p * row + kv * hd + d]).to_f32())
            };
            for h in 0..n_head {
                let kv = h / (n_head / n_kv);
                let scores: Vec<f64> = (0..positions)
                    .map(|p| {
                        let s: f64 = (0..hd)
                            .map(|d| f64::from(q[h * hd + d]) * at(&keys, p, kv, d))
                            .sum();
                        s / (hd as f64).sqrt()
                    })
                    .collect();
                let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let weights: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
                let total: f64 = weights.iter().sum();
                for d in 0..hd {
                    let want: f64 = (0..positions)
                        .map(|p| weights[p] / total * at(&vals, p, kv, d))
                        .sum();
                    let got = f64::from(got[h * hd + d]);
                    assert!(
                        (got - want).abs() < 1e-5,
                        "hd {hd} head {h} dim {d}: {got} vs {want}"
                    );
                }
            }
        }
    }
}
