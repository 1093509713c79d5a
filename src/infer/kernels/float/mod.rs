//! Matrix products with f32 weights and activations, for the Marian path at `--precision f32`:
//! `xs · wᵀ + bias` for a linear layer's weights (`out_features × in_features`).
//!
//! The weights are packed once, at load, in panels of [`PANEL`] output features whose values
//! for one input feature lie side by side. A register tile of several activation rows by one or
//! more panels then multiplies one activation value, broadcast, by whole vectors of weights and
//! adds into one accumulator per row and vector: no sums across lanes, no repacking at each
//! call. candle's product (the gemm crate) repacks the activations at every call and, on this
//! build's x86-64-v3 target, runs its 8-lane kernels even where the CPU has AVX-512: at a beam
//! search step (64 rows by 512 or 2048 features) the products and that packing were 70% of an
//! f32 Marian translation's time (`perf`, docs/performance.md).
//!
//! Every output value is one chain of fused multiply-adds over the input features in order,
//! from zero, then the bias added: the same bits at every CPU level (`scalar.rs`, `avx2.rs`,
//! `avx512.rs`), whatever the rows beside it and however the work is split among threads.

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
mod scalar;

use super::MatrixError;
use crate::infer::cpu::{self, CpuLevel};
use rayon::prelude::*;

/// Output features a panel holds: two AVX-512 vectors, four AVX2 ones. The last panel is padded
/// with zero weights.
pub const PANEL: usize = 32;

/// Panels a task multiplies with every activation row, at most: the rows pass over them while
/// they stay in the core's cache (4 × 32 features × 2048 inputs × 4 bytes = 1 MiB at the
/// largest layer of opus-mt), and the widest register tile (one row by 4 panels) fits in them.
const PANELS_PER_TASK: usize = 4;

/// Tasks per thread, at least, where the matrix has the panels for them: a thread that is
/// briefly descheduled then delays the product by a fraction of its share, not all of it.
const TASKS_PER_THREAD: usize = 4;

/// The most values a register tile computes (12 rows × 32 features, 1 row × 128 features).
const TILE_VALUES: usize = 384;

/// The weights of a linear layer (`out_features × in_features`, as candle stores
/// `nn::Linear`'s), packed in panels, with the layer's bias if it has one.
#[derive(Debug, Clone)]
pub struct F32Matrix {
    rows: usize,
    cols: usize,
    /// `panels × cols × PANEL` values: `packed[(p · cols + k) · PANEL + c]` is weight row
    /// `p · PANEL + c`, column `k`; zero past the last row.
    packed: Vec<f32>,
    bias: Option<Vec<f32>>,
}

impl F32Matrix {
    /// Packs `weights`, `rows × cols` row-major f32 values.
    pub fn new(weights: &[f32], rows: usize, cols: usize) -> Result<Self, MatrixError> {
        super::check_shape(weights, rows, cols)?;
        let mut packed = vec![0f32; rows.div_ceil(PANEL) * cols * PANEL];
        // An output projection has 53 017 rows: worth all cores at load time.
        packed
            .par_chunks_mut(cols * PANEL)
            .zip(weights.par_chunks(cols * PANEL))
            .for_each(|(panel, rows)| {
                for (c, row) in rows.chunks_exact(cols).enumerate() {
                    for (k, w) in row.iter().enumerate() {
                        panel[k * PANEL + c] = *w;
                    }
                }
            });
        Ok(Self {
            rows,
            cols,
            packed,
            bias: None,
        })
    }

    /// The matrix with `bias` (one value per row) added to every product row.
    pub fn with_bias(mut self, bias: &[f32]) -> Result<Self, MatrixError> {
        super::check_bias(bias, self.rows)?;
        self.bias = Some(bias.to_vec());
        Ok(self)
    }

    /// Output features.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Input features.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// `out = xs · selfᵀ (+ bias)` for the `m` rows of `xs` (`m × cols`, row-major) into `out`
    /// (`m × rows`). Each row's result is the same bits whatever `m` and the rows beside it,
    /// at every CPU level.
    ///
    /// # Panics
    /// If `xs` is not `m × cols` or `out` not `m × rows`.
    pub fn matmul(&self, xs: &[f32], m: usize, out: &mut [f32]) {
        super::check_product(xs, m, self.cols, out, self.rows);
        if m > 0 {
            self.product(xs, out, cpu::level());
        }
    }

