//! The k-quant dot products with AVX-512 F and BW.

use super::avx2::{hsum, prefetch_ahead, q4k_scales_mins_fast};
use super::blocks::{BlockQ4K, BlockQ6K, BlockQ8K};
use std::arch::x86_64::*;

/// Sixteen-bit lane indices for `_mm512_permutexvar_epi16`: lane `i` takes element
/// `groups[i / width]`.
const fn lane_index(groups: [u16; 4], width: usize) -> [u16; 32] {
    let mut index = [0u16; 32];
    let mut i = 0;
    while i < 32 {
        index[i] = groups[(i / width) % 4];
        i += 1;
    }
    index
}

/// Q4_K: one 64-value group (two sub-blocks) per step. The group's 32 bytes are loaded
/// into both halves of a register and shifted per half (low nibbles below, high nibbles
/// above), which puts the weights in the order of the activations: these are plain loads,
/// folded into the multiplies. Each product lane takes its sub-block's scale by a lane
/// permutation of the eight scales.
#[target_feature(enable = "avx512f,avx512bw,avx2,fma")]
pub unsafe fn dot_q4k_avx512<const R: usize>(w: &[BlockQ4K], xs: [&[BlockQ8K]; R]) -> [f32; R] {
    // Byte shuffles that spread scale 2j over the low 256 bits and 2j+1 over the high
    // ones, zero-extended to 16 bits.
    let index: [__m512i; 4] = std::array::from_fn(|j| {
        let lo = _mm256_set1_epi16(0x8000u16 as i16 | (2 * j) as i16);
        let hi = _mm256_set1_epi16(0x8000u16 as i16 | (2 * j + 1) as i16);
        _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1)
    });
    let nibble_shift = _mm512_inserti64x4(_mm512_setzero_si512(), _mm256_set1_epi16(4), 1);
    let nibble = _mm512_set1_epi8(0x0F);
    // Spreads the eight mins to 16-bit lanes, each twice: one per 16-value activation sum.
    let min_index = {
        let pair = |m: i16| 0x8000u16 as i16 | m;
        _mm256_setr_epi16(
            pair(0),
            pair(0),
            pair(1),
            pair(1),
            pair(2),
            pair(2),
            pair(3),
            pair(3),
            pair(4),
            pair(4),
            pair(5),
            pair(5),
            pair(6),
            pair(6),
            pair(7),
            pair(7),
        )
    };
    let mut acc = [_mm512_setzero_ps(); R];
    let mut acc_min = [_mm256_setzero_ps(); R];
    for (b, w) in w.iter().enumerate() {
        prefetch_ahead(w);
        let (scales, mins) = q4k_scales_mins_fast(&w.scales);
        let (d, dmin) = (w.d.to_f32(), w.dmin.to_f32());
        let scales8 = _mm512_set1_epi64(i64::from_le_bytes(scales));
        let mins16 = _mm256_shuffle_epi8(_mm256_set1_epi64x(i64::from_le_bytes(mins)), min_index);
        let mut q = [_mm512_setzero_si512(); 4];
        let mut sc = [_mm512_setzero_si512(); 4];
        for j in 0..4 {
            let bytes =
                _mm512_broadcast_i64x4(_mm256_loadu_si256(w.qs.as_ptr().add(32 * j).cast()));
            q[j] = _mm512_and_si512(_mm512_srlv_epi16(bytes, nibble_shift), nibble);
            sc[j] = _mm512_shuffle_epi8(scales8, index[j]);
        }
        for r in 0..R {
            let x = &xs[r][b];
            let bsums = _mm256_loadu_si256(x.bsums.as_ptr().cast());
            acc_min[r] = _mm256_fmadd_ps(
                _mm256_set1_ps(x.d * dmin),
                _mm256_cvtepi32_ps(_mm256_madd_epi16(mins16, bsums)),
                acc_min[r],
            );
            let xq = x.qs.as_ptr();
            let mut sum = _mm512_setzero_si512();
            for j in 0..4 {
                let x = _mm512_loadu_si512(xq.add(64 * j).cast());
                sum =
                    _mm512_add_epi32(sum, _mm512_madd_epi16(_mm512_maddubs_epi16(q[j], x), sc[j]));
            }
            acc[r] = _mm512_fmadd_ps(_mm512_set1_ps(x.d * d), _mm512_cvtepi32_ps(sum), acc[r]);
        }
    }
    std::array::from_fn(|r| _mm512_reduce_add_ps(acc[r]) - hsum(acc_min[r]))
}

