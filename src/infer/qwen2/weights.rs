//! The model's weights outside attention: token embeddings, quantised linear layers, RMS
//! normalisation and the rotary position tables.

use super::config::tensor_size;
use crate::infer::kernels::kquant::{self, KQuant, KQuantMatrix, RowMode};
use crate::infer::{cpu, InferError};
use candle_core::quantized::gguf_file::Content;
use candle_core::quantized::{ggml_file::qtensor_from_ggml, GgmlDType, QMatMul, QTensor};
use candle_core::{Device, Module, Tensor};
use std::borrow::Cow;
use std::io::{Read, Seek, SeekFrom};
use std::sync::Arc;

/// The token embedding table in its quantised form; rows are dequantised when looked up.
pub(super) struct TokenEmbedding {
    dtype: GgmlDType,
    width: usize,
    row_bytes: usize,
    data: Vec<u8>,
}

impl TokenEmbedding {
    pub(super) fn read<R: Read + Seek>(
        ct: &Content,
        reader: &mut R,
        name: &str,
    ) -> Result<Self, InferError> {
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
    pub(super) fn rows(&self, tokens: &[u32]) -> Result<Vec<f32>, InferError> {
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
pub(super) struct QLinear {
    matmul: QMatMul,
    /// The weights, when `kquant` has a kernel for their format.
    kquant: Option<(KQuant, Arc<QTensor>)>,
}

impl QLinear {
    pub(super) fn new(tensor: QTensor) -> candle_core::Result<Self> {
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
    /// k-quant kernels for every matrix, `x` is quantised once for all of them; in
    /// [`RowMode::Exact`] (and below `TILED_FROM_ROWS` rows) every product runs in one parallel
    /// region and gives each row exactly its single-row result. candle's products (the other
    /// formats) are row by row at any size.
    pub(super) fn rows_many(
        linears: &[&Self],
        x: &[f32],
        rows: usize,
        mode: RowMode,
    ) -> candle_core::Result<Vec<Vec<f32>>> {
        let matrices: Option<Vec<_>> = linears.iter().map(|l| l.matrix()).collect();
        if let Some(matrices) = matrices {
            return Ok(kquant::gemm_many(&matrices, x, rows, mode));
        }
        let x = Tensor::from_slice(x, (rows, x.len() / rows), &Device::Cpu)?;
        linears
            .iter()
            .map(|l| l.matmul.forward(&x)?.flatten_all()?.to_vec1::<f32>())
            .collect()
    }

    pub(super) fn rows(
        &self,
        x: &[f32],
        rows: usize,
        mode: RowMode,
    ) -> candle_core::Result<Vec<f32>> {
        Ok(Self::rows_many(&[self], x, rows, mode)?.remove(0))
    }
}

/// Root-mean-square normalisation of each row, times a learned weight; candle's formula
/// (`x / sqrt(mean(x²) + eps) · w`), on plain rows.
pub(super) struct RmsNorm {
    weight: Vec<f32>,
    eps: f32,
}

impl RmsNorm {
    pub(super) fn new(weight: QTensor, eps: f32) -> candle_core::Result<Self> {
        let weight = weight.dequantize(&Device::Cpu)?.to_vec1::<f32>()?;
        Ok(Self { weight, eps })
    }

    pub(super) fn rows(&self, x: &[f32]) -> Vec<f32> {
        let n = self.weight.len();
        let mut out = vec![0f32; x.len()];
        cpu::vectorized(|| {
            for (row, out) in x.chunks_exact(n).zip(out.chunks_exact_mut(n)) {
                let sum2: f32 = row.iter().map(|v| v * v).sum();
                let m = (sum2 / n as f32 + self.eps).sqrt();
                for ((o, v), w) in out.iter_mut().zip(row).zip(&self.weight) {
                    *o = v / m * w;
                }
            }
        });
        out
    }
}

/// Rotary position embedding, NEOX style (dimension `i` turns with `i + head_dim / 2`), with
/// the angles of every position the context allows computed once.
pub(super) struct Rope {
    /// `cos[position][i]`, `sin[position][i]` for `i < head_dim / 2`, flattened.
    cos: Vec<f32>,
    sin: Vec<f32>,
    half: usize,
}

impl Rope {
    pub(super) fn new(head_dim: usize, freq_base: f32, positions: usize) -> Self {
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
    pub(super) fn rotate(&self, heads: &mut [f32], position: usize) {
        let range = position * self.half..(position + 1) * self.half;
        let (cos, sin) = (&self.cos[range.clone()], &self.sin[range]);
        cpu::vectorized(|| {
            for head in heads.chunks_exact_mut(2 * self.half) {
                let (a, b) = head.split_at_mut(self.half);
                for i in 0..self.half {
                    (a[i], b[i]) = (a[i] * cos[i] - b[i] * sin[i], a[i] * sin[i] + b[i] * cos[i]);
                }
            }
        });
    }

    /// The tables of positions `start..start + len`, `(len, head_dim / 2)`, for candle's
    /// `rope`.
    pub(super) fn tables(&self, start: usize, len: usize) -> candle_core::Result<(Tensor, Tensor)> {
        let range = start * self.half..(start + len) * self.half;
        let table =
            |t: &[f32]| Tensor::from_slice(&t[range.clone()], (len, self.half), &Device::Cpu);
        Ok((table(&self.cos)?, table(&self.sin)?))
    }
}