    /// The product at `level`: the panels are split into blocks, one task each, which computes
    /// its block's features of every output row, register tile by register tile.
    fn product(&self, xs: &[f32], out: &mut [f32], level: CpuLevel) {
        let (n, k) = (self.rows, self.cols);
        let block = self.panels_per_task() * PANEL;
        let shape = tile_shape(level);
        super::for_each_column_block(out, n, block, |first, outs| {
            let features = outs[0].len();
            let panels = &self.packed[first * k..(first + features.next_multiple_of(PANEL)) * k];
            let bias = self.bias.as_deref().map(|b| &b[first..first + features]);
            block_product(level, &shape, xs, k, panels, bias, outs);
        });
    }

    /// Panels per task: [`PANELS_PER_TASK`], fewer where the matrix would give under
    /// [`TASKS_PER_THREAD`] tasks per thread.
    fn panels_per_task(&self) -> usize {
        let tasks = TASKS_PER_THREAD * rayon::current_num_threads();
        self.rows
            .div_ceil(PANEL)
            .div_ceil(tasks)
            .clamp(1, PANELS_PER_TASK)
    }
}

/// Register tiles at `level`: the rows a tile takes at once, and how many features it takes
/// for a given number of rows (fewer rows, more features, so that a tile always has enough
/// independent sums to hide the latency of a fused multiply-add).
struct TileShape {
    rows: usize,
    features: fn(rows: usize) -> usize,
}

/// One register tile's operands: `rows` activation rows (`x`, `k` values a row) by the `width`
/// features from feature `first` of `panels` (packed as in [`F32Matrix`]).
#[derive(Clone, Copy)]
struct Tile<'a> {
    x: &'a [f32],
    k: usize,
    panels: &'a [f32],
    first: usize,
    rows: usize,
    width: usize,
}

/// `outs[i][c] = Σ_k xs[i][k] · w[c][k] (+ bias[c])` for the features of `panels` (packed as
/// in [`F32Matrix`], `outs[i].len()` of them used), each activation row of `xs` (`k` values a
/// row), tile by tile at `level` in `shape`'s tiles.
fn block_product(
    level: CpuLevel,
    shape: &TileShape,
    xs: &[f32],
    k: usize,
    panels: &[f32],
    bias: Option<&[f32]>,
    outs: &mut [&mut [f32]],
) {
    let (m, features) = (outs.len(), outs[0].len());
    let padded = features.next_multiple_of(PANEL);
    let mut tile = [0f32; TILE_VALUES];
    for i in (0..m).step_by(shape.rows) {
        let rows = (m - i).min(shape.rows);
        let width = (shape.features)(rows);
        // Past the last feature, a tile would hold only the padding's zero weights.
        for c in (0..features).step_by(width) {
            let width = (padded - c).min(width);
            let operands = Tile {
                x: &xs[i * k..(i + rows) * k],
                k,
                panels,
                first: c,
                rows,
                width,
            };
            tile_product(level, operands, &mut tile);
            for (r, out) in outs[i..i + rows].iter_mut().enumerate() {
                let used = width.min(features - c);
                let out = &mut out[c..c + used];
                let sums = &tile[r * width..r * width + used];
                match bias {
                    Some(bias) => {
                        for ((o, s), b) in out.iter_mut().zip(sums).zip(&bias[c..]) {
                            *o = s + b;
                        }
                    }
                    None => out.copy_from_slice(sums),
                }
            }
        }
    }
}

fn tile_shape(level: CpuLevel) -> TileShape {
    #[cfg(target_arch = "x86_64")]
    if level >= CpuLevel::Avx512 {
        return avx512::SHAPE;
    }
    #[cfg(target_arch = "x86_64")]
    if level >= CpuLevel::Avx2 {
        return avx2::SHAPE;
    }
    let _ = level;
    scalar::SHAPE
}

