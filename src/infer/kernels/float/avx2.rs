//! The tiles with AVX2 and FMA: 3 rows by one panel (12 accumulators of 8 lanes, with the
//! three broadcast values and one weight vector at a time all 16 registers), and a wider tile
//! for one row, so that every tile has at least 8 independent sums.

use std::arch::x86_64::*;

use super::{Tile, TileShape, PANEL};

const LANES: usize = 8;

pub(super) const SHAPE: TileShape = TileShape {
    rows: 3,
    features: |rows| match rows {
        1 => 2 * PANEL,
        _ => PANEL,
    },
};

/// [`super::tile_product`] with AVX2 and FMA.
///
/// # Safety
/// The CPU must have AVX2 and FMA; the tile's `rows` and `width` must be a shape of [`SHAPE`] (`width` a
/// multiple of `PANEL` no wider than `SHAPE` allows for `rows`), `first` a multiple of `PANEL`.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn tile_product(tile: Tile, sums: &mut [f32]) {
    macro_rules! tiles {
        ($(($r:literal, $v:literal))*) => {
            match (tile.rows, tile.width / LANES) {
                $(($r, $v) => product::<$r, $v>(tile.x, tile.k, tile.panels, tile.first, sums),)*
                (r, v) => unreachable!("a tile of {r} rows by {v} vectors"),
            }
        };
    }
    tiles!((1, 4)(1, 8)(2, 4)(3, 4))
}

/// The sums of `R` rows of `x` by `V` vectors of features from feature `first`.
#[target_feature(enable = "avx2,fma")]
unsafe fn product<const R: usize, const V: usize>(
    x: &[f32],
    k: usize,
    panels: &[f32],
    first: usize,
    sums: &mut [f32],
) {
    let start = |v: usize| {
        let c = first + v * LANES;
        c / PANEL * k * PANEL + c % PANEL
    };
    assert!(x.len() >= R * k && sums.len() >= R * V * LANES);
    assert!(panels.len() >= start(V - 1) + (k - 1) * PANEL + LANES);
    let w = panels.as_ptr();
    let bases: [usize; V] = std::array::from_fn(start);
    // The features after this tile's (`avx512.rs` says why), one cache line per two vectors.
    let ahead = start(V) - start(0);
    let mut acc = [[_mm256_setzero_ps(); V]; R];
    for kk in 0..k {
        for base in bases.iter().step_by(2) {
            _mm_prefetch::<_MM_HINT_T1>(w.wrapping_add(base + ahead + kk * PANEL).cast());
        }
        let xv: [__m256; R] = std::array::from_fn(|r| _mm256_set1_ps(*x.get_unchecked(r * k + kk)));
        for v in 0..V {
            let wv = _mm256_loadu_ps(w.add(bases[v] + kk * PANEL));
            for r in 0..R {
                acc[r][v] = _mm256_fmadd_ps(xv[r], wv, acc[r][v]);
            }
        }
    }
    for (r, acc) in acc.iter().enumerate() {
        for (v, acc) in acc.iter().enumerate() {
            _mm256_storeu_ps(sums.as_mut_ptr().add((r * V + v) * LANES), *acc);
        }
    }
}
