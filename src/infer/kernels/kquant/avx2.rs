//! The dot products with AVX2 and FMA, and the helpers the AVX-512 ones share.

use super::blocks::{BlockQ4K, BlockQ5_0, BlockQ6K, BlockQ8K, BlockQ8_0};
use std::arch::x86_64::*;

/// How far ahead of the block being multiplied the weights are prefetched. The kernels do
/// enough work per cache line that the out-of-order window alone keeps too few loads in
/// flight: without prefetching one core streams 12 GB/s where it can read 30.
const PREFETCH_BYTES: usize = 2048;

/// Asks for the cache lines `PREFETCH_BYTES` after the start of `block`, which may lie
/// past the end of the matrix (a prefetch never faults).
#[inline(always)]
pub(super) unsafe fn prefetch_ahead<T>(block: &T) {
    let ahead = (block as *const T)
        .cast::<i8>()
        .wrapping_add(PREFETCH_BYTES);
    let mut line = 0;
    while line < std::mem::size_of::<T>() {
        _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(line));
        line += 64;
    }
}

/// `q4k_scales_mins` with word operations (ggml's `utmp` form): the scalar one costs as
/// much as the products themselves.
#[inline(always)]
pub(super) fn q4k_scales_mins_fast(packed: &[u8; 12]) -> ([u8; 8], [u8; 8]) {
    const KMASK1: u32 = 0x3f3f_3f3f;
    const KMASK2: u32 = 0x0f0f_0f0f;
    const KMASK3: u32 = 0x0303_0303;
    let word = |i: usize| u32::from_le_bytes(packed[4 * i..4 * i + 4].try_into().unwrap());
    let (w0, w1, w2) = (word(0), word(1), word(2));
    let scales_lo = w0 & KMASK1;
    let scales_hi = (w2 & KMASK2) | (((w0 >> 6) & KMASK3) << 4);
    let mins_lo = w1 & KMASK1;
    let mins_hi = ((w2 >> 4) & KMASK2) | (((w1 >> 6) & KMASK3) << 4);
    let join =
        |lo: u32, hi: u32| -> [u8; 8] { (u64::from(lo) | (u64::from(hi) << 32)).to_le_bytes() };
    (join(scales_lo, scales_hi), join(mins_lo, mins_hi))
}

/// Σ_s min[s] · (activation sum of the 32 values of sub-block s), as 4 partial i32 sums.
#[target_feature(enable = "avx2,fma")]
unsafe fn q4k_min_products(mins: &[u8; 8], bsums: &[i16; 16]) -> __m128i {
    let bsums = _mm256_loadu_si256(bsums.as_ptr().cast());
    let pair_sums = _mm_hadd_epi16(
        _mm256_castsi256_si128(bsums),
        _mm256_extracti128_si256(bsums, 1),
    );
    let mins = _mm_cvtepu8_epi16(_mm_loadl_epi64(mins.as_ptr().cast()));
    _mm_madd_epi16(mins, pair_sums)
}

#[target_feature(enable = "avx2,fma")]
unsafe fn hsum128(v: __m128) -> f32 {
    let s = _mm_add_ps(v, _mm_movehl_ps(v, v));
    _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)))
}

#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn hsum(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)))
}

/// Two i16 scales for the halves of a 16-lane product: lanes 0-7 get `lo`, 8-15 `hi`.
#[target_feature(enable = "avx2,fma")]
unsafe fn scale_pair(lo: i16, hi: i16) -> __m256i {
    _mm256_set_m128i(_mm_set1_epi16(hi), _mm_set1_epi16(lo))
}

