//! The portable tiles: the reference the SIMD tiles equal bit for bit, and the path of CPUs
//! below AVX2.

use super::{Tile, TileShape, PANEL};

pub(super) const SHAPE: TileShape = TileShape {
    rows: 4,
    features: |_| PANEL,
};

/// [`super::tile_product`] in plain Rust: each sum a chain of `mul_add` in column order.
pub(super) fn tile_product(tile: Tile, sums: &mut [f32]) {
    let Tile {
        x,
        k,
        panels,
        first,
        rows,
        width,
    } = tile;
    for (r, sums) in sums.chunks_exact_mut(width).take(rows).enumerate() {
        for (c, sum) in (first..first + width).zip(sums.iter_mut()) {
            let panel = &panels[c / PANEL * k * PANEL..];
            *sum = (0..k).fold(0f32, |acc, kk| {
                x[r * k + kk].mul_add(panel[kk * PANEL + c % PANEL], acc)
            });
        }
    }
}
