//! Prompt-sized products (many activation rows) with AVX-512 VNNI, on weights re-laid out in
//! tiles of 16 rows while they are used.
//!
//! Why: with one weight row at a time (`kquant::gemm`), every 32 products need an unsigned-
//! signed multiply, a scale multiply and an add. Laid out as `[4 values][16 rows]`, one
//! `vpdpbusd` does 64 products for 16 rows against 4 broadcast activations, and the scales are
//! applied once per sub-block as a vector of the 16 rows' scales (llama.cpp's and candle's
//! repacked kernels work this way). Unlike them, the tiles are not kept: each parallel task
//! unpacks its 16 rows into a buffer that stays in the core's cache, uses it for every
//! activation row, and drops it, so the model's memory stays one copy of the GGUF weights.
//! The sums are the same integers as `kquant`'s; only the order of the float scaling differs.

use super::blocks::{q4k_scales_mins, BlockQ4K, BlockQ6K, BlockQ8K, KQuant, KQuantMatrix, QK_K};
use crate::infer::cpu::{self, CpuLevel};
use std::arch::x86_64::*;

/// Weight rows per tile: one 512-bit register of i32 sums.
const TILE_ROWS: usize = 16;
/// Activation rows multiplied together against a tile (their sums live in registers).
const X_ROWS: usize = 8;

/// Whether this CPU runs the tiles (AVX-512 F/BW/VNNI).
pub fn available() -> bool {
    cpu::level() >= CpuLevel::Avx512Vnni
}

/// One 256-value block of 16 weight rows, laid out for the kernel.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct TileBlock {
    /// `values[v / 4][row]` holds values `v..v + 4` of the row as unsigned bytes.
    values: [[u32; TILE_ROWS]; QK_K / 4],
    /// Integer sub-block scales per row. Q4_K: 8 sub-blocks of 32; Q6_K: 16 of 16.
    scales: [[i32; TILE_ROWS]; 16],
    /// What each row subtracts per pair of Q8_K sums (`bsums[2k]`, `bsums[2k + 1]`, 16
    /// activations each), as i16 pairs for `vpdpwssd`: Q4_K the sub-block's min (both sums
    /// belong to it), Q6_K 32 times each sub-block's scale (its values are stored plus 32).
    corrections: [[[i16; 2]; TILE_ROWS]; 8],
    d: [f32; TILE_ROWS],
    /// Q4_K: the factor of `corrections` (Q6_K's is `d`).
    dmin: [f32; TILE_ROWS],
}

impl TileBlock {
    const ZERO: Self = Self {
        values: [[0; TILE_ROWS]; QK_K / 4],
        scales: [[0; TILE_ROWS]; 16],
        corrections: [[[0; 2]; TILE_ROWS]; 8],
        d: [0.0; TILE_ROWS],
        dmin: [0.0; TILE_ROWS],
    };

    fn fill_q4k(&mut self, row: usize, w: &BlockQ4K) {
        let (scales, mins) = q4k_scales_mins(&w.scales);
        (self.d[row], self.dmin[row]) = (w.d.to_f32(), w.dmin.to_f32());
        for s in 0..8 {
            self.scales[s][row] = i32::from(scales[s]);
            self.corrections[s][row] = [i16::from(mins[s]); 2];
        }
        // Byte `32 j + l` holds value `64 j + l` (low nibble) and `64 j + 32 + l` (high).
        for j in 0..4 {
            for l in (0..32).step_by(4) {
                let four = word(&w.qs[32 * j + l..]);
                self.values[(64 * j + l) / 4][row] = four & 0x0F0F_0F0F;
                self.values[(64 * j + 32 + l) / 4][row] = (four >> 4) & 0x0F0F_0F0F;
            }
        }
    }

    fn fill_q6k(&mut self, row: usize, w: &BlockQ6K) {
        self.d[row] = w.d.to_f32();
        for s in 0..16 {
            self.scales[s][row] = i32::from(w.scales[s]);
        }
        for k in 0..8 {
            self.corrections[k][row] = [
                32 * i16::from(w.scales[2 * k]),
                32 * i16::from(w.scales[2 * k + 1]),
            ];
        }
        // Per half of 128 values: the low four bits from `ql`, the high two from `qh`.
        for half in 0..2 {
            let (ql, qh) = (&w.ql[64 * half..], &w.qh[32 * half..]);
            for l in (0..32).step_by(4) {
                let (low, low_next, high) = (word(&ql[l..]), word(&ql[l + 32..]), word(&qh[l..]));
                let two = |shift: u32| ((high >> shift) & 0x0303_0303) << 4;
                let base = (128 * half + l) / 4;
                self.values[base][row] = (low & 0x0F0F_0F0F) | two(0);
                self.values[base + 8][row] = (low_next & 0x0F0F_0F0F) | two(2);
                self.values[base + 16][row] = ((low >> 4) & 0x0F0F_0F0F) | two(4);
                self.values[base + 24][row] = ((low_next >> 4) & 0x0F0F_0F0F) | two(6);
            }
        }
    }
}