#[target_feature(enable = "avx2,fma")]
pub unsafe fn dot_q4k<const R: usize>(w: &[BlockQ4K], xs: [&[BlockQ8K]; R]) -> [f32; R] {
    let nibble = _mm256_set1_epi8(0x0F);
    let mut acc = [_mm256_setzero_ps(); R];
    let mut acc_min = [_mm_setzero_ps(); R];
    for (b, w) in w.iter().enumerate() {
        prefetch_ahead(w);
        let (scales, mins) = q4k_scales_mins_fast(&w.scales);
        let (d, dmin) = (w.d.to_f32(), w.dmin.to_f32());
        let mut q = [_mm256_setzero_si256(); 8];
        for j in 0..4 {
            let q4 = _mm256_loadu_si256(w.qs.as_ptr().add(32 * j).cast());
            q[2 * j] = _mm256_and_si256(q4, nibble);
            q[2 * j + 1] = _mm256_and_si256(_mm256_srli_epi16(q4, 4), nibble);
        }
        for r in 0..R {
            let x = &xs[r][b];
            acc_min[r] = _mm_fmadd_ps(
                _mm_set1_ps(x.d * dmin),
                _mm_cvtepi32_ps(q4k_min_products(&mins, &x.bsums)),
                acc_min[r],
            );
            let mut sum = _mm256_setzero_si256();
            for (s, q) in q.iter().enumerate() {
                let xq = _mm256_loadu_si256(x.qs.as_ptr().add(32 * s).cast());
                let p = _mm256_madd_epi16(
                    _mm256_maddubs_epi16(*q, xq),
                    _mm256_set1_epi16(i16::from(scales[s])),
                );
                sum = _mm256_add_epi32(sum, p);
            }
            acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(x.d * d), _mm256_cvtepi32_ps(sum), acc[r]);
        }
    }
    std::array::from_fn(|r| hsum(acc[r]) - hsum128(acc_min[r]))
}

#[target_feature(enable = "avx2,fma")]
pub unsafe fn dot_q6k<const R: usize>(w: &[BlockQ6K], xs: [&[BlockQ8K]; R]) -> [f32; R] {
    let low4 = _mm256_set1_epi8(0x0F);
    let two_bits = _mm256_set1_epi8(3);
    let mut acc = [_mm256_setzero_ps(); R];
    for (b, w) in w.iter().enumerate() {
        prefetch_ahead(w);
        let d = w.d.to_f32();
        let scales16 = _mm256_cvtepi8_epi16(_mm_loadu_si128(w.scales.as_ptr().cast()));
        // The 256 values (0..63, stored plus 32) in eight runs of 32, in order.
        let mut q = [_mm256_setzero_si256(); 8];
        for half in 0..2 {
            let ql0 = _mm256_loadu_si256(w.ql.as_ptr().add(64 * half).cast());
            let ql1 = _mm256_loadu_si256(w.ql.as_ptr().add(64 * half + 32).cast());
            let qh = _mm256_loadu_si256(w.qh.as_ptr().add(32 * half).cast());
            let high = |shift: i32| -> __m256i {
                let bits = match shift {
                    0 => qh,
                    2 => _mm256_srli_epi16(qh, 2),
                    4 => _mm256_srli_epi16(qh, 4),
                    _ => _mm256_srli_epi16(qh, 6),
                };
                _mm256_slli_epi16(_mm256_and_si256(bits, two_bits), 4)
            };
            q[4 * half] = _mm256_or_si256(_mm256_and_si256(ql0, low4), high(0));
            q[4 * half + 1] = _mm256_or_si256(_mm256_and_si256(ql1, low4), high(2));
            q[4 * half + 2] =
                _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), low4), high(4));
            q[4 * half + 3] =
                _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), low4), high(6));
        }
        for r in 0..R {
            let x = &xs[r][b];
            // Values are stored plus 32: subtract 32 · Σ scale[s] · (sum of sub-block s).
            let bsums = _mm256_loadu_si256(x.bsums.as_ptr().cast());
            let offset = _mm256_slli_epi32(_mm256_madd_epi16(scales16, bsums), 5);
            let mut sum = _mm256_setzero_si256();
            for (i, q) in q.iter().enumerate() {
                let xq = _mm256_loadu_si256(x.qs.as_ptr().add(32 * i).cast());
                let scales = scale_pair(i16::from(w.scales[2 * i]), i16::from(w.scales[2 * i + 1]));
                sum =
                    _mm256_add_epi32(sum, _mm256_madd_epi16(_mm256_maddubs_epi16(*q, xq), scales));
            }
            acc[r] = _mm256_fmadd_ps(
                _mm256_set1_ps(x.d * d),
                _mm256_cvtepi32_ps(_mm256_sub_epi32(sum, offset)),
                acc[r],
            );
        }
    }
    std::array::from_fn(|r| hsum(acc[r]))
}

