//! Matrix-vector products over GGUF quantised weights, read in place: the k-quants (Q4_K,
//! Q6_K) and the 32-value formats (Q5_0, Q8_0) that llama.cpp's quantiser falls back to for
//! rows that do not divide into 256 values (most of the 0.5B model's matrices, 896 columns).
//!
//! Why not candle's `QMatMul` for decoding: candle 0.11 repacks Q4_K weights into tiles with
//! f32 scales (a third more bytes to stream per token, kept beside the original copy), runs
//! Q6_K through a generic dot product and Q5_0 through a scalar one. A decoding step reads
//! every weight once, so its speed is set by bytes streamed per token; these kernels read the
//! GGUF blocks as they are, with the activation quantised the way llama.cpp does (Q8_K for
//! the k-quants as `quantize_row_q8_K`, Q8_0 for the others as `quantize_row_q8_0`), so the
//! integer sums are the ones llama.cpp computes. Rows are split across the team's threads
//! (`team.rs`), and the products that share an input (Q/K/V, gate/up) run in one parallel
//! region; prompt-sized k-quant products go through the tiles, on rayon's pool (see
//! `team.rs` for why).
//!
//! The files, each using only those after it: this one (the products and the per-row dispatch
//! on `cpu::level`), `tiles.rs` (tiles for prompts, AVX-512 VNNI or AVX2), `avx512.rs`, `avx2.rs` (the
//! SIMD dot products), `scalar.rs` (the portable reference), `blocks.rs` (the block layouts,
//! which are GGUF's: `block_q4_K`, `block_q6_K`, `block_q8_K`, `block_q5_0`, `block_q8_0` in
//! ggml).

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
mod blocks;
mod scalar;
#[cfg(target_arch = "x86_64")]
mod tiles;

use crate::infer::cpu::{self, CpuLevel};

pub use blocks::{
    quantize_q8_0, quantize_q8k, BlockQ4K, BlockQ5_0, BlockQ6K, BlockQ8K, BlockQ8_0, KQuant,
    KQuantMatrix, QK8_0, QK_K,
};
pub use scalar::{dot_q4k_scalar, dot_q5_0_scalar, dot_q6k_scalar, dot_q8_0_scalar};

/// Whether this CPU runs the SIMD kernels here. Elsewhere (ARM, x86 without AVX2) the model
/// keeps candle's kernels, which have NEON versions: the portable ones here are a reference.
pub fn accelerated() -> bool {
    cpu::level() >= CpuLevel::Avx2
}

/// A weight block format with kernels for every CPU level.
trait KernelBlock: Copy {
    /// The block format of the activations it is multiplied with.
    type X: Copy;
    fn dot_scalar(w: &[Self], x: &[Self::X]) -> f32;
    /// The AVX2 kernel unless the format has one of its own: the 32-value formats do a block's
    /// work in one 256-bit register (their results are then the same on both levels).
    ///
    /// # Safety
    /// The CPU must have AVX-512 F and BW.
    #[cfg(target_arch = "x86_64")]
    unsafe fn dot_avx512<const R: usize>(w: &[Self], xs: [&[Self::X]; R]) -> [f32; R] {
        Self::dot_avx2(w, xs)
    }
    /// # Safety
    /// The CPU must have AVX2 and FMA.
    #[cfg(target_arch = "x86_64")]
    unsafe fn dot_avx2<const R: usize>(w: &[Self], xs: [&[Self::X]; R]) -> [f32; R];
}

impl KernelBlock for BlockQ4K {
    type X = BlockQ8K;
    fn dot_scalar(w: &[Self], x: &[BlockQ8K]) -> f32 {
        dot_q4k_scalar(w, x)
    }
    #[cfg(target_arch = "x86_64")]
    unsafe fn dot_avx512<const R: usize>(w: &[Self], xs: [&[BlockQ8K]; R]) -> [f32; R] {
        avx512::dot_q4k_avx512(w, xs)
    }
    #[cfg(target_arch = "x86_64")]
    unsafe fn dot_avx2<const R: usize>(w: &[Self], xs: [&[BlockQ8K]; R]) -> [f32; R] {
        avx2::dot_q4k(w, xs)
    }
}

