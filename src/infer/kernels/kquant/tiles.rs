//! Prompt-sized products (many activation rows) with AVX-512 VNNI or AVX2, on weights re-laid
//! out in tiles of 16 rows while they are used.
//!
//! Why: with one weight row at a time (`kquant::gemm`), every 32 products need an unsigned-
//! signed multiply, a scale multiply and an add. Laid out as `[4 values][16 rows]`, one
//! `vpdpbusd` does 64 products for 16 rows against 4 broadcast activations, and the scales are
//! applied once per sub-block as a vector of the 16 rows' scales (llama.cpp's and candle's
//! repacked kernels work this way); with AVX2 the same layout halves the scale multiplies
//! (`tile_product_avx2`). Unlike them, the tiles are not kept: each parallel task
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

/// [`tile_product`] with AVX2: the 16 weight rows as two halves of 8 (a 256-bit register of
/// i32 sums), each against 4 activation rows at a time, so that the sums stay in the 16
/// registers.
///
/// Without VNNI, `vpmaddubsw` multiplies the bytes and adds them in pairs to i16, and
/// `vpmaddwd` adds those pairs to i32. Here the i16 pairs of several groups are added before
/// `vpmaddwd`, which then applies the sub-block's scale: one `vpmaddwd` per sub-block and row
/// group, where the one-row kernel needs one per 32 products. The i16 sums cannot overflow:
/// a pair is at most 2 · 15 · 128 (Q4_K, eight groups: 30,720) or 2 · 63 · 128 (Q6_K, whose
/// values are stored plus 32, two groups: 32,256). The integers are `tile_product`'s, and so
/// is the order of the float operations: both give the same bits.
///
/// # Safety
/// The CPU has AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
unsafe fn tile_product_avx2<const Q6: bool>(
    tiles: &[TileBlock],
    xs: &[XBlock],
) -> [[__m256; 2]; X_ROWS] {
    let mut out = [[_mm256_setzero_ps(); 2]; X_ROWS];
    for (quad, out) in out.chunks_exact_mut(4).enumerate() {
        for half in 0..2 {
            let sums = quad_product_avx2::<Q6>(tiles, xs, 8 * half, 4 * quad);
            for (out, sums) in out.iter_mut().zip(sums) {
                out[half] = sums;
            }
        }
    }
    out
}

/// The sums of weight rows `lane..lane + 8` of the tile with activation rows
/// `first..first + 4` of each `XBlock`.
#[inline(always)]
unsafe fn quad_product_avx2<const Q6: bool>(
    tiles: &[TileBlock],
    xs: &[XBlock],
    lane: usize,
    first: usize,
) -> [__m256; 4] {
    let (sub_blocks, groups_per_sub, groups_per_madd) = if Q6 { (16, 4, 2) } else { (8, 8, 8) };
    let zero = _mm256_setzero_si256();
    let low_half = _mm256_set1_epi32(0xFFFF);
    let mut acc = [_mm256_setzero_ps(); 4];
    for (tile, x) in tiles.iter().zip(xs) {
        let mut scaled = [zero; 4];
        for s in 0..sub_blocks {
            // Each row's scale in both i16 halves of its lane, for `vpmaddwd`.
            let scale = _mm256_loadu_si256(tile.scales[s].as_ptr().add(lane).cast());
            let scale = _mm256_or_si256(
                _mm256_and_si256(scale, low_half),
                _mm256_slli_epi32(scale, 16),
            );
            for chunk in 0..groups_per_sub / groups_per_madd {
                let start = s * groups_per_sub + chunk * groups_per_madd;
                let mut pairs = [zero; 4];
                for g in start..start + groups_per_madd {
                    let w = _mm256_loadu_si256(tile.values[g].as_ptr().add(lane).cast());
                    for (r, pairs) in pairs.iter_mut().enumerate() {
                        let four = _mm256_set1_epi32(x.qs[g][first + r]);
                        *pairs = _mm256_add_epi16(*pairs, _mm256_maddubs_epi16(w, four));
                    }
                }
                for (scaled, pairs) in scaled.iter_mut().zip(pairs) {
                    *scaled = _mm256_add_epi32(*scaled, _mm256_madd_epi16(pairs, scale));
                }
            }
        }
        let mut corrections = [zero; 4];
        for k in 0..8 {
            let c = _mm256_loadu_si256(tile.corrections[k].as_ptr().add(lane).cast());
            for (r, correction) in corrections.iter_mut().enumerate() {
                let pair = _mm256_set1_epi32(x.pairs[k][first + r]);
                *correction = _mm256_add_epi32(*correction, _mm256_madd_epi16(c, pair));
            }
        }
        let d = _mm256_loadu_ps(tile.d.as_ptr().add(lane));
        let dmin = _mm256_loadu_ps(tile.dmin.as_ptr().add(lane));
        for r in 0..4 {
            let xd = _mm256_set1_ps(x.d[first + r]);
            let block = if Q6 {
                let sum = _mm256_sub_epi32(scaled[r], corrections[r]);
                _mm256_mul_ps(_mm256_mul_ps(d, xd), _mm256_cvtepi32_ps(sum))
            } else {
                let block = _mm256_mul_ps(_mm256_mul_ps(d, xd), _mm256_cvtepi32_ps(scaled[r]));
                _mm256_fnmadd_ps(
                    _mm256_mul_ps(dmin, xd),
                    _mm256_cvtepi32_ps(corrections[r]),
                    block,
                )
            };
            acc[r] = _mm256_add_ps(acc[r], block);
        }
    }
    acc
}

