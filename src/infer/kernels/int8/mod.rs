//! Matrix products with int8 weights and int8 activations, for a Marian path at
//! `--precision int8` the way CTranslate2 runs its `int8` models on CPU: each weight row
//! (output feature) is quantised once, symmetrically with its own scale, and each activation row
//! is quantised the same way at every product; the integer sums are exact, and only their
//! conversion to f32 and the two scales round.
//!
//! Why: a decoding step of beam search × batch (up to about 100 rows) streams every weight
//! once, and int8 weights are a quarter of f32's bytes, with 32 products per AVX2 instruction
//! where f32 has 8. The cost is the quantisation error, about 1/254 of each row's largest value
//! on each side (the tests bound it).
//!
//! The files: this one (the matrix, the quantisation, the product split into tasks on rayon's
//! pool and the dispatch on `cpu::level`), `vnni.rs` and `avx2.rs` (the integer sums in
//! register tiles, with AVX-512 VNNI and with AVX2) and `scalar.rs` (the portable reference,
//! which the others equal exactly). The sums are integers, so every level gives the same sums
//! whatever its order of additions, and the step to f32 is one shared loop: every level gives
//! the same bits.

#[cfg(target_arch = "x86_64")]
mod avx2;
mod scalar;
#[cfg(target_arch = "x86_64")]
mod vnni;

use super::MatrixError;
use crate::infer::cpu::{self, CpuLevel};
use rayon::prelude::*;

/// Rows are stored padded with zeros to a multiple of this many columns: the VNNI loop takes 64
/// bytes a step (AVX2's 32) and needs no tail, and the zeros add nothing to the sums.
pub const COLUMN_MULTIPLE: usize = 64;

/// The most columns a product may have: every sum of up to 127 · 127 per column must fit an
/// i32.
pub const MAX_COLS: usize = i32::MAX as usize / (127 * 127);

/// Bytes of weight rows a task multiplies with every activation row: they stay in the core's
/// cache while all the rows pass over them, so a product reads each weight from memory once
/// however many rows it has. Every task reads all the activation rows once, so a smaller block
/// reads them more often: 16 KiB measured no better than this on a Zen 3.
const WEIGHT_BLOCK_BYTES: usize = 32 << 10;

/// Tasks per thread, at least, where the matrix has the rows for them: a thread that is briefly
/// descheduled then delays the product by a fraction of its share, not all of it.
const TASKS_PER_THREAD: usize = 4;

/// Rows quantised symmetrically, each with its own scale (`value ≈ q · scale`), stored
/// `stride` bytes apart.
#[derive(Debug, Clone)]
struct QuantRows {
    data: Vec<i8>,
    scales: Vec<f32>,
}

/// The weights of a linear layer (`out_features × in_features`, as candle stores
/// `nn::Linear`'s), quantised per output row, with the layer's bias if it has one.
#[derive(Debug, Clone)]
pub struct Int8Matrix {
    rows: usize,
    cols: usize,
    /// `cols` rounded up to [`COLUMN_MULTIPLE`].
    stride: usize,
    weights: QuantRows,
    /// `Σ_k q[j][k]` of each quantised weight row, which the VNNI kernel needs.
    row_sums: Vec<i32>,
    bias: Option<Vec<f32>>,
}

