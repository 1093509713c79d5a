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

use super::kquant::{q4k_scales_mins, BlockQ4K, BlockQ6K, BlockQ8K, KQuant, KQuantMatrix, QK_K};
use std::arch::x86_64::*;

/// Weight rows per tile: one 512-bit register of i32 sums.
const TILE_ROWS: usize = 16;
/// Activation rows multiplied together against a tile (their sums live in registers).
const X_ROWS: usize = 8;

/// Whether this CPU has the instructions (checked once).
pub fn available() -> bool {
    static AVAILABLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *AVAILABLE.get_or_init(|| {
        is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx512bw")
            && is_x86_feature_detected!("avx512vnni")
            && std::env::var("PRECIS_KQUANT").map_or(true, |v| v != "avx2")
    })
}

/// One 256-value block of 16 weight rows: values as unsigned bytes in `[value / 4][row][value % 4]`
/// order, the rows' integer sub-block scales (and, for Q4_K, mins), and their float factors.
struct TileBlock {
    values: [[u8; TILE_ROWS * 4]; QK_K / 4],
    /// Q4_K: 8 sub-blocks of 32; Q6_K: 16 sub-blocks of 16.
    scales: [[i32; TILE_ROWS]; 16],
    mins: [[i32; TILE_ROWS]; 8],
    d: [f32; TILE_ROWS],
    dmin: [f32; TILE_ROWS],
}

impl TileBlock {
    fn zeroed() -> Box<Self> {
        Box::new(Self {
            values: [[0; TILE_ROWS * 4]; QK_K / 4],
            scales: [[0; TILE_ROWS]; 16],
            mins: [[0; TILE_ROWS]; 8],
            d: [0.0; TILE_ROWS],
            dmin: [0.0; TILE_ROWS],
        })
    }

    fn put(&mut self, row: usize, value: usize, q: u8) {
        self.values[value / 4][row * 4 + value % 4] = q;
    }

    fn fill_q4k(&mut self, row: usize, w: &BlockQ4K) {
        let (scales, mins) = q4k_scales_mins(&w.scales);
        (self.d[row], self.dmin[row]) = (w.d.to_f32(), w.dmin.to_f32());
        for s in 0..8 {
            self.scales[s][row] = i32::from(scales[s]);
            self.mins[s][row] = i32::from(mins[s]);
        }
        for j in 0..4 {
            for l in 0..32 {
                let byte = w.qs[32 * j + l];
                self.put(row, 64 * j + l, byte & 0x0F);
                self.put(row, 64 * j + 32 + l, byte >> 4);
            }
        }
    }

    fn fill_q6k(&mut self, row: usize, w: &BlockQ6K) {
        self.d[row] = w.d.to_f32();
        for s in 0..16 {
            self.scales[s][row] = i32::from(w.scales[s]);
        }
        for half in 0..2 {
            let (ql, qh) = (&w.ql[64 * half..], &w.qh[32 * half..]);
            for l in 0..32 {
                let base = 128 * half + l;
                self.put(row, base, (ql[l] & 0x0F) | ((qh[l] & 3) << 4));
                self.put(
                    row,
                    base + 32,
                    (ql[l + 32] & 0x0F) | (((qh[l] >> 2) & 3) << 4),
                );
                self.put(row, base + 64, (ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4));
                self.put(
                    row,
                    base + 96,
                    (ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4),
                );
            }
        }
    }
}

/// The tile blocks of weight rows `first..first + 16`, one per 256 columns.
fn unpack(matrix: &KQuantMatrix, first: usize) -> Vec<Box<TileBlock>> {
    let blocks = matrix.cols / QK_K;
    let mut tiles: Vec<Box<TileBlock>> = (0..blocks).map(|_| TileBlock::zeroed()).collect();
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
        }
    }
    tiles
}