/// The tile's sums into `sums[r · width + c]`.
fn tile_product(level: CpuLevel, tile: Tile, sums: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if level >= CpuLevel::Avx512 {
        // SAFETY: the level includes AVX-512 F; the shapes are `avx512::SHAPE`'s.
        return unsafe { avx512::tile_product(tile, sums) };
    }
    #[cfg(target_arch = "x86_64")]
    if level >= CpuLevel::Avx2 {
        // SAFETY: the level includes AVX2 and FMA; the shapes are `avx2::SHAPE`'s.
        return unsafe { avx2::tile_product(tile, sums) };
    }
    scalar::tile_product(tile, sums)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::infer::kernels::testing::values;

    fn product_at(matrix: &F32Matrix, xs: &[f32], level: CpuLevel) -> Vec<f32> {
        let mut out = vec![0f32; xs.len() / matrix.cols * matrix.rows];
        matrix.product(xs, &mut out, level);
        out
    }

    /// The levels this CPU runs besides the portable one; the others are said on stderr.
    fn simd_levels(test: &str) -> Vec<CpuLevel> {
        let (run, lacking): (Vec<CpuLevel>, Vec<CpuLevel>) = [CpuLevel::Avx2, CpuLevel::Avx512]
            .into_iter()
            .partition(|level| *level <= cpu::level());
        if !lacking.is_empty() {
            use std::io::Write as _;
            let _ = writeln!(
                std::io::stderr().lock(),
                "{test}: this CPU lacks {lacking:?}, so precis does not use those f32 kernels here"
            );
        }
        run
    }

    /// Each value as the chain the module promises: fused multiply-adds in column order from
    /// zero, then the bias.
    fn chained(w: &[f32], bias: Option<&[f32]>, xs: &[f32], k: usize) -> Vec<f32> {
        let n = w.len() / k;
        xs.chunks_exact(k)
            .flat_map(|x| {
                (0..n).map(move |j| {
                    let sum = w[j * k..(j + 1) * k]
                        .iter()
                        .zip(x)
                        .fold(0f32, |acc, (w, x)| x.mul_add(*w, acc));
                    bias.map_or(sum, |b| sum + b[j])
                })
            })
            .collect()
    }

    #[test]
    fn every_level_gives_the_chained_sums_bit_for_bit() {
        let levels = simd_levels("every_level_gives_the_chained_sums_bit_for_bit");
        let mut seed = 1;
        // Feature counts below, at and past a panel and a task block; every row count up to two
        // of the largest tiles and past them.
        for (n, k) in [
            (1, 1),
            (5, 31),
            (32, 7),
            (37, 77),
            (129, 300),
            (300, 64),
            (9, 2048),
        ] {
            seed += 1;
            let w = values(n * k, seed);
            let bias = values(n, seed + 100);
            let plain = F32Matrix::new(&w, n, k).unwrap();
            let biased = plain.clone().with_bias(&bias).unwrap();
            for m in (1..=26).chain([64]) {
                let xs = values(m * k, seed * 7 + m as u32);
                for (matrix, b) in [(&plain, None), (&biased, Some(&bias[..]))] {
                    let expected = chained(&w, b, &xs, k);
                    for level in std::iter::once(CpuLevel::Portable).chain(levels.clone()) {
                        let got = product_at(matrix, &xs, level);
                        for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
                            assert_eq!(
                                g.to_bits(),
                                e.to_bits(),
                                "{level:?}: {m}×{k} by {n}×{k}, value {i}: {g} vs {e}"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn each_row_equals_its_one_row_product() {
        let (n, k, m) = (70, 200, 23);
        let matrix = F32Matrix::new(&values(n * k, 3), n, k).unwrap();
        let xs = values(m * k, 4);
        let mut all = vec![0f32; m * n];
        matrix.matmul(&xs, m, &mut all);
        for (x, row) in xs.chunks_exact(k).zip(all.chunks_exact(n)) {
            let mut one = vec![0f32; n];
            matrix.matmul(x, 1, &mut one);
            assert_eq!(one, row);
        }
    }

    #[test]
    fn values_that_are_not_finite_pass_through() {
        let (n, k) = (4, 8);
        let matrix = F32Matrix::new(&values(n * k, 12), n, k).unwrap();
        let mut xs = values(3 * k, 13);
        xs[2] = f32::NAN;
        xs[2 * k + 5] = f32::INFINITY;
        let mut out = vec![0f32; 3 * n];
        matrix.matmul(&xs, 3, &mut out);
        assert!(out[..n].iter().all(|o| o.is_nan()));
        assert!(out[n..2 * n].iter().all(|o| o.is_finite()));
        assert!(out[2 * n..].iter().all(|o| !o.is_finite()));
    }

    #[test]
    fn bad_shapes_are_refused() {
        let w = values(12, 14);
        assert_eq!(
            F32Matrix::new(&w, 0, 12).unwrap_err(),
            MatrixError::Empty { rows: 0, cols: 12 }
        );
        assert_eq!(
            F32Matrix::new(&w, 5, 3).unwrap_err(),
            MatrixError::Shape {
                rows: 5,
                cols: 3,
                got: 12
            }
        );
        let matrix = F32Matrix::new(&w, 3, 4).unwrap();
        assert_eq!(
            matrix.with_bias(&[0.0; 4]).unwrap_err(),
            MatrixError::Bias { rows: 3, got: 4 }
        );
    }
}
