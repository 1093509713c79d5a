//! Deterministic inputs for the kernels' tests and for the benches (`benches/kquant.rs`,
//! `benches/products.rs`): one xorshift generator for bytes, a linear congruential one for values in
//! [-1, 1), and the benches' timer.

/// Deterministic pseudo-random bytes (xorshift64), so that failures reproduce and benchmark
/// runs read the same matrices.
pub fn pseudo_random_bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut s = seed.max(1);
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s as u8
        })
        .collect()
}

/// The shortest of `runs` timed calls of `f`, in seconds, after one untimed call (which pays
/// for first-touch allocations and thread start): for the benches.
pub fn best_seconds(runs: usize, mut f: impl FnMut()) -> f64 {
    f();
    (0..runs)
        .map(|_| {
            let start = std::time::Instant::now();
            f();
            start.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

/// Activation values in [-3.2, 3.2), from [`pseudo_random_bytes`].
#[cfg(test)]
pub(crate) fn activations(n: usize, seed: u64) -> Vec<f32> {
    pseudo_random_bytes(n, seed)
        .into_iter()
        .map(|b| (f32::from(b) - 127.5) / 40.0)
        .collect()
}

/// Whether `a` and `b` agree to a relative 1e-4 (absolute below 1).
#[cfg(test)]
pub(crate) fn close(a: f32, b: f32) -> bool {
    (a - b).abs() <= 1e-4 * a.abs().max(b.abs()).max(1.0)
}

/// Deterministic values in [-1, 1) (a linear congruential sequence).
#[cfg(test)]
pub(crate) fn values(n: usize, seed: u32) -> Vec<f32> {
    let mut state = seed;
    (0..n)
        .map(|_| {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (state >> 8) as f32 / (1 << 23) as f32 - 1.0
        })
        .collect()
}
