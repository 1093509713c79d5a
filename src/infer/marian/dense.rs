//! The model's matrix products at the precision it was loaded at: f32 weights packed for our
//! kernels (`kernels::float`), which give the same values as the HF transformers model in f32
//! to its rounding, or int8 weights and activations (`kernels::int8`), as CTranslate2's `int8`
//! computes.

use candle_core::Tensor;
use candle_nn::VarBuilder;

use super::Precision;
use crate::infer::kernels::float::F32Matrix;
use crate::infer::kernels::int8::Int8Matrix;
use crate::infer::InferError;

/// A linear layer (`nn.Linear`: weight `out × in`, bias `out`).
pub(super) enum Dense {
    F32(F32Matrix),
    Int8(Int8Matrix),
}

impl Dense {
    /// The layer `vb` names (its `weight` and `bias`).
    pub(super) fn load(
        in_dim: usize,
        out_dim: usize,
        vb: VarBuilder,
        precision: Precision,
    ) -> Result<Self, InferError> {
        let linear = candle_nn::linear(in_dim, out_dim, vb)?;
        Self::new(linear.weight(), linear.bias(), precision)
    }

    /// `weight` (`out × in`) and its bias, prepared at `precision`.
    pub(super) fn new(
        weight: &Tensor,
        bias: Option<&Tensor>,
        precision: Precision,
    ) -> Result<Self, InferError> {
        let (rows, cols) = weight.dims2()?;
        let values = weight.flatten_all()?.to_vec1::<f32>()?;
        let bias = bias
            .map(|b| b.flatten_all()?.to_vec1::<f32>())
            .transpose()?;
        Ok(match precision {
            Precision::F32 => {
                let matrix = F32Matrix::new(&values, rows, cols)?;
                Dense::F32(match bias {
                    Some(bias) => matrix.with_bias(&bias)?,
                    None => matrix,
                })
            }
            Precision::Int8 => {
                let matrix = Int8Matrix::new(&values, rows, cols)?;
                Dense::Int8(match bias {
                    Some(bias) => matrix.with_bias(&bias)?,
                    None => matrix,
                })
            }
        })
    }

    fn shape(&self) -> (usize, usize) {
        match self {
            Dense::F32(matrix) => (matrix.rows(), matrix.cols()),
            Dense::Int8(matrix) => (matrix.rows(), matrix.cols()),
        }
    }

    /// `xs · weightᵀ + bias` over the last dimension of `xs`, whatever its leading ones.
    pub(super) fn forward(&self, xs: &Tensor) -> Result<Tensor, InferError> {
        let mut out = Vec::new();
        self.forward_into(xs, &mut out)?;
        let mut shape = xs.dims().to_vec();
        *shape.last_mut().expect("a dimension") = self.shape().0;
        Ok(Tensor::from_vec(out, shape, xs.device())?)
    }

    /// [`Self::forward`] into `out`, row-major, resized to fit (its allocation reused).
    pub(super) fn forward_into(&self, xs: &Tensor, out: &mut Vec<f32>) -> Result<(), InferError> {
        let cols = self.shape().1;
        let features = xs.dims().last().copied().unwrap_or(0);
        if features != cols {
            return Err(InferError::Config(format!(
                "an input of {features} features for a layer of {cols}"
            )));
        }
        self.forward_rows(&xs.flatten_all()?.to_vec1::<f32>()?, out);
        Ok(())
    }

    /// The product of the rows of `xs` (row-major, as many values a row as the layer has
    /// inputs) into `out`, resized to fit.
    pub(super) fn forward_rows(&self, xs: &[f32], out: &mut Vec<f32>) {
        let (rows, cols) = self.shape();
        let m = xs.len() / cols;
        out.resize(m * rows, 0.0);
        match self {
            Dense::F32(matrix) => matrix.matmul(xs, m, out),
            Dense::Int8(matrix) => matrix.matmul(xs, m, out),
        }
    }
}
