//! The integer sums with AVX2, for CPUs without AVX-512 VNNI (`vnni.rs` serves those).

use std::arch::x86_64::*;

/// Activation rows of a register tile: each loaded weight vector serves this many rows.
const X_ROWS: usize = 4;
/// Weight rows of a register tile: each loaded activation vector serves this many rows. With
/// `X_ROWS`, 8 accumulators, 2 weight vectors and their magnitudes, the activation vector and
/// the ones fill 14 of the 16 registers.
const W_ROWS: usize = 2;
/// Weight rows of a tile with a single activation row (a one-row product, or the last row of
/// a count that is not a multiple of 4): 4 independent sums a step rather than 2, each loaded
/// activation vector used 4 times. On a shared 2-core Zen 3 the bench could not tell it from
/// 1 × 2 tiles (the differences were within the noise); it is kept as the form with the longer
/// dependency-free chains.
const W_ROWS_ALONE: usize = 4;

/// [`super::scalar::block_sums`] with AVX2, in register tiles of `X_ROWS` × `W_ROWS` sums
/// (1 × `W_ROWS_ALONE` for a row alone).
///
/// # Safety
/// The CPU must have AVX2; `stride` must be a multiple of 32.
#[target_feature(enable = "avx2")]
pub unsafe fn block_sums(w: &[i8], x: &[i8], stride: usize, sums: &mut [i32]) {
    debug_assert!(stride.is_multiple_of(32));
    let (w_rows, m) = (w.len() / stride, x.len() / stride);
    for i in (0..m).step_by(X_ROWS) {
        let r = (m - i).min(X_ROWS);
        let width = if r == 1 { W_ROWS_ALONE } else { W_ROWS };
        for j in (0..w_rows).step_by(width) {
            let (w, x) = (&w[j * stride..], &x[i * stride..]);
            let sums = &mut sums[i * w_rows + j..];
            macro_rules! tiles {
                ($(($r:literal, $c:literal))*) => {
                    match (r, (w_rows - j).min(width)) {
                        $(($r, $c) => tile::<$r, $c>(w, x, stride, sums, w_rows),)*
                        (r, c) => unreachable!("a {r} × {c} tile"),
                    }
                };
            }
            tiles!((4, 2)(4, 1)(3, 2)(3, 1)(2, 2)(2, 1)(1, 4)(1, 3)(1, 2)(1, 1));
        }
    }
}

/// The sums of `R` activation rows (from the start of `x`) by `C` weight rows (from the start
/// of `w`), written to `sums[r · pitch + c]`.
///
/// Signed × signed bytes through `maddubs` (unsigned × signed): `|w| · (x · sign w) = w · x`.
/// Each 16-bit pair sum is at most 2 · 127 · 127 = 32258, below `maddubs`' saturation, because
/// neither side is ever -128 (`super::quantize_row`), so every sum is exact.
#[target_feature(enable = "avx2")]
unsafe fn tile<const R: usize, const C: usize>(
    w: &[i8],
    x: &[i8],
    stride: usize,
    sums: &mut [i32],
    pitch: usize,
) {
    assert!(w.len() >= C * stride && x.len() >= R * stride);
    let ones = _mm256_set1_epi16(1);
    let mut acc = [[_mm256_setzero_si256(); C]; R];
    for k in (0..stride).step_by(32) {
        let mut wv = [_mm256_setzero_si256(); C];
        let mut magnitude = [_mm256_setzero_si256(); C];
        for c in 0..C {
            wv[c] = _mm256_loadu_si256(w.as_ptr().add(c * stride + k).cast());
            magnitude[c] = _mm256_sign_epi8(wv[c], wv[c]);
        }
        for (r, acc) in acc.iter_mut().enumerate() {
            let xv = _mm256_loadu_si256(x.as_ptr().add(r * stride + k).cast());
            for c in 0..C {
                let pairs = _mm256_maddubs_epi16(magnitude[c], _mm256_sign_epi8(xv, wv[c]));
                acc[c] = _mm256_add_epi32(acc[c], _mm256_madd_epi16(pairs, ones));
            }
        }
    }
    for (r, acc) in acc.iter().enumerate() {
        for (c, acc) in acc.iter().enumerate() {
            sums[r * pitch + c] = hsum(*acc);
        }
    }
}

#[target_feature(enable = "avx2")]
unsafe fn hsum(v: __m256i) -> i32 {
    let s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b01_00_11_10));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b10_11_00_01));
    _mm_cvtsi128_si32(s)
}