/// The first four bytes as a little-endian word.
fn word(bytes: &[u8]) -> u32 {
    u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
}

/// The tile blocks of weight rows `first..first + 16`, one per 256 columns.
fn unpack(matrix: &KQuantMatrix, first: usize) -> Vec<TileBlock> {
    let mut tiles = vec![TileBlock::ZERO; matrix.cols / QK_K];
    for row in 0..TILE_ROWS {
        match matrix.format {
            KQuant::Q4K => {
                for (tile, w) in tiles.iter_mut().zip(matrix.row::<BlockQ4K>(first + row)) {
                    tile.fill_q4k(row, w);
                }
            }
            KQuant::Q6K => {
                for (tile, w) in tiles.iter_mut().zip(matrix.row::<BlockQ6K>(first + row)) {
                    tile.fill_q6k(row, w);
                }
            }
            KQuant::Q5_0 | KQuant::Q8_0 => unreachable!("gemm_many takes k-quants only"),
        }
    }
    tiles
}

/// One 256-value block of `X_ROWS` activation rows, interleaved so that the kernel reads it
/// front to back: the rows' values `4 g..4 g + 4` together, then their pairs of sums.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct XBlock {
    /// `qs[g][r]`: values `4 g..4 g + 4` of row `r` (4 signed bytes).
    qs: [[i32; X_ROWS]; QK_K / 4],
    /// `pairs[k][r]`: `bsums[2 k]` and `bsums[2 k + 1]` of row `r` (2 × i16).
    pairs: [[i32; X_ROWS]; 8],
    d: [f32; X_ROWS],
}

impl XBlock {
    const ZERO: Self = Self {
        qs: [[0; X_ROWS]; QK_K / 4],
        pairs: [[0; X_ROWS]; 8],
        d: [0.0; X_ROWS],
    };
}

/// The activation rows in groups of `X_ROWS`, each group `blocks` `XBlock`s long; a short last
/// group repeats its last row (the extra results are dropped).
fn interleave(xq: &[&[BlockQ8K]], blocks: usize) -> Vec<XBlock> {
    use rayon::prelude::*;
    let mut out = vec![XBlock::ZERO; xq.len().div_ceil(X_ROWS) * blocks];
    out.par_chunks_mut(blocks)
        .zip(xq.par_chunks(X_ROWS))
        .for_each(|(out, group)| {
            let row = |r: usize| group[r.min(group.len() - 1)];
            for (b, out) in out.iter_mut().enumerate() {
                let xs: [&BlockQ8K; X_ROWS] = std::array::from_fn(|r| &row(r)[b]);
                let four =
                    |bytes: &[i8]| i32::from_le_bytes(std::array::from_fn(|i| bytes[i] as u8));
                *out = XBlock {
                    qs: std::array::from_fn(|g| std::array::from_fn(|r| four(&xs[r].qs[4 * g..]))),
                    pairs: std::array::from_fn(|k| {
                        std::array::from_fn(|r| {
                            let [lo, hi] = [xs[r].bsums[2 * k], xs[r].bsums[2 * k + 1]];
                            i32::from(lo as u16) | (i32::from(hi) << 16)
                        })
                    }),
                    d: std::array::from_fn(|r| xs[r].d),
                };
            }
        });
    out
}