/// Sums for `X_ROWS` activation rows (fewer at the end) against one tile row group: writes
/// `out[r][0..16]`.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn tile_product(
    format: KQuant,
    tiles: &[Box<TileBlock>],
    xs: &[&[BlockQ8K]],
    out: &mut [[f32; 16]],
) {
    let (sub_blocks, groups_per_sub) = match format {
        KQuant::Q4K => (8, 8),
        KQuant::Q6K => (16, 4),
    };
    let mut acc = [_mm512_setzero_ps(); X_ROWS];
    for (b, tile) in tiles.iter().enumerate() {
        // Per row, the block's integer sums as in `kquant`: Σ_s scale·(Σ q·x), and for Q4_K
        // Σ_s min·(Σ x); exact, so only the float steps below differ from the row kernels.
        let mut scaled = [_mm512_setzero_si512(); X_ROWS];
        let mut mins = [_mm512_setzero_si512(); X_ROWS];
        for s in 0..sub_blocks {
            let mut sums = [_mm512_setzero_si512(); X_ROWS];
            for g in s * groups_per_sub..(s + 1) * groups_per_sub {
                let w = _mm512_loadu_si512(tile.values[g].as_ptr().cast());
                for (r, x) in xs.iter().enumerate() {
                    let four = std::ptr::read_unaligned(x[b].qs.as_ptr().add(4 * g).cast::<i32>());
                    sums[r] = _mm512_dpbusd_epi32(sums[r], w, _mm512_set1_epi32(four));
                }
            }
            let scale = _mm512_loadu_si512(tile.scales[s].as_ptr().cast());
            for (r, x) in xs.iter().enumerate() {
                let x = &x[b];
                match format {
                    KQuant::Q4K => {
                        let pair = i32::from(x.bsums[2 * s]) + i32::from(x.bsums[2 * s + 1]);
                        let min = _mm512_loadu_si512(tile.mins[s].as_ptr().cast());
                        mins[r] = _mm512_add_epi32(
                            mins[r],
                            _mm512_mullo_epi32(min, _mm512_set1_epi32(pair)),
                        );
                    }
                    KQuant::Q6K => {
                        // Values are stored plus 32.
                        let offset = _mm512_set1_epi32(32 * i32::from(x.bsums[s]));
                        sums[r] = _mm512_sub_epi32(sums[r], offset);
                    }
                }
                scaled[r] = _mm512_add_epi32(scaled[r], _mm512_mullo_epi32(sums[r], scale));
            }
        }
        let d = _mm512_loadu_ps(tile.d.as_ptr());
        let dmin = _mm512_loadu_ps(tile.dmin.as_ptr());
        for (r, x) in xs.iter().enumerate() {
            let xd = _mm512_set1_ps(x[b].d);
            let mut block = _mm512_mul_ps(_mm512_mul_ps(d, xd), _mm512_cvtepi32_ps(scaled[r]));
            if format == KQuant::Q4K {
                block =
                    _mm512_fnmadd_ps(_mm512_mul_ps(dmin, xd), _mm512_cvtepi32_ps(mins[r]), block);
            }
            acc[r] = _mm512_add_ps(acc[r], block);
        }
    }
    for (r, out) in out.iter_mut().enumerate().take(xs.len()) {
        _mm512_storeu_ps(out.as_mut_ptr(), acc[r]);
    }
}

/// `X W^T` as `kquant::gemm`, when `available()` and the rows divide into tiles; `None`
/// otherwise. `xq` holds the `m` quantised activation rows.
pub fn gemm(matrix: &KQuantMatrix, xq: &[&[BlockQ8K]]) -> Option<Vec<f32>> {
    use rayon::prelude::*;
    if !available() || !matrix.rows.is_multiple_of(TILE_ROWS) {
        return None;
    }
    let (n, m) = (matrix.rows, xq.len());
    let mut by_tile = vec![[0f32; 16]; n / TILE_ROWS * m];
    by_tile.par_chunks_mut(m).enumerate().for_each(|(t, out)| {
        let tiles = unpack(matrix, t * TILE_ROWS);
        for (xs, out) in xq.chunks(X_ROWS).zip(out.chunks_mut(X_ROWS)) {
            // SAFETY: `available` checked the CPU features the kernel enables.
            unsafe { tile_product(matrix.format, &tiles, xs, out) };
        }
    });
    let mut out = vec![0f32; m * n];
    for (t, column) in by_tile.chunks_exact(m).enumerate() {
        for (i, rows) in column.iter().enumerate() {
            out[i * n + t * TILE_ROWS..i * n + (t + 1) * TILE_ROWS].copy_from_slice(rows);
        }
    }
    Some(out)
}
