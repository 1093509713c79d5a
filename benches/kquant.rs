//! Throughput of the quantised matrix-vector kernels (`cargo bench --bench kquant`): the
//! k-quants, and Q5_0 and Q8_0 (most of the 0.5B model's matrices).
//!
//! A decoding step streams every weight once, so the figure that matters is bytes of weights
//! read per second, next to the machine's memory bandwidth (`scripts/bench.sh` measures it).
//! The matrices are 256 MiB of pseudo-random blocks, well beyond any cache, shaped like the
//! 1.5B model's FFN (rows of 1536 values); a 1 MiB one, which stays in the caches, gives the
//! kernels' own cost.

use precis::infer::kernels::kquant::{gemm, KQuant, KQuantMatrix, RowMode};
use precis::infer::kernels::testing::{best_seconds, pseudo_random_bytes};
use std::time::Instant;

/// Random blocks, with every f16 scale replaced by a small finite one.
fn blocks(format: KQuant, rows: usize, cols: usize) -> Vec<u8> {
    let block = format.block_bytes();
    let blocks = rows * cols / format.block_values();
    let mut bytes = pseudo_random_bytes(blocks * block, 0x9E37_79B9_7F4A_7C15);
    let scale = half::f16::from_f32(0.001).to_le_bytes();
    for b in bytes.chunks_exact_mut(block) {
        match format {
            KQuant::Q4K => {
                b[0..2].copy_from_slice(&scale);
                b[2..4].copy_from_slice(&scale);
            }
            KQuant::Q6K => b[208..210].copy_from_slice(&scale),
            KQuant::Q5_0 | KQuant::Q8_0 => b[0..2].copy_from_slice(&scale),
        }
    }
    bytes
}

/// The same bytes summed as u64 words by as many threads (rayon's): what streaming alone costs.
fn read_bandwidth(bytes: &[u8]) -> f64 {
    use rayon::prelude::*;
    let mut best = f64::INFINITY;
    for _ in 0..10 {
        let start = Instant::now();
        let sum: u64 = bytes
            .par_chunks(16 << 10)
            .map(|chunk| {
                chunk
                    .chunks_exact(8)
                    .map(|w| u64::from_le_bytes(w.try_into().unwrap()))
                    .fold(0u64, u64::wrapping_add)
            })
            .reduce(|| 0, u64::wrapping_add);
        std::hint::black_box(sum);
        best = best.min(start.elapsed().as_secs_f64());
    }
    bytes.len() as f64 / best / 1e9
}

/// A prompt-sized product: 512 activation rows through an FFN-sized matrix.
fn prompt_product(format: KQuant) {
    let (rows, cols, m) = (8960, 1536, 512);
    let bytes = blocks(format, rows, cols);
    let matrix = KQuantMatrix::new(format, rows, cols, &bytes).expect("shape");
    let x: Vec<f32> = (0..m * cols).map(|i| (i as f32 * 0.37).sin()).collect();
    let best = best_seconds(3, || {
        std::hint::black_box(gemm(&matrix, &x, m, RowMode::Fastest));
    });
    let block_products = (rows * cols / format.block_values() * m) as f64;
    println!(
        "{format:?} gemm {m}x{cols} by {rows}x{cols}: {:.1} ms, {:.2} ns per block product and thread (best of 3)",
        best * 1e3,
        best * 1e9 / block_products * rayon::current_num_threads() as f64
    );
}

/// A decoding-sized product on a matrix that stays in the cores' caches: the kernel's own
/// cost, which bounds the weight bytes per second it could stream from faster memory.
fn in_cache_product(format: KQuant) {
    let cols = 1536;
    let row_bytes = cols / format.block_values() * format.block_bytes();
    let rows = (1 << 20) / row_bytes / 16 * 16;
    let bytes = blocks(format, rows, cols);
    let matrix = KQuantMatrix::new(format, rows, cols, &bytes).expect("shape");
    let x: Vec<f32> = (0..cols).map(|i| (i as f32 * 0.37).sin()).collect();
    let best = best_seconds(2000, || {
        std::hint::black_box(gemm(&matrix, &x, 1, RowMode::Fastest));
    });
    let per_block =
        best / (rows * cols / format.block_values()) as f64 * rayon::current_num_threads() as f64;
    println!(
        "{format:?} gemv {rows}x{cols} in cache (1 MiB): {:.2} ns per block and thread, at most {:.1} GB/s \
         on these threads (best of 2000)",
        per_block * 1e9,
        format.block_bytes() as f64 / per_block / 1e9 * rayon::current_num_threads() as f64
    );
}

fn main() {
    let threads = rayon::current_num_threads();
    let formats = [KQuant::Q4K, KQuant::Q6K, KQuant::Q5_0, KQuant::Q8_0];
    for format in formats {
        prompt_product(format);
    }
    for format in formats {
        in_cache_product(format);
    }
    let cols = 1536;
    for format in formats {
        let rows = (256 << 20) / (cols / format.block_values() * format.block_bytes());
        let bytes = blocks(format, rows, cols);
        let matrix = KQuantMatrix::new(format, rows, cols, &bytes).expect("shape");
        let x: Vec<f32> = (0..cols).map(|i| (i as f32 * 0.37).sin()).collect();
        gemm(&matrix, &x, 1, RowMode::Fastest);
        let best = best_seconds(10, || {
            std::hint::black_box(gemm(&matrix, &x, 1, RowMode::Fastest));
        });
        println!(
            "{format:?} gemv {rows}x{cols}, {threads} threads: {:.1} GB/s of weights (best of 10, {:.1} ms); \
             reading the same bytes: {:.1} GB/s",
            bytes.len() as f64 / best / 1e9,
            best * 1e3,
            read_bandwidth(&bytes)
        );
        // A few rows at once, as a speculative decoding step verifies its draft: what each
        // extra row costs over one weight pass.
        for m in [2, 4, 8] {
            let xs: Vec<f32> = (0..m * cols).map(|i| (i as f32 * 0.37).sin()).collect();
            let best_m = best_seconds(5, || {
                std::hint::black_box(gemm(&matrix, &xs, m, RowMode::Fastest));
            });
            println!(
                "{format:?} {m} rows at once: {:.1} ms, {:.2}x one row (best of 5)",
                best_m * 1e3,
                best_m / best
            );
        }
    }
}
