//! The numeric kernels the models run on, apart from any model: they know block layouts and
//! vectors, never a model's types (nothing here imports `qwen2`).
//!
//! - `kquant/`: matrix products over GGUF Q4_K/Q6_K weights (blocks, scalar reference, AVX2,
//!   AVX-512, prompt tiles for AVX-512 VNNI and AVX2);
//! - `int8/`: matrix products over int8 weights and activations quantised per row (scalar
//!   reference, AVX2, AVX-512 VNNI), for the Marian path at `--precision int8`;
//! - `float/`: matrix products over f32 weights packed in panels (scalar reference, AVX2,
//!   AVX-512), for the Marian path at `--precision f32`;
//! - `attention.rs`: the decoding attention's query-key scores and weighted value sums;
//! - `math.rs`: `exp` and `argmax`;
//! - `testing.rs`: deterministic inputs for the tests and the benches.
//!
//! Every SIMD kernel dispatches on [`crate::infer::cpu::level`]; the threads they run on are
//! described in `team.rs`.

pub(crate) mod attention;
pub mod float;
pub mod int8;
pub mod kquant;
pub mod math;
pub mod testing;

use int8::MAX_COLS;

/// Why a weight matrix cannot be prepared for the products (`int8`, `float`).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MatrixError {
    #[error("a {rows} × {cols} matrix has no values")]
    Empty { rows: usize, cols: usize },
    #[error("a {rows} × {cols} matrix needs {} values, got {got}", rows * cols)]
    Shape {
        rows: usize,
        cols: usize,
        got: usize,
    },
    #[error("{cols} columns: the integer sums of an int8 product hold at most {MAX_COLS}")]
    TooManyColumns { cols: usize },
    #[error("weight ({row}, {col}) is {value}, which int8 cannot represent")]
    NotFinite { row: usize, col: usize, value: f32 },
    #[error("a bias of {got} values for {rows} output rows")]
    Bias { rows: usize, got: usize },
}

impl MatrixError {
    /// Every one of them is a weight matrix that is not what its model says: a broken file.
    pub fn kind(&self) -> crate::failure::FailureKind {
        crate::failure::FailureKind::ModelCorrupt
    }
}

/// `weights` as a `rows × cols` matrix with values: what both kinds of matrix need.
fn check_shape(weights: &[f32], rows: usize, cols: usize) -> Result<(), MatrixError> {
    if rows == 0 || cols == 0 {
        return Err(MatrixError::Empty { rows, cols });
    }
    if weights.len() != rows * cols {
        return Err(MatrixError::Shape {
            rows,
            cols,
            got: weights.len(),
        });
    }
    Ok(())
}

/// `bias` as one value per output row of a matrix with `rows` of them.
fn check_bias(bias: &[f32], rows: usize) -> Result<(), MatrixError> {
    if bias.len() != rows {
        return Err(MatrixError::Bias {
            rows,
            got: bias.len(),
        });
    }
    Ok(())
}

/// Panics unless `xs` holds `m` rows of `cols` values and `out` `m` rows of `rows`.
fn check_product(xs: &[f32], m: usize, cols: usize, out: &[f32], rows: usize) {
    assert_eq!(xs.len(), m * cols, "{m} input rows of {cols} values");
    assert_eq!(out.len(), m * rows, "{m} output rows of {rows} values");
}

/// Runs `work` once per block of `block` columns of the output rows (`n` columns each), in
/// parallel: it gets the block's first column and its slice of every row. The slices are
/// disjoint, so the tasks that write them need no locks.
fn for_each_column_block(
    out: &mut [f32],
    n: usize,
    block: usize,
    work: impl Fn(usize, &mut [&mut [f32]]) + Send + Sync,
) {
    use rayon::prelude::*;
    let mut blocks: Vec<Vec<&mut [f32]>> = (0..n.div_ceil(block))
        .map(|_| Vec::with_capacity(out.len() / n))
        .collect();
    for row in out.chunks_exact_mut(n) {
        for (task, part) in blocks.iter_mut().zip(row.chunks_mut(block)) {
            task.push(part);
        }
    }
    blocks
        .into_par_iter()
        .enumerate()
        .for_each(|(t, mut outs)| work(t * block, &mut outs));
}
