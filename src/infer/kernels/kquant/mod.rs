//! Matrix-vector products over GGUF k-quant weights (Q4_K, Q6_K), read in place.
//!
//! Why not candle's `QMatMul` for decoding: candle 0.11 repacks Q4_K weights into tiles with
//! f32 scales (a third more bytes to stream per token, kept beside the original copy) and runs
//! Q6_K through a generic dot product. A decoding step reads every weight once, so its speed is
//! set by bytes streamed per token; these kernels read the GGUF blocks as they are, with the
//! activation quantised to Q8_K the way llama.cpp's `quantize_row_q8_K` does, so the integer
//! sums are the ones llama.cpp computes. Rows are split across the team's threads (`team.rs`),
//! and the products that share an input (Q/K/V, gate/up) run in one parallel region;
//! prompt-sized products go through the VNNI tiles, on rayon's pool (see `team.rs` for why).
//!
//! The files, each using only those after it: this one (the products and the per-row dispatch
//! on `cpu::level`), `tiles.rs` (AVX-512 VNNI tiles for prompts), `avx512.rs`, `avx2.rs` (the
//! SIMD dot products), `scalar.rs` (the portable reference), `blocks.rs` (the block layouts,
//! which are GGUF's: `block_q4_K`, `block_q6_K`, `block_q8_K` in ggml).

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
mod blocks;
mod scalar;
#[cfg(target_arch = "x86_64")]
mod tiles;

use crate::infer::cpu::{self, CpuLevel};

pub use blocks::{quantize_q8k, BlockQ4K, BlockQ6K, BlockQ8K, KQuant, KQuantMatrix, QK_K};
pub use scalar::{dot_q4k_scalar, dot_q6k_scalar};

/// Whether this CPU runs the SIMD kernels here. Elsewhere (ARM, x86 without AVX2) the model
/// keeps candle's kernels, which have NEON versions: the portable ones here are a reference.
pub fn accelerated() -> bool {
    cpu::level() >= CpuLevel::Avx2
}

impl KQuantMatrix<'_> {
    fn row_dots<const R: usize>(&self, row: usize, xs: [&[BlockQ8K]; R]) -> [f32; R] {
        match self.format {
            KQuant::Q4K => dot::<BlockQ4K, R>(self.row(row), xs),
            KQuant::Q6K => dot::<BlockQ6K, R>(self.row(row), xs),
        }
    }

    /// `row_dots` for any number of activation rows up to [`ROWS_PER_DECODE`], written to `out`:
    /// a group smaller than a full one still decodes the weight row once.
    fn row_dots_into(&self, row: usize, xs: &[&[BlockQ8K]], out: &mut [f32]) {
        fn fixed<const R: usize>(
            m: &KQuantMatrix,
            row: usize,
            xs: &[&[BlockQ8K]],
            out: &mut [f32],
        ) {
            out.copy_from_slice(&m.row_dots::<R>(row, xs.try_into().expect("R rows")));
        }
        match xs.len() {
            1 => fixed::<1>(self, row, xs, out),
            2 => fixed::<2>(self, row, xs, out),
            3 => fixed::<3>(self, row, xs, out),
            4 => fixed::<4>(self, row, xs, out),
            5 => fixed::<5>(self, row, xs, out),
            6 => fixed::<6>(self, row, xs, out),
            7 => fixed::<7>(self, row, xs, out),
            8 => fixed::<8>(self, row, xs, out),
            n => unreachable!("{n} rows in one group"),
        }
    }
}

/// A weight block format with kernels for every CPU level.
trait KernelBlock: Copy {
    fn dot_scalar(w: &[Self], x: &[BlockQ8K]) -> f32;
    /// # Safety
    /// The CPU must have AVX-512 F and BW.
    #[cfg(target_arch = "x86_64")]
    unsafe fn dot_avx512<const R: usize>(w: &[Self], xs: [&[BlockQ8K]; R]) -> [f32; R];
    /// # Safety
    /// The CPU must have AVX2 and FMA.
    #[cfg(target_arch = "x86_64")]
    unsafe fn dot_avx2<const R: usize>(w: &[Self], xs: [&[BlockQ8K]; R]) -> [f32; R];
}

