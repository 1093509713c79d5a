//! The portable dot products: the reference the SIMD kernels are tested against.

use super::blocks::{q4k_scales_mins, BlockQ4K, BlockQ5_0, BlockQ6K, BlockQ8K, BlockQ8_0};

/// Portable Q4_K · Q8_K; the reference the SIMD kernel is tested against.
pub fn dot_q4k_scalar(w: &[BlockQ4K], x: &[BlockQ8K]) -> f32 {
    w.iter()
        .zip(x)
        .map(|(w, x)| {
            let (scales, mins) = q4k_scales_mins(&w.scales);
            let mut sum = 0i32;
            for j in 0..4 {
                for l in 0..32 {
                    let byte = w.qs[32 * j + l];
                    let lo = i32::from(byte & 0x0F) * i32::from(x.qs[64 * j + l]);
                    let hi = i32::from(byte >> 4) * i32::from(x.qs[64 * j + 32 + l]);
                    sum += lo * i32::from(scales[2 * j]) + hi * i32::from(scales[2 * j + 1]);
                }
            }
            let min_sum: i32 = (0..8)
                .map(|s| {
                    i32::from(mins[s]) * (i32::from(x.bsums[2 * s]) + i32::from(x.bsums[2 * s + 1]))
                })
                .sum();
            x.d * (w.d.to_f32() * sum as f32 - w.dmin.to_f32() * min_sum as f32)
        })
        .sum()
}

/// Portable Q6_K · Q8_K; the reference the SIMD kernel is tested against.
pub fn dot_q6k_scalar(w: &[BlockQ6K], x: &[BlockQ8K]) -> f32 {
    w.iter()
        .zip(x)
        .map(|(w, x)| {
            let mut sum = 0i32;
            for half in 0..2 {
                let (ql, qh) = (&w.ql[64 * half..], &w.qh[32 * half..]);
                for l in 0..32 {
                    let quad = [
                        (ql[l] & 0x0F) | ((qh[l] & 3) << 4),
                        (ql[l + 32] & 0x0F) | (((qh[l] >> 2) & 3) << 4),
                        (ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4),
                        (ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4),
                    ];
                    for (i, q) in quad.into_iter().enumerate() {
                        let index = 128 * half + 32 * i + l;
                        sum += (i32::from(q) - 32)
                            * i32::from(x.qs[index])
                            * i32::from(w.scales[index / 16]);
                    }
                }
            }
            x.d * w.d.to_f32() * sum as f32
        })
        .sum()
}

/// The 32 values of a Q5_0 block, in order.
pub(crate) fn q5_0_values(w: &BlockQ5_0) -> [i8; 32] {
    let high = u32::from_le_bytes(w.qh);
    std::array::from_fn(|j| {
        let nibble = if j < 16 {
            w.qs[j] & 0x0F
        } else {
            w.qs[j - 16] >> 4
        };
        let fifth = ((high >> j) & 1) as u8;
        (nibble | (fifth << 4)) as i8 - 16
    })
}

/// Portable Q5_0 · Q8_0: per block, the integer sum times both scales (ggml's order).
pub fn dot_q5_0_scalar(w: &[BlockQ5_0], x: &[BlockQ8_0]) -> f32 {
    w.iter()
        .zip(x)
        .map(|(w, x)| {
            let sum: i32 = q5_0_values(w)
                .iter()
                .zip(&x.qs)
                .map(|(&a, &b)| i32::from(a) * i32::from(b))
                .sum();
            w.d.to_f32() * x.d.to_f32() * sum as f32
        })
        .sum()
}

/// Portable Q8_0 · Q8_0.
pub fn dot_q8_0_scalar(w: &[BlockQ8_0], x: &[BlockQ8_0]) -> f32 {
    w.iter()
        .zip(x)
        .map(|(w, x)| {
            let sum: i32 =
                w.qs.iter()
                    .zip(&x.qs)
                    .map(|(&a, &b)| i32::from(a) * i32::from(b))
                    .sum();
            w.d.to_f32() * x.d.to_f32() * sum as f32
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::infer::kernels::kquant::blocks::{q4k_blocks, q5_0_blocks, q6k_blocks};
    use crate::infer::kernels::kquant::blocks::{quantize_q8_0, quantize_q8k, QK_K};
    use crate::infer::kernels::testing::{activations, close};

    #[test]
    fn scalar_q4k_dot_equals_dequantised_dot() {
        // Dequantise by ggml's formula, independently of the fused integer form.
        let w = q4k_blocks(3, 11);
        let x = quantize_q8k(&activations(768, 5));
        let mut expected = 0f64;
        for (w, x) in w.iter().zip(&x) {
            let (scales, mins) = q4k_scales_mins(&w.scales);
            for i in 0..QK_K {
                let (j, l, high) = (i / 64, i % 32, (i % 64) >= 32);
                let byte = w.qs[32 * j + l];
                let q = if high { byte >> 4 } else { byte & 0x0F };
                let s = i / 32;
                let v = w.d.to_f32() * f32::from(scales[s]) * f32::from(q)
                    - w.dmin.to_f32() * f32::from(mins[s]);
                expected += f64::from(v) * f64::from(f32::from(x.qs[i]) * x.d);
            }
        }
        assert!(close(dot_q4k_scalar(&w, &x), expected as f32));
    }

    #[test]
    fn scalar_q6k_dot_equals_dequantised_dot() {
        let w = q6k_blocks(2, 17);
        let x = quantize_q8k(&activations(512, 9));
        let mut expected = 0f64;
        for (w, x) in w.iter().zip(&x) {
            for i in 0..QK_K {
                let (half, r) = (i / 128, i % 128);
                let (quarter, l) = (r / 32, r % 32);
                let ql = w.ql[64 * half + l + 32 * (quarter % 2)];
                let low = if quarter >= 2 { ql >> 4 } else { ql & 0x0F };
                let high = (w.qh[32 * half + l] >> (2 * quarter)) & 3;
                let q = i32::from(low | (high << 4)) - 32;
                let v = w.d.to_f32() * f32::from(w.scales[i / 16]) * q as f32;
                expected += f64::from(v) * f64::from(f32::from(x.qs[i]) * x.d);
            }
        }
        assert!(close(dot_q6k_scalar(&w, &x), expected as f32));
    }

    #[test]
    fn scalar_q5_0_dot_equals_dequantised_dot() {
        // Dequantised by ggml's `dequantize_row_q5_0`, value by value.
        let w = q5_0_blocks(4, 13);
        let x = quantize_q8_0(&activations(128, 7));
        let mut expected = 0f64;
        for (w, x) in w.iter().zip(&x) {
            let qh = u32::from_le_bytes(w.qh);
            for j in 0..16 {
                let x0 = i32::from(w.qs[j] & 0x0F) | ((((qh >> j) << 4) & 0x10) as i32);
                let x1 = i32::from(w.qs[j] >> 4) | (((qh >> (j + 12)) & 0x10) as i32);
                for (i, q) in [(j, x0), (j + 16, x1)] {
                    let v = w.d.to_f32() * (q - 16) as f32;
                    expected += f64::from(v) * f64::from(f32::from(x.qs[i]) * x.d.to_f32());
                }
            }
        }
        assert!(close(dot_q5_0_scalar(&w, &x), expected as f32));
    }
}
