//! The portable integer sums: the reference the AVX2 kernel is tested against, bit for bit.

/// `sums[i · w_rows + j] = Σ_k x[i][k] · w[j][k]` for the `m = x.len() / stride` activation rows
/// of `x` and the `w_rows = w.len() / stride` weight rows of `w`, both row-major with `stride`
/// values a row (the zero padding adds nothing).
pub fn block_sums(w: &[i8], x: &[i8], stride: usize, sums: &mut [i32]) {
    let w_rows = w.len() / stride;
    for (x_row, sums) in x.chunks_exact(stride).zip(sums.chunks_exact_mut(w_rows)) {
        for (w_row, sum) in w.chunks_exact(stride).zip(sums) {
            *sum = dot(w_row, x_row);
        }
    }
}

fn dot(w: &[i8], x: &[i8]) -> i32 {
    w.iter()
        .zip(x)
        .map(|(w, x)| i32::from(*w) * i32::from(*x))
        .sum()
}