/// Q6_K: one 128-value half per step. Its 64 `ql` bytes give values 0-63 (low nibbles)
/// and 64-127 (high nibbles) of the half in order, each joined with two bits of `qh`
/// shifted per 256-bit lane; each product lane takes its 16-value group's scale.
#[target_feature(enable = "avx512f,avx512bw,avx2,fma")]
pub unsafe fn dot_q6k_avx512<const R: usize>(w: &[BlockQ6K], xs: [&[BlockQ8K]; R]) -> [f32; R] {
    const INDEX: [[u16; 32]; 4] = [
        lane_index([0, 1, 2, 3], 8),
        lane_index([4, 5, 6, 7], 8),
        lane_index([8, 9, 10, 11], 8),
        lane_index([12, 13, 14, 15], 8),
    ];
    let index: [__m512i; 4] = INDEX.map(|i| _mm512_loadu_si512(i.as_ptr().cast()));
    // qh bit pairs: (0, 2) for the low nibbles' two lanes, (4, 6) for the high ones.
    let shift_low = _mm512_inserti64x4(_mm512_setzero_si512(), _mm256_set1_epi16(2), 1);
    let shift_high = _mm512_inserti64x4(_mm512_set1_epi16(4), _mm256_set1_epi16(6), 1);
    let low4 = _mm512_set1_epi8(0x0F);
    let two_bits = _mm512_set1_epi8(3);
    let mut acc = [_mm512_setzero_ps(); R];
    for (b, w) in w.iter().enumerate() {
        prefetch_ahead(w);
        let d = w.d.to_f32();
        let scales16 = _mm256_cvtepi8_epi16(_mm_loadu_si128(w.scales.as_ptr().cast()));
        let scales512 = _mm512_castsi256_si512(scales16);
        // [half][low, high] values (0..63, stored plus 32) with the matching scale lanes.
        let mut q = [[_mm512_setzero_si512(); 2]; 2];
        let mut sc = [[_mm512_setzero_si512(); 2]; 2];
        for half in 0..2 {
            let ql = _mm512_loadu_si512(w.ql.as_ptr().add(64 * half).cast());
            let qh =
                _mm512_broadcast_i64x4(_mm256_loadu_si256(w.qh.as_ptr().add(32 * half).cast()));
            let high = |shift: __m512i| {
                _mm512_slli_epi16(_mm512_and_si512(_mm512_srlv_epi16(qh, shift), two_bits), 4)
            };
            q[half] = [
                _mm512_or_si512(_mm512_and_si512(ql, low4), high(shift_low)),
                _mm512_or_si512(
                    _mm512_and_si512(_mm512_srli_epi16(ql, 4), low4),
                    high(shift_high),
                ),
            ];
            sc[half] = [
                _mm512_permutexvar_epi16(index[2 * half], scales512),
                _mm512_permutexvar_epi16(index[2 * half + 1], scales512),
            ];
        }
        for r in 0..R {
            let x = &xs[r][b];
            // Values are stored plus 32: subtract 32 · Σ scale[s] · (sum of sub-block s).
            let bsums = _mm256_loadu_si256(x.bsums.as_ptr().cast());
            let offset = _mm256_slli_epi32(_mm256_madd_epi16(scales16, bsums), 5);
            let mut sum = _mm512_setzero_si512();
            for half in 0..2 {
                let x_low = _mm512_loadu_si512(x.qs.as_ptr().add(128 * half).cast());
                let x_high = _mm512_loadu_si512(x.qs.as_ptr().add(128 * half + 64).cast());
                sum = _mm512_add_epi32(
                    sum,
                    _mm512_add_epi32(
                        _mm512_madd_epi16(_mm512_maddubs_epi16(q[half][0], x_low), sc[half][0]),
                        _mm512_madd_epi16(_mm512_maddubs_epi16(q[half][1], x_high), sc[half][1]),
                    ),
                );
            }
            let sum = _mm512_sub_epi32(sum, _mm512_zextsi256_si512(offset));
            acc[r] = _mm512_fmadd_ps(_mm512_set1_ps(x.d * d), _mm512_cvtepi32_ps(sum), acc[r]);
        }
    }
    std::array::from_fn(|r| _mm512_reduce_add_ps(acc[r]))
}