/// The products of one group of `X_ROWS` activation rows (`xs`, one `XBlock` per tile block)
/// with the tile's 16 weight rows: `result[r]` holds row `r`'s 16 sums.
///
/// The loops have constant bounds so that they unroll and every accumulator stays in a
/// register; `Q6` selects the format (Q4_K: 8 sub-blocks of 8 groups of 4 values; Q6_K: 16 of 4).
///
/// # Safety
/// The CPU has AVX-512 F/BW/VNNI.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn tile_product<const Q6: bool>(tiles: &[TileBlock], xs: &[XBlock]) -> [__m512; X_ROWS] {
    let (sub_blocks, groups_per_sub) = if Q6 { (16, 4) } else { (8, 8) };
    let zero = _mm512_setzero_si512();
    let mut acc = [_mm512_setzero_ps(); X_ROWS];
    for (tile, x) in tiles.iter().zip(xs) {
        // Per row, Σ_s scale_s · (Σ q·x over sub-block s): exact integers, as in `kquant`.
        let mut scaled = [zero; X_ROWS];
        for s in 0..sub_blocks {
            let mut sums = [zero; X_ROWS];
            for g in s * groups_per_sub..(s + 1) * groups_per_sub {
                let w = _mm512_load_si512(tile.values[g].as_ptr().cast());
                for (sum, &four) in sums.iter_mut().zip(&x.qs[g]) {
                    *sum = _mm512_dpbusd_epi32(*sum, w, _mm512_set1_epi32(four));
                }
            }
            let scale = _mm512_load_si512(tile.scales[s].as_ptr().cast());
            for r in 0..X_ROWS {
                scaled[r] = _mm512_add_epi32(scaled[r], _mm512_mullo_epi32(sums[r], scale));
            }
        }
        // Σ_k correction_k · bsums pair k, two sums per `vpdpwssd`.
        let mut corrections = [zero; X_ROWS];
        for k in 0..8 {
            let c = _mm512_load_si512(tile.corrections[k].as_ptr().cast());
            for (correction, &pair) in corrections.iter_mut().zip(&x.pairs[k]) {
                *correction = _mm512_dpwssd_epi32(*correction, c, _mm512_set1_epi32(pair));
            }
        }
        let d = _mm512_load_ps(tile.d.as_ptr());
        let dmin = _mm512_load_ps(tile.dmin.as_ptr());
        for r in 0..X_ROWS {
            let xd = _mm512_set1_ps(x.d[r]);
            let block = if Q6 {
                // Both terms share `d`: subtracted as integers, exactly.
                let sum = _mm512_sub_epi32(scaled[r], corrections[r]);
                _mm512_mul_ps(_mm512_mul_ps(d, xd), _mm512_cvtepi32_ps(sum))
            } else {
                let block = _mm512_mul_ps(_mm512_mul_ps(d, xd), _mm512_cvtepi32_ps(scaled[r]));
                _mm512_fnmadd_ps(
                    _mm512_mul_ps(dmin, xd),
                    _mm512_cvtepi32_ps(corrections[r]),
                    block,
                )
            };
            acc[r] = _mm512_add_ps(acc[r], block);
        }
    }
    acc
}

/// `X W^T` for each matrix, as `kquant::gemm_many`, when `available()` and every matrix is a
/// k-quant whose rows divide into tiles; `None` otherwise. `xq` holds the `m` quantised activation rows,
/// interleaved once for all matrices; every tile of every matrix is a task of one parallel
/// region.
pub fn gemm_many(matrices: &[KQuantMatrix], xq: &[&[BlockQ8K]]) -> Option<Vec<Vec<f32>>> {
    use rayon::prelude::*;
    if !available()
        || matrices
            .iter()
            .any(|matrix| !matrix.rows.is_multiple_of(TILE_ROWS) || !matrix.format.takes_q8k())
    {
        return None;
    }
    let m = xq.len();
    let blocks = matrices.first()?.cols / QK_K;
    debug_assert!(xq.iter().all(|x| x.len() == blocks));
    let x_groups = interleave(xq, blocks);
    // Tile-major while computing (each task writes one contiguous run), row-major after.
    let mut by_tile: Vec<Vec<[f32; TILE_ROWS]>> = matrices
        .iter()
        .map(|matrix| vec![[0f32; TILE_ROWS]; matrix.rows / TILE_ROWS * m])
        .collect();
    let tasks: Vec<(&KQuantMatrix, usize, &mut [[f32; TILE_ROWS]])> = matrices
        .iter()
        .zip(by_tile.iter_mut())
        .flat_map(|(matrix, out)| {
            out.chunks_mut(m)
                .enumerate()
                .map(move |(t, out)| (matrix, t * TILE_ROWS, out))
        })
        .collect();
    tasks.into_par_iter().for_each(|(matrix, first, out)| {
        let tiles = unpack(matrix, first);
        for (xs, out) in x_groups.chunks_exact(blocks).zip(out.chunks_mut(X_ROWS)) {
            // SAFETY: `available` checked the CPU features.
            let sums = unsafe {
                match matrix.format {
                    KQuant::Q4K => tile_product::<false>(&tiles, xs),
                    KQuant::Q6K => tile_product::<true>(&tiles, xs),
                    KQuant::Q5_0 | KQuant::Q8_0 => unreachable!("gemm_many takes k-quants only"),
                }
            };
            for (out, sums) in out.iter_mut().zip(sums) {
                // SAFETY: `out` is 16 floats.
                unsafe { _mm512_storeu_ps(out.as_mut_ptr(), sums) };
            }
        }
    });
    Some(
        by_tile
            .iter()
            .zip(matrices)
            .map(|(by_tile, matrix)| {
                let mut out = vec![0f32; m * matrix.rows];
                out.par_chunks_mut(matrix.rows)
                    .enumerate()
                    .for_each(|(i, row)| {
                        for (t, sums) in row.chunks_exact_mut(TILE_ROWS).enumerate() {
                            sums.copy_from_slice(&by_tile[t * m + i]);
                        }
                    });
                out
            })
            .collect(),
    )
}
