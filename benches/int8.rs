//! The int8 product against candle's f32 one (`cargo bench --bench int8`), on the shapes of the
//! opus-mt models' linear layers: a decoding step of beam 4 × batch 16 (64 rows) and of one
//! row. Both run on all cores (rayon's pool for int8, candle's own threads for f32), and the
//! f32 product is the one the Marian model runs, `xs.matmul(&w.t())` on a CPU tensor.
//!
//! Each line gives the best of several calls in ms, f32 / int8 (above 1: int8 is faster) and
//! the int8 result's error relative to the f32 one (norm of the difference over the norm).

use candle_core::{Device, Tensor};
use precis::infer::kernels::int8::Int8Matrix;
use precis::infer::kernels::testing::{best_seconds, pseudo_random_bytes};

/// Values in [-1, 1), from deterministic bytes.
fn values(n: usize, seed: u64) -> Vec<f32> {
    pseudo_random_bytes(n, seed)
        .into_iter()
        .map(|b| (f32::from(b) - 127.5) / 128.0)
        .collect()
}

fn compare(name: &str, m: usize, n: usize, k: usize) -> candle_core::Result<()> {
    let w = values(n * k, 0x9E37_79B9 + n as u64);
    let xs = values(m * k, 0x7F4A_7C15 + m as u64);
    let int8 = Int8Matrix::new(&w, n, k).expect("finite weights");
    let wt = Tensor::from_vec(w, (n, k), &Device::Cpu)?;
    let xt = Tensor::from_vec(xs.clone(), (m, k), &Device::Cpu)?;
    // Fewer calls for the largest products, so that the whole table takes about a minute.
    let runs = (2_000_000_000 / (m * n * k).max(1)).clamp(5, 200);
    let mut f32_out = None;
    let f32_s = best_seconds(runs, || {
        f32_out = Some(xt.matmul(&wt.t().unwrap()).unwrap());
    });
    let mut out = vec![0f32; m * n];
    let int8_s = best_seconds(runs, || int8.matmul(&xs, m, &mut out));
    let exact: Vec<f32> = f32_out.expect("timed").flatten_all()?.to_vec1()?;
    let (error, norm) = exact.iter().zip(&out).fold((0f64, 0f64), |(e, s), (a, b)| {
        let (a, b) = (f64::from(*a), f64::from(*b));
        (e + (a - b).powi(2), s + a * a)
    });
    println!(
        "{name:<10} {m:>3}×{k:<4} by {n:>5}×{k:<4}  f32 {:>8.3} ms  int8 {:>8.3} ms  f32/int8 {:>5.2}  error {:.4} (best of {runs})",
        f32_s * 1e3,
        int8_s * 1e3,
        f32_s / int8_s,
        (error / norm).sqrt(),
    );
    Ok(())
}

fn main() -> candle_core::Result<()> {
    println!("{} rayon threads", rayon::current_num_threads());
    let shapes = [
        ("attention", 512, 512),
        ("ffn in", 2048, 512),
        ("ffn out", 512, 2048),
        ("big ffn in", 4096, 1024),
        ("vocabulary", 53017, 1024),
    ];
    for m in [64, 1] {
        for (name, n, k) in shapes {
            compare(name, m, n, k)?;
        }
    }
    Ok(())
}
