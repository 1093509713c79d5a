//! The tiles with AVX-512: 12 rows by one panel (24 accumulators of 16 lanes), and wider tiles
//! for fewer rows, so that every tile has at least 8 independent sums.

use std::arch::x86_64::*;

use super::{Tile, TileShape, PANEL};

const LANES: usize = 16;

pub(super) const SHAPE: TileShape = TileShape {
    rows: 12,
    features: |rows| match rows {
        1 => 4 * PANEL,
        2 | 3 => 2 * PANEL,
        _ => PANEL,
    },
};

/// [`super::tile_product`] with AVX-512.
///
/// # Safety
/// The CPU must have AVX-512 F; the tile's `rows` and `width` must be a shape of [`SHAPE`] (`width` a
/// multiple of `PANEL` no wider than `SHAPE` allows for `rows`), `first` a multiple of `PANEL`.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn tile_product(tile: Tile, sums: &mut [f32]) {
    macro_rules! tiles {
        ($(($r:literal, $v:literal))*) => {
            match (tile.rows, tile.width / LANES) {
                $(($r, $v) => product::<$r, $v>(tile.x, tile.k, tile.panels, tile.first, sums),)*
                (r, v) => unreachable!("a tile of {r} rows by {v} vectors"),
            }
        };
    }
    tiles!(
        (1, 2)(1, 4)(1, 6)(1, 8)(2, 2)(2, 4)(3, 2)(3, 4)(4, 2)(5, 2)(6, 2)(7, 2)(8, 2)(9, 2)(10, 2)(
            11, 2
        )(12, 2)
    )
}

/// The sums of `R` rows of `x` by `V` vectors of features from feature `first`.
#[target_feature(enable = "avx512f")]
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
    // The features after this tile's, the next a row tile reads: fetched into the cache while
    // this one computes, so that the first row tile over a panel does not wait on memory.
    let ahead = start(V) - start(0);
    let mut acc = [[_mm512_setzero_ps(); V]; R];
    for kk in 0..k {
        for base in bases {
            _mm_prefetch::<_MM_HINT_T1>(w.wrapping_add(base + ahead + kk * PANEL).cast());
        }
        let wv: [__m512; V] =
            std::array::from_fn(|v| _mm512_loadu_ps(w.add(bases[v] + kk * PANEL)));
        for (r, acc) in acc.iter_mut().enumerate() {
            let xv = _mm512_set1_ps(*x.get_unchecked(r * k + kk));
            for v in 0..V {
                acc[v] = _mm512_fmadd_ps(xv, wv[v], acc[v]);
            }
        }
    }
    for (r, acc) in acc.iter().enumerate() {
        for (v, acc) in acc.iter().enumerate() {
            _mm512_storeu_ps(sums.as_mut_ptr().add((r * V + v) * LANES), *acc);
        }
    }
}