/// The 32 values of a Q5_0 block as signed bytes, in order: each nibble with 0xF0 set where
/// its fifth bit is clear, which is the nibble plus 16 times that bit, minus 16 (ggml's
/// `bytes_from_nibbles_32` and `bytes_from_bits_32`).
#[target_feature(enable = "avx2,fma")]
unsafe fn q5_0_values(w: &BlockQ5_0) -> __m256i {
    let qs = _mm_loadu_si128(w.qs.as_ptr().cast());
    let nibbles = _mm256_and_si256(
        _mm256_set_m128i(_mm_srli_epi16(qs, 4), qs),
        _mm256_set1_epi8(0x0F),
    );
    // Byte j takes byte j / 8 of the fifth bits, then tests its bit j % 8.
    let bytes_of_bits = _mm256_shuffle_epi8(
        _mm256_set1_epi32(i32::from_le_bytes(w.qh)),
        _mm256_set_epi64x(
            0x0303_0303_0303_0303,
            0x0202_0202_0202_0202,
            0x0101_0101_0101_0101,
            0,
        ),
    );
    let bit = _mm256_set1_epi64x(0x8040_2010_0804_0201u64 as i64);
    let set = _mm256_cmpeq_epi8(_mm256_and_si256(bytes_of_bits, bit), bit);
    _mm256_or_si256(
        nibbles,
        _mm256_andnot_si256(set, _mm256_set1_epi8(0xF0u8 as i8)),
    )
}

/// The dot product of 32-value blocks with Q8_0 activations: per block, the integer sum of
/// the signed bytes (`maddubs` multiplies unsigned by signed, so |w| times x with w's sign),
/// times the two scales, accumulated in eight lanes and summed at the end (ggml's order).
#[inline(always)]
unsafe fn dot_32<B, const R: usize>(
    w: &[B],
    xs: [&[BlockQ8_0]; R],
    values_and_scale: impl Fn(&B) -> (__m256i, f32),
) -> [f32; R] {
    let ones = _mm256_set1_epi16(1);
    let mut acc = [_mm256_setzero_ps(); R];
    for (b, w) in w.iter().enumerate() {
        prefetch_ahead(w);
        let (q, d) = values_and_scale(w);
        let magnitude = _mm256_sign_epi8(q, q);
        for r in 0..R {
            let x = &xs[r][b];
            let xq = _mm256_loadu_si256(x.qs.as_ptr().cast());
            let pairs = _mm256_maddubs_epi16(magnitude, _mm256_sign_epi8(xq, q));
            let sum = _mm256_madd_epi16(pairs, ones);
            acc[r] = _mm256_fmadd_ps(
                _mm256_set1_ps(d * x.d.to_f32()),
                _mm256_cvtepi32_ps(sum),
                acc[r],
            );
        }
    }
    std::array::from_fn(|r| hsum(acc[r]))
}

#[target_feature(enable = "avx2,fma")]
pub unsafe fn dot_q5_0<const R: usize>(w: &[BlockQ5_0], xs: [&[BlockQ8_0]; R]) -> [f32; R] {
    dot_32(w, xs, |w| (q5_0_values(w), w.d.to_f32()))
}

#[target_feature(enable = "avx2,fma")]
pub unsafe fn dot_q8_0<const R: usize>(w: &[BlockQ8_0], xs: [&[BlockQ8_0]; R]) -> [f32; R] {
    dot_32(w, xs, |w| {
        (_mm256_loadu_si256(w.qs.as_ptr().cast()), w.d.to_f32())
    })
}