impl KernelBlock for BlockQ6K {
    type X = BlockQ8K;
    fn dot_scalar(w: &[Self], x: &[BlockQ8K]) -> f32 {
        dot_q6k_scalar(w, x)
    }
    #[cfg(target_arch = "x86_64")]
    unsafe fn dot_avx512<const R: usize>(w: &[Self], xs: [&[BlockQ8K]; R]) -> [f32; R] {
        avx512::dot_q6k_avx512(w, xs)
    }
    #[cfg(target_arch = "x86_64")]
    unsafe fn dot_avx2<const R: usize>(w: &[Self], xs: [&[BlockQ8K]; R]) -> [f32; R] {
        avx2::dot_q6k(w, xs)
    }
}

impl KernelBlock for BlockQ5_0 {
    type X = BlockQ8_0;
    fn dot_scalar(w: &[Self], x: &[BlockQ8_0]) -> f32 {
        dot_q5_0_scalar(w, x)
    }
    #[cfg(target_arch = "x86_64")]
    unsafe fn dot_avx2<const R: usize>(w: &[Self], xs: [&[BlockQ8_0]; R]) -> [f32; R] {
        avx2::dot_q5_0(w, xs)
    }
}

impl KernelBlock for BlockQ8_0 {
    type X = BlockQ8_0;
    fn dot_scalar(w: &[Self], x: &[BlockQ8_0]) -> f32 {
        dot_q8_0_scalar(w, x)
    }
    #[cfg(target_arch = "x86_64")]
    unsafe fn dot_avx2<const R: usize>(w: &[Self], xs: [&[BlockQ8_0]; R]) -> [f32; R] {
        avx2::dot_q8_0(w, xs)
    }
}

/// `w · x` for each of the `R` activation rows in `xs`. Each result is computed by the same
/// operations in the same order whatever `R` is, so a prompt (many rows) and a decoding step
/// (one row) give bit-identical products.
fn dot<B: KernelBlock, const R: usize>(w: &[B], xs: [&[B::X]; R]) -> [f32; R] {
    #[cfg(target_arch = "x86_64")]
    match cpu::level() {
        // SAFETY: the level includes the CPU features each kernel enables.
        CpuLevel::Avx512 | CpuLevel::Avx512Vnni => return unsafe { B::dot_avx512(w, xs) },
        CpuLevel::Avx2 => return unsafe { B::dot_avx2(w, xs) },
        CpuLevel::Portable => {}
    }
    xs.map(|x| B::dot_scalar(w, x))
}

/// [`dot`] for any number of activation rows up to [`ROWS_PER_DECODE`], written to `out`: a
/// group smaller than a full one still decodes the weight row once.
fn dots_into<B: KernelBlock>(w: &[B], xs: &[&[B::X]], out: &mut [f32]) {
    fn fixed<B: KernelBlock, const R: usize>(w: &[B], xs: &[&[B::X]], out: &mut [f32]) {
        out.copy_from_slice(&dot::<B, R>(w, xs.try_into().expect("R rows")));
    }
    match xs.len() {
        1 => fixed::<B, 1>(w, xs, out),
        2 => fixed::<B, 2>(w, xs, out),
        3 => fixed::<B, 3>(w, xs, out),
        4 => fixed::<B, 4>(w, xs, out),
        5 => fixed::<B, 5>(w, xs, out),
        6 => fixed::<B, 6>(w, xs, out),
        7 => fixed::<B, 7>(w, xs, out),
        8 => fixed::<B, 8>(w, xs, out),
        n => unreachable!("{n} rows in one group"),
    }
}

/// Rows handed to a thread at a time: small enough to balance two threads when one is
/// briefly descheduled, large enough that scheduling costs stay negligible.
const ROWS_PER_TASK: usize = 16;

/// Activation rows multiplied together against each weight row: its blocks are decoded once
/// for this many rows, which stay in registers.
const ROWS_PER_DECODE: usize = 8;

