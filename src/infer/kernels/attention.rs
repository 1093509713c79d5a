//! The decoding attention's kernels: query scores against a block of f16 keys (portable, the
//! portable form compiled for AVX2, and AVX-512), and weighted sums of value rows.

#[cfg(target_arch = "x86_64")]
use crate::infer::cpu::{self, CpuLevel};
use half::{f16, slice::HalfFloatSliceExt};

/// Positions per block of the key cache.
pub(crate) const KEY_BLOCK: usize = 16;

/// Query heads scored against a key block at a time: the block's rows are converted from
/// f16 once for all of them.
pub(crate) const HEADS_PER_PASS: usize = 8;

/// `out[r · stride + i] = scale · (query r · key i)` for the query heads in `queries` (at most
/// `HEADS_PER_PASS`, `[head][dim]`) and the `KEY_BLOCK` keys of `block` (`[dim][position]`).
pub(crate) type BlockScores = fn(&[f32], &[f16], f32, &mut [f32], usize);

/// The block scores for this CPU: AVX-512 where its level has it, else the portable form,
/// compiled for AVX2 where the level has that.
pub(crate) fn block_scores_kernel() -> BlockScores {
    #[cfg(target_arch = "x86_64")]
    if cpu::level() >= CpuLevel::Avx512 {
        return |queries, block, scale, out, stride| {
            let hd = block.len() / KEY_BLOCK;
            macro_rules! heads {
                ($($r:literal)*) => {
                    match queries.len() / hd {
                        // SAFETY: the CPU has AVX-512 F (its level is AVX-512 or above).
                        $($r => unsafe {
                            block_scores_avx512::<$r>(queries, block, scale, out, stride)
                        },)*
                        n => unreachable!("{n} heads in one pass"),
                    }
                };
            }
            heads!(1 2 3 4 5 6 7 8)
        };
    }
    #[cfg(target_arch = "x86_64")]
    if cpu::level() >= CpuLevel::Avx2 {
        return |queries, block, scale, out, stride| {
            cpu::vectorized(|| block_scores(queries, block, scale, out, stride))
        };
    }
    block_scores
}

/// Each key dimension is a row of `KEY_BLOCK` values, multiplied by one query value and added
/// to the head's scores: fixed-size arrays the compiler keeps in vector registers.
#[inline(always)]
fn block_scores(queries: &[f32], block: &[f16], scale: f32, out: &mut [f32], stride: usize) {
    let hd = block.len() / KEY_BLOCK;
    let mut acc = [[0f32; KEY_BLOCK]; HEADS_PER_PASS];
    let mut keys = [0f32; KEY_BLOCK];
    for (d, row) in block.chunks_exact(KEY_BLOCK).enumerate() {
        row.convert_to_f32_slice(&mut keys);
        for (acc, query) in acc.iter_mut().zip(queries.chunks_exact(hd)) {
            for (a, k) in acc.iter_mut().zip(keys) {
                *a = query[d].mul_add(k, *a);
            }
        }
    }
    for (r, acc) in acc.iter().take(queries.len() / hd).enumerate() {
        for (s, a) in out[r * stride..][..KEY_BLOCK].iter_mut().zip(acc) {
            *s = a * scale;
        }
    }
}

/// [`block_scores`] with AVX-512 for `R` heads: a row of keys converted from f16 in one
/// instruction, then one multiply-add per head, in two chains per head (even and odd
/// dimensions) so that enough are in flight.
///
/// # Safety
/// The CPU has AVX-512 F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn block_scores_avx512<const R: usize>(
    queries: &[f32],
    block: &[f16],
    scale: f32,
    out: &mut [f32],
    stride: usize,
) {
    use std::arch::x86_64::*;
    let hd = block.len() / KEY_BLOCK;
    assert!(queries.len() >= R * hd && out.len() >= (R - 1) * stride + KEY_BLOCK);
    let (q, k) = (queries.as_ptr(), block.as_ptr().cast::<__m256i>());
    let row = |d: usize| _mm512_cvtph_ps(_mm256_loadu_si256(k.add(d)));
    let mut even = [_mm512_setzero_ps(); R];
    let mut odd = [_mm512_setzero_ps(); R];
    let mut d = 0;
    while d + 2 <= hd {
        let (k0, k1) = (row(d), row(d + 1));
        for r in 0..R {
            even[r] = _mm512_fmadd_ps(_mm512_set1_ps(*q.add(r * hd + d)), k0, even[r]);
            odd[r] = _mm512_fmadd_ps(_mm512_set1_ps(*q.add(r * hd + d + 1)), k1, odd[r]);
        }
        d += 2;
    }
    if d < hd {
        let k0 = row(d);
        for (r, even) in even.iter_mut().enumerate() {
            *even = _mm512_fmadd_ps(_mm512_set1_ps(*q.add(r * hd + d)), k0, *even);
        }
    }
    for (r, (even, odd)) in even.into_iter().zip(odd).enumerate() {
        let sum = _mm512_mul_ps(_mm512_add_ps(even, odd), _mm512_set1_ps(scale));
        _mm512_storeu_ps(out.as_mut_ptr().add(r * stride), sum);
    }
}

/// `out += Σ_i weights[i] · rows[i]` for the rows of `rows` (each `out.len()` wide; `weights`
/// may be longer), `W` output values at a time, which stay in registers while every row is
/// added (`W` divides the width).
#[inline(always)]
pub(crate) fn add_weighted<const W: usize>(weights: &[f32], rows: &[f32], out: &mut [f32]) {
    let width = out.len();
    for (c, out) in out.chunks_exact_mut(W).enumerate() {
        let mut acc = [0f32; W];
        acc.copy_from_slice(out);
        for (w, row) in weights.iter().zip(rows.chunks_exact(width)) {
            for (a, v) in acc.iter_mut().zip(&row[c * W..(c + 1) * W]) {
                *a = w.mul_add(*v, *a);
            }
        }
        out.copy_from_slice(&acc);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::infer::kernels::testing::values;

    #[test]
    fn block_scores_agree_with_direct_dot_products() {
        // Head counts for every kernel instance, odd and even head widths.
        for hd in [40, 64, 128, 7] {
            for heads in 1..=HEADS_PER_PASS {
                let queries = values(heads * hd, 5);
                let block: Vec<f16> = values(hd * KEY_BLOCK, 6)
                    .into_iter()
                    .map(f16::from_f32)
                    .collect();
                let stride = KEY_BLOCK + 3;
                for (name, kernel) in [
                    ("portable", block_scores as BlockScores),
                    ("this CPU's", block_scores_kernel()),
                ] {
                    let mut out = vec![f32::NAN; heads * stride];
                    kernel(&queries, &block, 0.5, &mut out, stride);
                    for r in 0..heads {
                        for i in 0..KEY_BLOCK {
                            let want: f64 = (0..hd)
                                .map(|d| {
                                    f64::from(queries[r * hd + d])
                                        * f64::from(block[d * KEY_BLOCK + i].to_f32())
                                })
                                .sum::<f64>()
                                * 0.5;
                            let got = f64::from(out[r * stride + i]);
                            assert!(
                                (got - want).abs() < 1e-5,
                                "{name}: hd {hd}, {heads} heads, head {r}, key {i}: {got} vs {want}"
                            );
                        }
                    }
                }
            }
        }
    }
}
