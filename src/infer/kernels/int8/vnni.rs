//! The integer sums with AVX-512 VNNI: `vpdpbusd` multiplies 64 unsigned bytes by 64 signed
//! ones and adds each four products into a 32-bit lane, one instruction for the three AVX2
//! needs for half as many (`maddubs`, `madd`, `add`).
//!
//! It multiplies unsigned by signed bytes, so each activation byte is read as `x + 128` (its
//! sign bit flipped) and `128 · Σ_k w[k]` is taken off each sum afterwards: `Σ (x + 128) · w -
//! 128 · Σ w = Σ x · w`. The instruction adds without saturating, modulo 2³², so the
//! intermediate sums may wrap and the result is still exact wherever the true sum fits an i32,
//! which `super::MAX_COLS` guarantees.

use std::arch::x86_64::*;

/// Activation rows of a register tile: each loaded weight vector serves this many rows.
const X_ROWS: usize = 4;
/// Weight rows of a register tile: each loaded activation vector serves this many rows. With
/// `X_ROWS`, 16 accumulators, 4 weight vectors and the activation vector: 21 of the 32
/// registers.
const W_ROWS: usize = 4;
/// Weight rows of a tile with a single activation row: 8 independent sums a step.
const W_ROWS_ALONE: usize = 8;

/// [`super::scalar::block_sums`] with AVX-512 VNNI, in register tiles of `X_ROWS` × `W_ROWS`
/// sums (1 × `W_ROWS_ALONE` for a row alone). `w_sums` holds each weight row's `Σ_k w[k]`.
///
/// # Safety
/// The CPU must have AVX-512 F and VNNI; `stride` must be a multiple of 64.
#[target_feature(enable = "avx512f,avx512vnni")]
pub unsafe fn block_sums(w: &[i8], w_sums: &[i32], x: &[i8], stride: usize, sums: &mut [i32]) {
    debug_assert!(stride.is_multiple_of(64));
    let (w_rows, m) = (w.len() / stride, x.len() / stride);
    debug_assert_eq!(w_sums.len(), w_rows);
    for i in (0..m).step_by(X_ROWS) {
        let r = (m - i).min(X_ROWS);
        let width = if r == 1 { W_ROWS_ALONE } else { W_ROWS };
        for j in (0..w_rows).step_by(width) {
            let (w, w_sums, x) = (&w[j * stride..], &w_sums[j..], &x[i * stride..]);
            let sums = &mut sums[i * w_rows + j..];
            macro_rules! tiles {
                ($(($r:literal, $c:literal))*) => {
                    match (r, (w_rows - j).min(width)) {
                        $(($r, $c) => tile::<$r, $c>(w, w_sums, x, stride, sums, w_rows),)*
                        (r, c) => unreachable!("a {r} × {c} tile"),
                    }
                };
            }
            tiles!(
                (4, 4)(4, 3)(4, 2)(4, 1)(3, 4)(3, 3)(3, 2)(3, 1)(2, 4)(2, 3)(2, 2)(2, 1)(1, 8)(
                    1, 7
                )(1, 6)(1, 5)(1, 4)(1, 3)(1, 2)(1, 1)
            );
        }
    }
}

/// The sums of `R` activation rows (from the start of `x`) by `C` weight rows (from the start
/// of `w`), written to `sums[r · pitch + c]`.
#[target_feature(enable = "avx512f,avx512vnni")]
unsafe fn tile<const R: usize, const C: usize>(
    w: &[i8],
    w_sums: &[i32],
    x: &[i8],
    stride: usize,
    sums: &mut [i32],
    pitch: usize,
) {
    assert!(w.len() >= C * stride && x.len() >= R * stride && w_sums.len() >= C);
    let sign_bit = _mm512_set1_epi8(i8::MIN);
    let mut acc = [[_mm512_setzero_si512(); C]; R];
    for k in (0..stride).step_by(64) {
        let wv: [__m512i; C] =
            std::array::from_fn(|c| _mm512_loadu_si512(w.as_ptr().add(c * stride + k).cast()));
        for (r, acc) in acc.iter_mut().enumerate() {
            let xv = _mm512_loadu_si512(x.as_ptr().add(r * stride + k).cast());
            let unsigned = _mm512_xor_si512(xv, sign_bit);
            for c in 0..C {
                acc[c] = _mm512_dpbusd_epi32(acc[c], unsigned, wv[c]);
            }
        }
    }
    for (r, acc) in acc.iter().enumerate() {
        for (c, acc) in acc.iter().enumerate() {
            let offset = w_sums[c].wrapping_mul(128);
            sums[r * pitch + c] = _mm512_reduce_add_epi32(*acc).wrapping_sub(offset);
        }
    }
}
