//! The model's matrix products at the precision it was loaded at: f32 through candle, as HF
//! transformers computes them, or int8 weights and activations (`kernels::int8`), as
//! CTranslate2's `int8` does.

use candle_core::{Module, Tensor};
use candle_nn::{Linear, VarBuilder};

use super::Precision;
use crate::infer::kernels::int8::Int8Matrix;
use crate::infer::InferError;

/// A linear layer (`nn.Linear`: weight `out × in`, bias `out`).
pub(super) enum Dense {
    F32(Linear),
    Int8(Int8Matrix),
}

impl Dense {
    pub(super) fn load(
        in_dim: usize,
        out_dim: usize,
        vb: VarBuilder,
        precision: Precision,
    ) -> Result<Self, InferError> {
        let linear = candle_nn::linear(in_dim, out_dim, vb)?;
        Ok(match precision {
            Precision::F32 => Dense::F32(linear),
            Precision::Int8 => Dense::Int8(quantize(linear.weight(), linear.bias())?),
        })
    }

    pub(super) fn forward(&self, xs: &Tensor) -> Result<Tensor, InferError> {
        match self {
            Dense::F32(linear) => Ok(linear.forward(xs)?),
            Dense::Int8(matrix) => int8_product(matrix, xs),
        }
    }
}

/// `weight` (`out × in`) and its bias, quantised per output row.
pub(super) fn quantize(weight: &Tensor, bias: Option<&Tensor>) -> Result<Int8Matrix, InferError> {
    let (rows, cols) = weight.dims2()?;
    let values = weight.flatten_all()?.to_vec1::<f32>()?;
    let matrix = Int8Matrix::new(&values, rows, cols)?;
    Ok(match bias {
        Some(bias) => matrix.with_bias(&bias.flatten_all()?.to_vec1::<f32>()?)?,
        None => matrix,
    })
}

/// `xs · matrixᵀ + bias` over the last dimension of `xs`, whatever its leading ones.
pub(super) fn int8_product(matrix: &Int8Matrix, xs: &Tensor) -> Result<Tensor, InferError> {
    let mut out = Vec::new();
    int8_product_into(matrix, xs, &mut out)?;
    let mut shape = xs.dims().to_vec();
    *shape.last_mut().expect("a dimension") = matrix.rows();
    Ok(Tensor::from_vec(out, shape, xs.device())?)
}

/// [`int8_product`] into `out`, row-major, resized to fit (its allocation reused).
pub(super) fn int8_product_into(
    matrix: &Int8Matrix,
    xs: &Tensor,
    out: &mut Vec<f32>,
) -> Result<(), InferError> {
    let cols = xs.dims().last().copied().unwrap_or(0);
    if cols != matrix.cols() {
        return Err(InferError::Config(format!(
            "an input of {cols} features for a layer of {}",
            matrix.cols()
        )));
    }
    let rows = xs.elem_count() / cols;
    let values = xs.flatten_all()?.to_vec1::<f32>()?;
    out.resize(rows * matrix.rows(), 0.0);
    matrix.matmul(&values, rows, out);
    Ok(())
}

/// The values of an f32 tensor into `out`, row-major, resized to fit (its allocation reused).
pub(super) fn copy_into(tensor: &Tensor, out: &mut Vec<f32>) -> Result<(), InferError> {
    let tensor = tensor.flatten_all()?;
    let (storage, layout) = tensor.storage_and_layout();
    let candle_core::Storage::Cpu(storage) = &*storage else {
        return Err(InferError::Config("Marian runs on the CPU only".into()));
    };
    let values = storage.as_slice::<f32>()?;
    let (start, end) = layout
        .contiguous_offsets()
        .expect("a flattened tensor is contiguous");
    out.clear();
    out.extend_from_slice(&values[start..end]);
    Ok(())
}