/// The sums of one group of activation rows with the tile, written to `out` (a short last
/// group writes only its rows), with the VNNI kernel or the AVX2 one.
///
/// # Safety
/// The CPU has AVX-512 F/BW/VNNI if `vnni`, else AVX2 and FMA.
unsafe fn tile_into(
    vnni: bool,
    q6: bool,
    tiles: &[TileBlock],
    xs: &[XBlock],
    out: &mut [[f32; TILE_ROWS]],
) {
    if vnni {
        let sums = if q6 {
            tile_product::<true>(tiles, xs)
        } else {
            tile_product::<false>(tiles, xs)
        };
        for (out, sums) in out.iter_mut().zip(sums) {
            _mm512_storeu_ps(out.as_mut_ptr(), sums);
        }
    } else {
        let sums = if q6 {
            tile_product_avx2::<true>(tiles, xs)
        } else {
            tile_product_avx2::<false>(tiles, xs)
        };
        for (out, [low, high]) in out.iter_mut().zip(sums) {
            _mm256_storeu_ps(out.as_mut_ptr(), low);
            _mm256_storeu_ps(out.as_mut_ptr().add(8), high);
        }
    }
}

/// `X W^T` for each matrix, as `kquant::gemm_many`, when the CPU has AVX2 and every matrix is
/// a k-quant whose rows divide into tiles; `None` otherwise. `xq` holds the `m` quantised activation rows,
/// interleaved once for all matrices; every tile of every matrix is a task of one parallel
/// region.
pub fn gemm_many(matrices: &[KQuantMatrix], xq: &[&[BlockQ8K]]) -> Option<Vec<Vec<f32>>> {
    gemm_many_at(cpu::level(), matrices, xq)
}

/// [`gemm_many`] with the kernels of `level` (at most this CPU's).
pub(super) fn gemm_many_at(
    level: CpuLevel,
    matrices: &[KQuantMatrix],
    xq: &[&[BlockQ8K]],
) -> Option<Vec<Vec<f32>>> {
    use rayon::prelude::*;
    assert!(level <= cpu::level(), "{level:?} is above this CPU's level");
    let vnni = level >= CpuLevel::Avx512Vnni;
    if level < CpuLevel::Avx2
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
        let q6 = match matrix.format {
            KQuant::Q4K => false,
            KQuant::Q6K => true,
            KQuant::Q5_0 | KQuant::Q8_0 => unreachable!("gemm_many takes k-quants only"),
        };
        for (xs, out) in x_groups.chunks_exact(blocks).zip(out.chunks_mut(X_ROWS)) {
            // SAFETY: `level`, at most the CPU's, has the features of the kernel it picks;
            // `out` holds 16 floats per row.
            unsafe { tile_into(vnni, q6, &tiles, xs, out) };
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
