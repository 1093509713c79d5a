//! Scalar math the models use between the matrix products.

/// `e^x` to within a few ulp (Cephes' `expf`: `x = n ln 2 + r`, a degree-6 polynomial in `r`,
/// times `2^n`), in branch-free arithmetic so that a loop over it vectorises, where the C
/// library's `expf` is one call per value (a fifth of the decoding attention's time, and most
/// of the time between products: SiLU takes 250,000 per token on the 1.5B model).
#[inline(always)]
pub(crate) fn exp(x: f32) -> f32 {
    const LN2_HIGH: f32 = 0.693_359_4;
    const LN2_LOW: f32 = -2.121_944_4e-4;
    let x = x.clamp(-87.3, 88.7);
    let n = (x * std::f32::consts::LOG2_E + 0.5).floor();
    let r = n.mul_add(-LN2_LOW, n.mul_add(-LN2_HIGH, x));
    let p = 1.987_569_1e-4f32
        .mul_add(r, 1.398_199_9e-3)
        .mul_add(r, 8.333_452e-3)
        .mul_add(r, 4.166_579_6e-2)
        .mul_add(r, 0.166_666_65)
        .mul_add(r, 0.5);
    let p = (p * r).mul_add(r, r) + 1.0;
    // 2^n from the bits: n + 127 (1 to 255 here) is exact in the low mantissa bits of
    // n + 127 + 2^23, and shifted up it is the exponent field. A float-to-integer conversion
    // (`n as i32`, saturating) did not vectorise. A NaN gives 0 here and NaN from `p`.
    const EXPONENT_BIAS_IN_MANTISSA: f32 = 127.0 + 8_388_608.0;
    p * f32::from_bits((n + EXPONENT_BIAS_IN_MANTISSA).to_bits() << 23)
}

/// The highest logit's index; the lowest id wins a tie, as llama.cpp's greedy sampler (it keeps
/// the first maximum of the unsorted candidates, which are in id order). NaN never wins.
pub fn argmax(logits: &[f32]) -> Option<u32> {
    crate::infer::cpu::vectorized(|| lane_argmax(logits))
}

#[inline(always)]
fn lane_argmax(logits: &[f32]) -> Option<u32> {
    // Sixteen lanes, each keeping its first maximum, so that the compiler vectorises the scan
    // (one value at a time took 0.7 ms per token over a 151,936-token vocabulary); then the
    // best lane, the lowest index among equal values. A lane that saw only NaN or -inf keeps
    // no index, and the plain scan settles what the lanes cannot.
    const LANES: usize = 16;
    let (chunks, tail) = logits.as_chunks::<LANES>();
    let mut best = [f32::NEG_INFINITY; LANES];
    let mut index = [u32::MAX; LANES];
    for (c, chunk) in chunks.iter().enumerate() {
        for l in 0..LANES {
            if chunk[l] > best[l] {
                best[l] = chunk[l];
                index[l] = (c * LANES + l) as u32;
            }
        }
    }
    let lanes = (0..LANES)
        .filter(|&l| index[l] != u32::MAX)
        .map(|l| (index[l] as usize, best[l]));
    let tail = tail
        .iter()
        .enumerate()
        .map(|(i, &l)| (chunks.len() * LANES + i, l));
    let found = lanes
        .chain(tail)
        .fold(None, |best: Option<(usize, f32)>, (i, l)| {
            let better = best.is_none_or(|(bi, b)| l > b || (l == b && i < bi));
            if !l.is_nan() && better {
                Some((i, l))
            } else {
                best
            }
        });
    match found {
        Some((i, l)) if l > f32::NEG_INFINITY => Some(i as u32),
        _ => first_maximum(logits),
    }
}

/// The first maximum by a plain scan (every value NaN or -inf is the case left to it).
fn first_maximum(logits: &[f32]) -> Option<u32> {
    let mut best: Option<(usize, f32)> = None;
    for (i, &l) in logits.iter().enumerate() {
        if !l.is_nan() && best.is_none_or(|(_, b)| l > b) {
            best = Some((i, l));
        }
    }
    best.map(|(i, _)| i as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_is_within_a_few_ulp() {
        for i in 0..=200_000 {
            let x = -87.0 + 87.0 * i as f32 / 200_000.0;
            let want = f64::from(x).exp();
            let got = f64::from(exp(x));
            assert!(
                ((got - want) / want).abs() < 4.0 * f64::from(f32::EPSILON),
                "exp({x}) = {got}, want {want}"
            );
        }
        assert_eq!(exp(0.0), 1.0);
        assert!(exp(f32::NAN).is_nan());
        assert_eq!(exp(-1000.0), exp(-87.3));
        assert_eq!(exp(1000.0), exp(88.7));
    }

    #[test]
    fn argmax_prefers_the_lowest_id_on_ties_and_skips_nan() {
        assert_eq!(argmax(&[1.0, 3.0, 3.0, 2.0]), Some(1));
        assert_eq!(argmax(&[f32::NAN, -1.0, f32::NAN]), Some(1));
        assert_eq!(argmax(&[f32::NEG_INFINITY]), Some(0));
        assert_eq!(argmax(&[]), None);
        assert_eq!(argmax(&[f32::NAN]), None);
        assert_eq!(argmax(&[f32::NAN; 40]), None);
        let mut minus_infinity = [f32::NEG_INFINITY; 40];
        minus_infinity[0] = f32::NAN;
        assert_eq!(argmax(&minus_infinity), Some(1));
        // Long inputs (the lanes and the tail) from a few values, so that ties across lanes
        // and chunks are common, with NaN sprinkled in: the first maximum, as a plain scan.
        let mut state = 7u32;
        for len in [16, 17, 100, 1000, 4099] {
            for _ in 0..50 {
                let logits: Vec<f32> = (0..len)
                    .map(|_| {
                        state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                        match state >> 28 {
                            0 => f32::NAN,
                            v => (v % 5) as f32,
                        }
                    })
                    .collect();
                assert_eq!(argmax(&logits), first_maximum(&logits), "{logits:?}");
            }
        }
    }
}