/// Bytes of quantised activation rows a product keeps in cache at a time.
const X_TILE_BYTES: usize = 256 << 10;

/// Activation rows from which a product goes through the tiled kernels when the CPU has them:
/// below, unpacking the tiles costs more than it saves, and each row's result equals its
/// single-row product bit for bit (a speculative draft's verification relies on it).
pub const TILED_FROM_ROWS: usize = 16;

/// How a product may treat its activation rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowMode {
    /// Prompt-sized products may go through the tiled kernels (faster, other rounding).
    Fastest,
    /// Every row gives exactly its single-row product, however many rows there are: the rows
    /// of a decoding step that carries several sequences, or a speculative draft.
    Exact,
}

/// `X W^T` for each matrix, for `x` holding `m` rows of the matrices' common column count;
/// each result is `m × matrix.rows`, row-major. The rows are quantised once for all matrices.
/// With [`RowMode::Fastest`], prompt-sized products (`TILED_FROM_ROWS` rows or more) go
/// through the tiled kernels (AVX-512 VNNI or AVX2); otherwise every matrix runs
/// in one parallel region and row `i` of each result equals the one-row product of `x_i` bit
/// for bit.
pub fn gemm_many(matrices: &[KQuantMatrix], x: &[f32], m: usize, mode: RowMode) -> Vec<Vec<f32>> {
    let Some(cols) = matrices.first().map(|matrix| matrix.cols) else {
        return Vec::new();
    };
    debug_assert!(matrices.iter().all(|matrix| matrix.cols == cols));
    debug_assert_eq!(x.len(), m * cols);
    let takes = |q8k: bool| {
        matrices
            .iter()
            .any(|matrix| matrix.format.takes_q8k() == q8k)
    };
    let q8k = if takes(true) {
        quantize_q8k(x)
    } else {
        Vec::new()
    };
    let q8_0 = if takes(false) {
        quantize_q8_0(x)
    } else {
        Vec::new()
    };
    let x_rows = ActivationRows {
        q8k: rows_of(&q8k, m),
        q8_0: rows_of(&q8_0, m),
    };
    #[cfg(target_arch = "x86_64")]
    if m >= TILED_FROM_ROWS && mode == RowMode::Fastest && q8_0.is_empty() {
        if let Some(tiled) = tiles::gemm_many(matrices, &x_rows.q8k) {
            return tiled;
        }
    }
    gemm_by_rows(matrices, &x_rows, m)
}

/// [`gemm_many`] for one matrix.
pub fn gemm(matrix: &KQuantMatrix, x: &[f32], m: usize, mode: RowMode) -> Vec<f32> {
    gemm_many(&[*matrix], x, m, mode).remove(0)
}

/// The activation rows, quantised in each format some matrix of the product takes (the other
/// is empty).
struct ActivationRows<'a> {
    q8k: Vec<&'a [BlockQ8K]>,
    q8_0: Vec<&'a [BlockQ8_0]>,
}

/// `blocks` as `m` rows.
fn rows_of<T>(blocks: &[T], m: usize) -> Vec<&[T]> {
    if blocks.is_empty() {
        return Vec::new();
    }
    blocks.chunks_exact(blocks.len() / m).collect()
}

