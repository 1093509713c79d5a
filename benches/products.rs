//! The Marian engine's matrix products (`cargo bench --bench products`), f32 packed
//! (`kernels::float`) and int8 (`kernels::int8`), against candle's f32 product
//! (`xs.matmul(&w.t())` on a CPU tensor, what the engine ran before the packed one), on the
//! shapes of the opus-mt models' linear layers: a decoding step of beam 4 × batch 16 (64 rows),
//! of greedy × batch 16 (16 rows) and of one row. All run on all cores (rayon's pool for ours,
//! candle's own threads for its product).
//!
//! Each line gives the best of several calls in ms, candle / packed and candle / int8 (above 1:
//! ours is faster), and each result's error relative to candle's (norm of the difference over
//! the norm).

use candle_core::{Device, Tensor};
use precis::infer::kernels::float::F32Matrix;
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
    let packed = F32Matrix::new(&w, n, k).expect("a matrix");
    let wt = Tensor::from_vec(w, (n, k), &Device::Cpu)?;
    let xt = Tensor::from_vec(xs.clone(), (m, k), &Device::Cpu)?;
    // Fewer calls for the largest products, so that the whole table takes about a minute.
    let runs = (2_000_000_000 / (m * n * k).max(1)).clamp(5, 200);
    let mut candle_out = None;
    let candle_s = best_seconds(runs, || {
        candle_out = Some(xt.matmul(&wt.t().unwrap()).unwrap());
    });
    let exact: Vec<f32> = candle_out.expect("timed").flatten_all()?.to_vec1()?;
    let mut out = vec![0f32; m * n];
    let packed_s = best_seconds(runs, || packed.matmul(&xs, m, &mut out));
    let packed_error = relative_error(&exact, &out);
    let int8_s = best_seconds(runs, || int8.matmul(&xs, m, &mut out));
    let int8_error = relative_error(&exact, &out);
    println!(
        "{name:<10} {m:>3}×{k:<4} by {n:>5}×{k:<4}  candle {:>8.3} ms  packed {:>8.3} ms ({:>5.2}, error {packed_error:.1e})  int8 {:>8.3} ms ({:>5.2}, error {int8_error:.4}) (best of {runs})",
        candle_s * 1e3,
        packed_s * 1e3,
        candle_s / packed_s,
        int8_s * 1e3,
        candle_s / int8_s,
    );
    Ok(())
}

/// The norm of `b - a` over the norm of `a`.
fn relative_error(a: &[f32], b: &[f32]) -> f64 {
    let (error, norm) = a.iter().zip(b).fold((0f64, 0f64), |(e, s), (a, b)| {
        let (a, b) = (f64::from(*a), f64::from(*b));
        (e + (a - b).powi(2), s + a * a)
    });
    (error / norm).sqrt()
}

fn main() -> candle_core::Result<()> {
    println!("{} rayon threads", rayon::current_num_threads());
    // opus-mt-fr-en's layers (d_model 512), then opus-mt-tc-big-fr-en's wider ones.
    let shapes = [
        ("attention", 512, 512),
        ("ffn in", 2048, 512),
        ("ffn out", 512, 2048),
        ("vocabulary", 59514, 512),
        ("big ffn in", 4096, 1024),
        ("big vocab", 53017, 1024),
    ];
    for m in [64, 16, 1] {
        for (name, n, k) in shapes {
            compare(name, m, n, k)?;
        }
    }
    Ok(())
}