impl KernelBlock for BlockQ4K {
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

/// `w · x` for each of the `R` activation rows in `xs`. Each result is computed by the same
/// operations in the same order whatever `R` is, so a prompt (many rows) and a decoding step
/// (one row) give bit-identical products.
fn dot<B: KernelBlock, const R: usize>(w: &[B], xs: [&[BlockQ8K]; R]) -> [f32; R] {
    #[cfg(target_arch = "x86_64")]
    match cpu::level() {
        // SAFETY: the level includes the CPU features each kernel enables.
        CpuLevel::Avx512 | CpuLevel::Avx512Vnni => return unsafe { B::dot_avx512(w, xs) },
        CpuLevel::Avx2 => return unsafe { B::dot_avx2(w, xs) },
        CpuLevel::Portable => {}
    }
    xs.map(|x| B::dot_scalar(w, x))
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
/// through the tiled AVX-512 VNNI kernels where the CPU has them; otherwise every matrix runs
/// in one parallel region and row `i` of each result equals the one-row product of `x_i` bit
/// for bit.
pub fn gemm_many(matrices: &[KQuantMatrix], x: &[f32], m: usize, mode: RowMode) -> Vec<Vec<f32>> {
    let Some(cols) = matrices.first().map(|matrix| matrix.cols) else {
        return Vec::new();
    };
    debug_assert!(matrices.iter().all(|matrix| matrix.cols == cols));
    debug_assert_eq!(x.len(), m * cols);
    let xq = quantize_q8k(x);
    let x_rows: Vec<&[BlockQ8K]> = xq.chunks_exact(cols / QK_K).collect();
    #[cfg(target_arch = "x86_64")]
    if m >= TILED_FROM_ROWS && mode == RowMode::Fastest {
        if let Some(tiled) = tiles::gemm_many(matrices, &x_rows) {
            return tiled;
        }
    }
    gemm_by_rows(matrices, &x_rows)
}

/// [`gemm_many`] for one matrix.
pub fn gemm(matrix: &KQuantMatrix, x: &[f32], m: usize, mode: RowMode) -> Vec<f32> {
    gemm_many(&[*matrix], x, m, mode).remove(0)
}

/// The portable product: each result through the decoding kernels, the weight rows of every
/// matrix split into tasks of one parallel region.
fn gemm_by_rows(matrices: &[KQuantMatrix], x_rows: &[&[BlockQ8K]]) -> Vec<Vec<f32>> {
    let Some(k) = matrices.first().map(|matrix| matrix.cols) else {
        return Vec::new();
    };
    let m = x_rows.len();
    // Weight-row-major while computing, so each task writes one contiguous run.
    let mut by_weight_row: Vec<Vec<f32>> = matrices
        .iter()
        .map(|matrix| vec![0f32; matrix.rows * m])
        .collect();
    // A task's weight rows are multiplied with one tile of activation rows after another, so
    // that both stay in the core's cache (a long row of 35 blocks times 600 prompt tokens
    // would not).
    let tile = (X_TILE_BYTES / (k / QK_K * std::mem::size_of::<BlockQ8K>())).max(ROWS_PER_DECODE);
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
        for (t, tile_rows) in x_rows.chunks(tile).enumerate() {
            for (i, out) in out.chunks_exact_mut(m).enumerate() {
                let out = &mut out[t * tile..t * tile + tile_rows.len()];
                for (group, out) in tile_rows
                    .chunks(ROWS_PER_DECODE)
                    .zip(out.chunks_mut(ROWS_PER_DECODE))
                {
                    matrix.row_dots_into(first + i, group, out);
                }
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    use crate::infer::kernels::kquant::blocks::{q4k_blocks, q6k_blocks};
    use crate::infer::kernels::testing::{activations, close};

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn tiled_products_match_row_products() {
        if !tiles::available() {
            // A fact of this CPU, not a missing model: PRECIS_REQUIRE_MODELS leaves it a skip.
            // Written to stderr directly, which the test harness does not capture.
            use std::io::Write as _;
            let _ = writeln!(
                std::io::stderr().lock(),
                "skipped tiled_products_match_row_products: this CPU lacks AVX-512 VNNI, so \
                 precis does not use the tiled kernels here; run it on one that has it"
            );
            return;
        }
        // 48 weight rows (3 tiles) and 19 activation rows (groups of 4 and a remainder of 3).
        let (rows, cols, m) = (48, 768, 19);
        let w4 = q4k_blocks(rows * 3, 21);
        let w6 = q6k_blocks(rows * 3, 22);
        // SAFETY: plain-old-data blocks viewed as bytes.
        let b4 = unsafe { std::slice::from_raw_parts(w4.as_ptr().cast::<u8>(), w4.len() * 144) };
        let b6 = unsafe { std::slice::from_raw_parts(w6.as_ptr().cast::<u8>(), w6.len() * 210) };
        let xq = quantize_q8k(&activations(cols * m, 23));
        let x_rows: Vec<&[BlockQ8K]> = xq.chunks_exact(cols / QK_K).collect();
        for (format, bytes) in [(KQuant::Q4K, b4), (KQuant::Q6K, b6)] {
            let matrix = KQuantMatrix::new(format, rows, cols, bytes).unwrap();
            let tiled = tiles::gemm_many(&[matrix], &x_rows).unwrap().remove(0);
            let by_rows = gemm_by_rows(&[matrix], &x_rows).remove(0);
            for (i, (a, b)) in tiled.iter().zip(&by_rows).enumerate() {
                assert!(close(*a, *b), "{format:?} element {i}: {a} vs {b}");
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
        }
    }

    #[test]
    fn gemm_many_computes_every_row_of_every_matrix() {
        let (rows, cols) = (37, 512);
        let w4 = q4k_blocks(rows * 2, 7);
        let w6 = q6k_blocks(rows * 2, 8);
        let as_bytes = |b: &[u8]| b.to_vec();
        // SAFETY: plain-old-data blocks viewed as bytes.
        let b4 = as_bytes(unsafe {
            std::slice::from_raw_parts(w4.as_ptr().cast::<u8>(), w4.len() * 144)
        });
        let b6 = as_bytes(unsafe {
            std::slice::from_raw_parts(w6.as_ptr().cast::<u8>(), w6.len() * 210)
        });
        let m4 = KQuantMatrix::new(KQuant::Q4K, rows, cols, &b4).unwrap();
        let m6 = KQuantMatrix::new(KQuant::Q6K, rows, cols, &b6).unwrap();
        assert!(KQuantMatrix::new(KQuant::Q4K, rows, cols, &b4[1..]).is_none());
        let x = activations(cols, 4);
        let out = gemm_many(&[m4, m6], &x, 1, RowMode::Fastest);
        // Below the tiled path, and at any size in the exact mode, every row of a product of
        // several rows (groups of 8 and of 1 to 7) must equal the one-row result exactly, for
        // both matrices at once.
        let sizes = (2..TILED_FROM_ROWS)
            .map(|n| (n, RowMode::Fastest))
            .chain([16, 21, 40].map(|n| (n, RowMode::Exact)));
        for (n, mode) in sizes {
            let xs = activations(cols * n, 5);
            let products = gemm_many(&[m4, m6], &xs, n, mode);
            for (product, m) in products.iter().zip([m4, m6]) {
                for (i, x) in xs.chunks_exact(cols).enumerate() {
                    let single = gemm(&m, x, 1, RowMode::Fastest);
                    assert_eq!(
                        &product[i * rows..(i + 1) * rows],
                        &single[..],
                        "row {i} of {n}"
                    );
                }
            }
        }
        let xq = quantize_q8k(&x);
        for r in 0..rows {
            assert!(close(out[0][r], dot_q4k_scalar(&w4[2 * r..2 * r + 2], &xq)));
            assert!(close(out[1][r], dot_q6k_scalar(&w6[2 * r..2 * r + 2], &xq)));
        }
    }
}