impl Int8Matrix {
    /// Quantises `weights`, `rows × cols` row-major f32 values, each row with the scale
    /// `max |w| / 127` ([`quantize_row`]).
    pub fn new(weights: &[f32], rows: usize, cols: usize) -> Result<Self, MatrixError> {
        super::check_shape(weights, rows, cols)?;
        if cols > MAX_COLS {
            return Err(MatrixError::TooManyColumns { cols });
        }
        // A weight is checked here, not in `quantize_row`, because an activation that is not
        // finite is passed on as NaN (see `matmul`) while a weight is a broken model.
        if let Some(i) = weights.iter().position(|w| !w.is_finite()) {
            return Err(MatrixError::NotFinite {
                row: i / cols,
                col: i % cols,
                value: weights[i],
            });
        }
        let stride = cols.next_multiple_of(COLUMN_MULTIPLE);
        let mut data = vec![0i8; rows * stride];
        let mut scales = vec![0f32; rows];
        let mut row_sums = vec![0i32; rows];
        // An output projection has 53 017 rows: worth all cores at load time.
        data.par_chunks_mut(stride)
            .zip(weights.par_chunks(cols))
            .zip(scales.par_iter_mut().zip(row_sums.par_iter_mut()))
            .for_each(|((q, w), (scale, sum))| {
                *scale = quantize_row(w, q);
                *sum = q.iter().map(|&q| i32::from(q)).sum();
            });
        let weights = QuantRows { data, scales };
        Ok(Self {
            rows,
            cols,
            stride,
            weights,
            row_sums,
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
    /// (`m × rows`): each row of `xs` is quantised like a weight row, and
    /// `out[i][j] = (Σ_k qx[i][k] · qw[j][k]) as f32 · sw[j] · sx[i] (+ bias[j])`, multiplied
    /// in that order. Each row's result is the same bits whatever `m` and the rows beside it,
    /// at every CPU level. A row of `xs` holding NaN or an infinity gives a row of NaN.
    ///
    /// # Panics
    /// If `xs` is not `m × cols` or `out` not `m × rows`.
    pub fn matmul(&self, xs: &[f32], m: usize, out: &mut [f32]) {
        super::check_product(xs, m, self.cols, out, self.rows);
        if m == 0 {
            return;
        }
        let x = self.quantize_input(xs, m);
        self.product(&x, out, cpu::level());
    }

    fn quantize_input(&self, xs: &[f32], m: usize) -> QuantRows {
        let mut data = vec![0i8; m * self.stride];
        let scales = cpu::vectorized(|| {
            data.chunks_exact_mut(self.stride)
                .zip(xs.chunks_exact(self.cols))
                .map(|(q, x)| quantize_row(x, q))
                .collect()
        });
        QuantRows { data, scales }
    }

    /// The product of quantised rows at `level`: the weight rows are split into blocks of
    /// [`Self::rows_per_task`], one task each, which computes the block's sums with every
    /// activation row and writes its columns of every output row.
    fn product(&self, x: &QuantRows, out: &mut [f32], level: CpuLevel) {
        let (n, stride) = (self.rows, self.stride);
        let block = self.rows_per_task();
        super::for_each_column_block(out, n, block, |first, outs| {
            let w_rows = outs[0].len();
            let w = &self.weights.data[first * stride..(first + w_rows) * stride];
            let w_sums = &self.row_sums[first..first + w_rows];
            let mut sums = vec![0i32; outs.len() * w_rows];
            block_sums(level, w, w_sums, &x.data, stride, &mut sums);
            let w_scales = &self.weights.scales[first..first + w_rows];
            let bias = self.bias.as_deref().map(|b| &b[first..first + w_rows]);
            for ((out, sums), sx) in outs
                .iter_mut()
                .zip(sums.chunks_exact(w_rows))
                .zip(&x.scales)
            {
                for ((o, sum), sw) in out.iter_mut().zip(sums).zip(w_scales) {
                    *o = *sum as f32 * sw * sx;
                }
                if let Some(bias) = bias {
                    for (o, b) in out.iter_mut().zip(bias) {
                        *o += b;
                    }
                }
            }
        });
    }

    /// Weight rows per task: `WEIGHT_BLOCK_BYTES` of them, fewer where the matrix would give
    /// under `TASKS_PER_THREAD` tasks per thread, rounded up to a multiple of 4 so that the
    /// register tiles' weight rows divide it.
    fn rows_per_task(&self) -> usize {
        let tasks = TASKS_PER_THREAD * rayon::current_num_threads();
        (WEIGHT_BLOCK_BYTES / self.stride)
            .min(self.rows.div_ceil(tasks))
            .max(1)
            .next_multiple_of(4)
    }
}

/// Quantises `values` into the start of `q` (whose other bytes stay as they are, zero) and
/// returns the scale: `max |v| / 127`, with `q = round(v / scale)`, clamped to [-127, 127].
///
/// Never -128, though an i8 holds it: the AVX2 kernel multiplies signed bytes as
/// `|w| · (x · sign w)`, and negating an x of -128 wraps to -128; and with both sides at most
/// 127, a pair of products (at most 2 · 127 · 127 = 32258) never saturates `maddubs`' i16 sums.
/// The clamp is what guarantees it: `v / scale` can round above 127 by an ulp.
///
/// An all-zero row gets scale 0 and all-zero values (no 0 / 0). A row holding NaN gets scale
/// NaN, and one holding an infinity scale infinity, so that the products of the row are NaN
/// rather than finite numbers that look right.
#[inline(always)]
fn quantize_row(values: &[f32], q: &mut [i8]) -> f32 {
    // The largest magnitude, from the bits: without the sign bit, finite values and infinity
    // order as their bits do as integers, and NaNs come above them all. An integer maximum
    // vectorises; a float one (`f32::max`, with its NaN rule) ran one value at a time, and
    // quantising the activations cost a third of the int8 products themselves.
    let max_bits = values
        .iter()
        .fold(0u32, |max, v| max.max(v.to_bits() & 0x7fff_ffff));
    let max = f32::from_bits(max_bits);
    if max.is_nan() {
        return f32::NAN;
    }
    if max == 0.0 {
        return 0.0;
    }
    if max.is_infinite() {
        q[..values.len()].fill(0);
        return f32::INFINITY;
    }
    let scale = max / 127.0;
    for (q, v) in q.iter_mut().zip(values) {
        // A NaN (0 / 0 where the scale underflows to 0) becomes 0, and the clamp keeps every
        // other value an i8's: so the conversion needs no saturation, which (`as`, even through
        // i32) converted one value at a time (6% of an int8 beam search, `perf`).
        let rounded = (v / scale).round();
        let rounded = if rounded.is_nan() {
            0.0
        } else {
            rounded.clamp(-127.0, 127.0)
        };
        // SAFETY: `rounded` is finite and within [-127, 127].
        *q = unsafe { rounded.to_int_unchecked::<i32>() } as i8;
    }
    scale
}

/// The integer sums of `scalar::block_sums` at `level`, for the weight rows `w` whose sums are
/// `w_sums`.
#[cfg_attr(not(target_arch = "x86_64"), allow(unused_variables))]
fn block_sums(
    level: CpuLevel,
    w: &[i8],
    w_sums: &[i32],
    x: &[i8],
    stride: usize,
    sums: &mut [i32],
) {
    #[cfg(target_arch = "x86_64")]
    if level >= CpuLevel::Avx512Vnni {
        // SAFETY: the level includes AVX-512 F and VNNI; rows are padded to a multiple of 64
        // bytes.
        return unsafe { vnni::block_sums(w, w_sums, x, stride, sums) };
    }
    #[cfg(target_arch = "x86_64")]
    if level >= CpuLevel::Avx2 {
        // SAFETY: the level includes AVX2; rows are padded to a multiple of 32 bytes.
        return unsafe { avx2::block_sums(w, x, stride, sums) };
    }
    scalar::block_sums(w, x, stride, sums)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::infer::kernels::testing::values;

    /// `x · wᵀ` in f64, from the f32 values.
    fn reference(w: &[f32], x: &[f32], k: usize) -> Vec<f64> {
        let dot = |w: &[f32], x: &[f32]| -> f64 {
            w.iter()
                .zip(x)
                .map(|(w, x)| f64::from(*w) * f64::from(*x))
                .sum()
        };
        x.chunks_exact(k)
            .flat_map(|x| w.chunks_exact(k).map(move |w| dot(w, x)))
            .collect()
    }

    fn product_at(matrix: &Int8Matrix, xs: &[f32], m: usize, level: CpuLevel) -> Vec<f32> {
        let mut out = vec![0f32; m * matrix.rows];
        matrix.product(&matrix.quantize_input(xs, m), &mut out, level);
        out
    }

    /// The SIMD levels whose kernels this CPU runs; the others are said on stderr for `test`
    /// (a fact of this CPU, not a missing model: written directly, as the test harness does
    /// not capture stderr that way).
    fn simd_levels(test: &str) -> Vec<CpuLevel> {
        let (run, lacking): (Vec<CpuLevel>, Vec<CpuLevel>) = [CpuLevel::Avx2, CpuLevel::Avx512Vnni]
            .into_iter()
            .partition(|level| *level <= cpu::level());
        if !lacking.is_empty() {
            use std::io::Write as _;
            let _ = writeln!(
                std::io::stderr().lock(),
                "{test}: this CPU lacks {lacking:?}, so precis does not use those int8 kernels here"
            );
        }
        run
    }

    #[test]
    fn simd_sums_equal_scalar_sums_for_every_tile_shape() {
        let stride = 192;
        let bytes = |n: usize, seed: u64| -> Vec<i8> {
            let random = crate::infer::kernels::testing::pseudo_random_bytes(n, seed);
            random.into_iter().map(|b| (b as i8).max(-127)).collect()
        };
        let levels = simd_levels("simd_sums_equal_scalar_sums_for_every_tile_shape");
        // Every remainder of the 4 × 2, 4 × 4, 1 × 4 and 1 × 8 tiles, in activation and weight
        // rows, with bytes at -127 and 127 among them.
        for m in 1..=9 {
            for w_rows in 1..=17 {
                let w = bytes(w_rows * stride, (m * 100 + w_rows) as u64);
                let x = bytes(m * stride, (m * 1000 + w_rows) as u64);
                let w_sums: Vec<i32> = w
                    .chunks_exact(stride)
                    .map(|row| row.iter().map(|&q| i32::from(q)).sum())
                    .collect();
                let mut scalar = vec![0; m * w_rows];
                scalar::block_sums(&w, &x, stride, &mut scalar);
                for &level in &levels {
                    let mut simd = vec![0; m * w_rows];
                    block_sums(level, &w, &w_sums, &x, stride, &mut simd);
                    assert_eq!(simd, scalar, "{level:?}: {m} by {w_rows} rows");
                }
            }
        }
    }

    #[test]
    fn simd_products_equal_the_scalar_reference_bit_for_bit() {
        let levels = simd_levels("simd_products_equal_the_scalar_reference_bit_for_bit");
        let mut seed = 1;
        for (n, k) in [(1, 1), (5, 31), (37, 77), (129, 300), (64, 1000), (9, 2048)] {
            seed += 1;
            let w = values(n * k, seed);
            let bias = values(n, seed + 100);
            let plain = Int8Matrix::new(&w, n, k).unwrap();
            let biased = plain.clone().with_bias(&bias).unwrap();
            for m in [1, 3, 17, 64] {
                let xs = values(m * k, seed * 7 + m as u32);
                for matrix in [&plain, &biased] {
                    let scalar = product_at(matrix, &xs, m, CpuLevel::Portable);
                    for &level in &levels {
                        let simd = product_at(matrix, &xs, m, level);
                        for (i, (a, s)) in simd.iter().zip(&scalar).enumerate() {
                            assert_eq!(
                                a.to_bits(),
                                s.to_bits(),
                                "{level:?}: {m}×{k} by {n}×{k}, {i}: {a} vs {s}"
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
        let matrix = Int8Matrix::new(&values(n * k, 3), n, k).unwrap();
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
    fn quantised_weights_are_within_half_a_step() {
        let (n, k) = (33, 100);
        let w: Vec<f32> = values(n * k, 5)
            .iter()
            .enumerate()
            .map(|(i, v)| v * (i % 7) as f32)
            .collect();
        let matrix = Int8Matrix::new(&w, n, k).unwrap();
        for (j, row) in w.chunks_exact(k).enumerate() {
            let scale = matrix.weights.scales[j];
            let max = row.iter().fold(0f32, |m, v| m.max(v.abs()));
            assert_eq!(scale, max / 127.0);
            let q = &matrix.weights.data[j * matrix.stride..(j + 1) * matrix.stride];
            for (v, q) in row.iter().zip(q) {
                let back = f32::from(*q) * scale;
                assert!(
                    (v - back).abs() <= scale / 2.0 * (1.0 + 1e-6),
                    "{v} came back as {back}"
                );
            }
            assert!(q[k..].iter().all(|&q| q == 0), "padding of row {j}");
        }
    }

    /// The int8 product against the exact one: the error, relative to the norm of the exact
    /// result, is about 0.6% for uniform values in [-1, 1) (0.578% measured; printed with
    /// `--nocapture`), and heavier-tailed rows do worse, as one large value coarsens its row's
    /// step.
    #[test]
    fn int8_product_is_within_one_percent_of_the_f32_product() {
        let (n, k, m) = (96, 512, 16);
        let w = values(n * k, 8);
        let xs = values(m * k, 9);
        let matrix = Int8Matrix::new(&w, n, k).unwrap();
        let mut out = vec![0f32; m * n];
        matrix.matmul(&xs, m, &mut out);
        let exact = reference(&w, &xs, k);
        let error: f64 = out
            .iter()
            .zip(&exact)
            .map(|(o, e)| (f64::from(*o) - e).powi(2))
            .sum();
        let norm: f64 = exact.iter().map(|e| e * e).sum();
        let relative = (error / norm).sqrt();
        println!("relative error of the int8 product: {relative:.5}");
        assert!(relative < 0.01, "relative error {relative}");
    }

    #[test]
    fn zero_rows_give_scale_zero_and_zero_products() {
        let (n, k) = (3, 40);
        let mut w = values(n * k, 10);
        w[k..2 * k].fill(0.0);
        let matrix = Int8Matrix::new(&w, n, k)
            .unwrap()
            .with_bias(&[1.0, 2.0, 3.0])
            .unwrap();
        assert_eq!(matrix.weights.scales[1], 0.0);
        let mut xs = values(2 * k, 11);
        xs[..k].fill(0.0);
        let mut out = vec![f32::NAN; 2 * n];
        matrix.matmul(&xs, 2, &mut out);
        assert_eq!(
            &out[..n],
            &[1.0, 2.0, 3.0],
            "a zero input row gives the bias"
        );
        assert_eq!(out[n + 1], 2.0, "a zero weight row gives its bias");
        assert!(out.iter().all(|o| o.is_finite()));
    }

    #[test]
    fn minus_128_is_never_produced() {
        let mut rows: Vec<Vec<f32>> = vec![
            vec![-1.0, 0.5, 0.25],
            vec![-127.5, 127.0, 1.0],
            // Values whose quotient by the scale lands on or just past ±127.5 steps.
            vec![-f32::MAX, f32::MAX / 2.0],
            vec![-f32::MIN_POSITIVE, 1e-45, -1e-45],
            vec![-3.0, 3.0 - f32::EPSILON, -2.9999998],
        ];
        rows.extend((1..200).map(|seed| {
            values(64, seed)
                .iter()
                .map(|v| -v.abs() * seed as f32 * 0.37)
                .collect()
        }));
        for row in &rows {
            let mut q = vec![0i8; row.len()];
            let scale = quantize_row(row, &mut q);
            assert!(q.iter().all(|&q| q >= -127), "{row:?} gave {q:?}");
            let at_max = row
                .iter()
                .position(|v| v.abs() == row.iter().fold(0f32, |m, v| m.max(v.abs())));
            assert_eq!(
                q[at_max.unwrap()].unsigned_abs(),
                127,
                "{row:?} at scale {scale}"
            );
        }
        // Even a too-small scale, as an ulp of error in max / 127 would give, stops at -127.
        let mut q = [0i8; 2];
        let row = [-1.0f32, 1.0];
        let scale = 1.0 / 127.6;
        for (q, v) in q.iter_mut().zip(row) {
            *q = (v / scale).round().clamp(-127.0, 127.0) as i8;
        }
        assert_eq!(q, [-127, 127]);
    }

    #[test]
    fn input_that_is_not_finite_gives_nan_rows() {
        let (n, k) = (4, 8);
        let matrix = Int8Matrix::new(&values(n * k, 12), n, k).unwrap();
        let mut xs = values(3 * k, 13);
        xs[2] = f32::NAN;
        xs[2 * k + 5] = f32::INFINITY;
        let mut out = vec![0f32; 3 * n];
        matrix.matmul(&xs, 3, &mut out);
        assert!(out[..n].iter().all(|o| o.is_nan()));
        assert!(out[n..2 * n].iter().all(|o| o.is_finite()));
        assert!(out[2 * n..].iter().all(|o| o.is_nan()));
    }

    #[test]
    fn bad_shapes_and_weights_are_refused() {
        let w = values(12, 14);
        assert_eq!(
            Int8Matrix::new(&w, 0, 12).unwrap_err(),
            MatrixError::Empty { rows: 0, cols: 12 }
        );
        assert_eq!(
            Int8Matrix::new(&w, 5, 3).unwrap_err(),
            MatrixError::Shape {
                rows: 5,
                cols: 3,
                got: 12
            }
        );
        let mut bad = w.clone();
        bad[7] = f32::INFINITY;
        assert_eq!(
            Int8Matrix::new(&bad, 3, 4).unwrap_err(),
            MatrixError::NotFinite {
                row: 1,
                col: 3,
                value: f32::INFINITY
            }
        );
        let wide = vec![0f32; MAX_COLS + 1];
        assert_eq!(
            Int8Matrix::new(&wide, 1, MAX_COLS + 1).unwrap_err(),
            MatrixError::TooManyColumns { cols: MAX_COLS + 1 }
        );
        let matrix = Int8Matrix::new(&w, 3, 4).unwrap();
        assert_eq!(
            matrix.with_bias(&[0.0; 4]).unwrap_err(),
            MatrixError::Bias { rows: 3, got: 4 }
        );
    }

    #[test]
    fn the_largest_sums_are_exact() {
        // Every product at ±127 · ±127, over as many columns as a tile's i16 pairs and the i32
        // lanes see: no saturation, no overflow.
        let k = 4096;
        let sign = |i: usize| if (i % k).is_multiple_of(3) { -1.0 } else { 1.0 };
        let w: Vec<f32> = (0..2 * k).map(sign).collect();
        let matrix = Int8Matrix::new(&w, 2, k).unwrap();
        let xs: Vec<f32> = (0..5 * k).map(|i| 2.0 * sign(i)).collect();
        for level in [CpuLevel::Portable, CpuLevel::Avx2, cpu::level()] {
            if level > cpu::level() {
                continue;
            }
            let out = product_at(&matrix, &xs, 5, level);
            let full = (k as f32) * (1.0 / 127.0) * (2.0 / 127.0) * 127.0 * 127.0;
            for o in out {
                assert!((o - full).abs() <= full * 1e-6, "{level:?}: {o} vs {full}");
            }
        }
    }
}