/// The portable product: each result through the decoding kernels, the weight rows of every
/// matrix split into tasks of one parallel region.
fn gemm_by_rows(matrices: &[KQuantMatrix], x_rows: &ActivationRows, m: usize) -> Vec<Vec<f32>> {
    // Weight-row-major while computing, so each task writes one contiguous run.
    let mut by_weight_row: Vec<Vec<f32>> = matrices
        .iter()
        .map(|matrix| vec![0f32; matrix.rows * m])
        .collect();
    let mut tasks: Vec<(&KQuantMatrix, usize, &mut [f32])> = matrices
        .iter()
        .zip(by_weight_row.iter_mut())
        .flat_map(|(matrix, out)| {
            out.chunks_mut(ROWS_PER_TASK * m)
                .enumerate()
                .map(move |(task, out)| (matrix, task * ROWS_PER_TASK, out))
        })
        .collect();
    crate::infer::team::Team::get().for_each_mut(&mut tasks, |(matrix, first, out)| {
        let (matrix, first) = (*matrix, *first);
        match matrix.format {
            KQuant::Q4K => task_products::<BlockQ4K>(matrix, first, &x_rows.q8k, out),
            KQuant::Q6K => task_products::<BlockQ6K>(matrix, first, &x_rows.q8k, out),
            KQuant::Q5_0 => task_products::<BlockQ5_0>(matrix, first, &x_rows.q8_0, out),
            KQuant::Q8_0 => task_products::<BlockQ8_0>(matrix, first, &x_rows.q8_0, out),
        }
    });
    if m == 1 {
        return by_weight_row;
    }
    by_weight_row
        .into_iter()
        .zip(matrices)
        .map(|(by_weight_row, matrix)| {
            let mut out = vec![0f32; m * matrix.rows];
            for (row, column) in by_weight_row.chunks_exact(m).enumerate() {
                for (i, v) in column.iter().enumerate() {
                    out[i * matrix.rows + row] = *v;
                }
            }
            out
        })
        .collect()
}

/// The products of a task's weight rows (from `first`, one per `x_rows.len()` values of `out`)
/// with every activation row, weight-row-major into `out`. The weight rows are multiplied
/// with one tile of activation rows after another, so that both stay in the core's cache (a
/// long row of 35 blocks times 600 prompt tokens would not).
fn task_products<B: KernelBlock>(
    matrix: &KQuantMatrix,
    first: usize,
    x_rows: &[&[B::X]],
    out: &mut [f32],
) {
    let m = x_rows.len();
    let row_bytes = std::mem::size_of_val(x_rows[0]);
    let tile = (X_TILE_BYTES / row_bytes).max(ROWS_PER_DECODE);
    for (t, tile_rows) in x_rows.chunks(tile).enumerate() {
        for (i, out) in out.chunks_exact_mut(m).enumerate() {
            let w = matrix.row::<B>(first + i);
            let out = &mut out[t * tile..t * tile + tile_rows.len()];
            for (group, out) in tile_rows
                .chunks(ROWS_PER_DECODE)
                .zip(out.chunks_mut(ROWS_PER_DECODE))
            {
                dots_into(w, group, out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::infer::kernels::kquant::blocks::{q4k_blocks, q5_0_blocks, q6k_blocks, q8_0_blocks};
    use crate::infer::kernels::testing::{activations, close};

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn tiled_products_match_row_products_and_agree_across_levels() {
        let levels: Vec<CpuLevel> = [CpuLevel::Avx2, CpuLevel::Avx512Vnni]
            .into_iter()
            .filter(|&level| level <= cpu::level())
            .collect();
        if levels.len() < 2 {
            // A fact of this CPU, not a missing model: PRECIS_REQUIRE_MODELS leaves it a skip.
            // Written to stderr directly, which the test harness does not capture.
            use std::io::Write as _;
            let _ = writeln!(
                std::io::stderr().lock(),
                "tiled_products_match_row_products_and_agree_across_levels: only {levels:?} \
                 here; the agreement of the AVX2 and VNNI tiles needs a CPU with AVX-512 VNNI"
            );
        }
        // 48 weight rows (3 tiles) and 19 activation rows (groups of 8 and a remainder of 3).
        let (rows, cols, m) = (48, 768, 19);
        let (mut w4, mut w6) = (q4k_blocks(rows * 3, 21), q6k_blocks(rows * 3, 22));
        // Random blocks, then the largest values against activations quantised to ±127, the
        // most an i16 sum of the AVX2 tiles carries (an overflow would be far from the rows').
        let random = (w4.clone(), w6.clone(), activations(cols * m, 23));
        for (w4, w6) in w4.iter_mut().zip(&mut w6) {
            w4.qs = [0xFF; QK_K / 2];
            (w6.ql, w6.qh) = ([0xFF; QK_K / 2], [0xFF; QK_K / 4]);
        }
        let largest = (
            w4,
            w6,
            (0..cols * m).map(|i| [1.0, -1.0][i / cols % 2]).collect(),
        );
        for (w4, w6, x) in [random, largest] {
            tiled_case(&w4, &w6, &x, &levels, (rows, cols, m));
        }
    }

    /// The tiled products of `x` (`m` rows) with the Q4_K and Q6_K weights, at each of
    /// `levels`, against the row products and each other.
    #[cfg(target_arch = "x86_64")]
    fn tiled_case(
        w4: &[BlockQ4K],
        w6: &[BlockQ6K],
        x: &[f32],
        levels: &[CpuLevel],
        (rows, cols, m): (usize, usize, usize),
    ) {
        // SAFETY: plain-old-data blocks viewed as bytes.
        let b4 = unsafe { std::slice::from_raw_parts(w4.as_ptr().cast::<u8>(), w4.len() * 144) };
        let b6 = unsafe { std::slice::from_raw_parts(w6.as_ptr().cast::<u8>(), w6.len() * 210) };
        let xq = quantize_q8k(x);
        let x_rows: Vec<&[BlockQ8K]> = xq.chunks_exact(cols / QK_K).collect();
        for (format, bytes) in [(KQuant::Q4K, b4), (KQuant::Q6K, b6)] {
            let matrix = KQuantMatrix::new(format, rows, cols, bytes).unwrap();
            let rows = ActivationRows {
                q8k: x_rows.clone(),
                q8_0: Vec::new(),
            };
            let by_rows = gemm_by_rows(&[matrix], &rows, m).remove(0);
            let tiled: Vec<Vec<f32>> = levels
                .iter()
                .map(|&level| {
                    tiles::gemm_many_at(level, &[matrix], &x_rows)
                        .unwrap()
                        .remove(0)
                })
                .collect();
            for (i, (a, b)) in tiled[0].iter().zip(&by_rows).enumerate() {
                assert!(close(*a, *b), "{format:?} element {i}: {a} vs {b}");
            }
            // The same integers and the same float operations: the same bits at every level.
            for (level, other) in levels.iter().zip(&tiled).skip(1) {
                assert_eq!(other, &tiled[0], "{format:?} at {level:?}");
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn simd_kernels_match_scalar() {
        let level = cpu::level();
        for seed in 1..20 {
            let x = quantize_q8k(&activations(1536, seed));
            let w4 = q4k_blocks(6, seed * 31);
            let w6 = q6k_blocks(6, seed * 37);
            let (r4, r6) = (dot_q4k_scalar(&w4, &x), dot_q6k_scalar(&w6, &x));
            if level >= CpuLevel::Avx2 {
                // SAFETY: AVX2 and FMA are available (the CPU level includes them).
                let ([s4], [s6]) = unsafe { (avx2::dot_q4k(&w4, [&x]), avx2::dot_q6k(&w6, [&x])) };
                assert!(close(s4, r4), "avx2 q4k seed {seed}: {s4} vs {r4}");
                assert!(close(s6, r6), "avx2 q6k seed {seed}: {s6} vs {r6}");
            }
            if level >= CpuLevel::Avx512 {
                // SAFETY: AVX-512 F/BW are available (the CPU level includes them).
                let ([s4], [s6]) = unsafe {
                    (
                        avx512::dot_q4k_avx512(&w4, [&x]),
                        avx512::dot_q6k_avx512(&w6, [&x]),
                    )
                };
                assert!(close(s4, r4), "avx512 q4k seed {seed}: {s4} vs {r4}");
                assert!(close(s6, r6), "avx512 q6k seed {seed}: {s6} vs {r6}");
            }
            // The 32-value formats, on an odd number of blocks.
            let x = quantize_q8_0(&activations(32 * 13, seed));
            let w5 = q5_0_blocks(13, seed * 41);
            let w8 = q8_0_blocks(13, seed * 43);
            let (r5, r8) = (dot_q5_0_scalar(&w5, &x), dot_q8_0_scalar(&w8, &x));
            if level >= CpuLevel::Avx2 {
                // SAFETY: AVX2 and FMA are available (the CPU level includes them).
                let ([s5], [s8]) =
                    unsafe { (avx2::dot_q5_0(&w5, [&x]), avx2::dot_q8_0(&w8, [&x])) };
                assert!(close(s5, r5), "avx2 q5_0 seed {seed}: {s5} vs {r5}");
                assert!(close(s8, r8), "avx2 q8_0 seed {seed}: {s8} vs {r8}");
            }
        }
    }

    #[test]
    fn gemm_many_computes_every_row_of_every_matrix() {
        // Every format in one product: 512 columns are 2 k-quant blocks and 16 of 32 values.
        let (rows, cols) = (37, 512);
        let w4 = q4k_blocks(rows * 2, 7);
        let w6 = q6k_blocks(rows * 2, 8);
        let w5 = q5_0_blocks(rows * 16, 9);
        let w8 = q8_0_blocks(rows * 16, 10);
        // SAFETY: plain-old-data blocks viewed as bytes.
        let bytes = |p: *const u8, len: usize| unsafe { std::slice::from_raw_parts(p, len) };
        let b4 = bytes(w4.as_ptr().cast(), w4.len() * 144).to_vec();
        let b6 = bytes(w6.as_ptr().cast(), w6.len() * 210).to_vec();
        let b5 = bytes(w5.as_ptr().cast(), w5.len() * 22).to_vec();
        let b8 = bytes(w8.as_ptr().cast(), w8.len() * 34).to_vec();
        let m4 = KQuantMatrix::new(KQuant::Q4K, rows, cols, &b4).unwrap();
        let m6 = KQuantMatrix::new(KQuant::Q6K, rows, cols, &b6).unwrap();
        let m5 = KQuantMatrix::new(KQuant::Q5_0, rows, cols, &b5).unwrap();
        let m8 = KQuantMatrix::new(KQuant::Q8_0, rows, cols, &b8).unwrap();
        let all = [m4, m6, m5, m8];
        assert!(KQuantMatrix::new(KQuant::Q4K, rows, cols, &b4[1..]).is_none());
        assert!(KQuantMatrix::new(KQuant::Q5_0, rows, cols, &b5[1..]).is_none());
        // 896 columns (the 0.5B model's) take the 32-value formats, not the k-quants.
        assert!(KQuantMatrix::new(KQuant::Q5_0, 1, 896, &b5[..28 * 22]).is_some());
        assert!(KQuantMatrix::new(KQuant::Q4K, 1, 896, &b4[..3 * 144]).is_none());
        let x = activations(cols, 4);
        let out = gemm_many(&all, &x, 1, RowMode::Fastest);
        // Below the tiled path, and at any size in the exact mode, every row of a product of
        // several rows (groups of 8 and of 1 to 7) must equal the one-row result exactly, for
        // every matrix at once.
        let sizes = (2..TILED_FROM_ROWS)
            .map(|n| (n, RowMode::Fastest))
            .chain([16, 21, 40].map(|n| (n, RowMode::Exact)));
        for (n, mode) in sizes {
            let xs = activations(cols * n, 5);
            let products = gemm_many(&all, &xs, n, mode);
            for (product, m) in products.iter().zip(all) {
                for (i, x) in xs.chunks_exact(cols).enumerate() {
                    let single = gemm(&m, x, 1, RowMode::Fastest);
                    assert_eq!(
                        &product[i * rows..(i + 1) * rows],
                        &single[..],
                        "{:?} row {i} of {n}",
                        m.format
                    );
                }
            }
        }
        let (xq, x0) = (quantize_q8k(&x), quantize_q8_0(&x));
        for r in 0..rows {
            assert!(close(out[0][r], dot_q4k_scalar(&w4[2 * r..2 * r + 2], &xq)));
            assert!(close(out[1][r], dot_q6k_scalar(&w6[2 * r..2 * r + 2], &xq)));
            assert!(close(
                out[2][r],
                dot_q5_0_scalar(&w5[16 * r..16 * r + 16], &x0)
            ));
            assert!(close(
                out[3][r],
                dot_q8_0_scalar(&w8[16 * r..16 * r + 16], &x0)
            ));
        }
    }
}
