//! The decoder's self-attention cache, and the attention that reads it.
//!
//! Beam search reorders the decoder's rows at every step. Kept as one (rows, heads, steps,
//! head_dim) tensor, the cache had to be grown by a copy (`Tensor::cat`) and reordered by
//! another (`index_select`) at every step: both move the whole history, so a sentence of `n`
//! tokens copied it about `n` times (`perf`: most of the 8.6% in `memmove`). Here each step's
//! keys and values are written once, where that step's rows put them, and a row finds its
//! history through an index per step (the row of that step's buffer that holds its ancestor):
//! a reorder rewrites those indices, a few integers per step, and moves no vector.

use rayon::prelude::*;

use crate::infer::cpu;

/// One layer's keys and values, step after step: `keys[s]` holds, for each row the decoder had
/// at step `s`, its key (`heads * head_dim` values, head after head).
#[derive(Default)]
pub(super) struct LayerHistory {
    keys: Vec<Vec<f32>>,
    values: Vec<Vec<f32>>,
}

/// Which row of each step's buffers holds each current row's ancestor, shared by the layers
/// (they are reordered together).
#[derive(Default)]
pub(super) struct Ancestry {
    /// `slots[s][r]`: the row of step `s`'s buffers for current row `r`.
    slots: Vec<Vec<u32>>,
}

impl Ancestry {
    /// A new step: its buffers are written in the current row order.
    pub(super) fn push_step(&mut self, rows: usize) {
        self.slots.push((0..rows as u32).collect());
    }

    /// New row `i` is old row `rows[i]`.
    pub(super) fn select_rows(&mut self, rows: &[u32]) {
        for slots in &mut self.slots {
            *slots = rows.iter().map(|&r| slots[r as usize]).collect();
        }
    }
}

impl LayerHistory {
    /// Appends this step's keys and values (`rows * heads * head_dim` each, row after row).
    pub(super) fn push(&mut self, keys: Vec<f32>, values: Vec<f32>) {
        self.keys.push(keys);
        self.values.push(values);
    }

    /// Attention of one query per row (`queries`, already scaled, row after row, head after
    /// head) over the row's history: for each row and head, the softmax of the query's dot
    /// products with the keys of every step so far, and the weighted sum of the values.
    /// Returns `rows * heads * head_dim` values, laid out as `queries`.
    pub(super) fn attend(&self, ancestry: &Ancestry, queries: &[f32], heads: usize) -> Vec<f32> {
        let steps = self.keys.len();
        let rows = ancestry.slots.last().map_or(0, Vec::len);
        let d = queries.len() / rows.max(1);
        let head_dim = d / heads;
        let mut out = vec![0f32; queries.len()];
        out.par_chunks_mut(d)
            .zip(queries.par_chunks(d))
            .enumerate()
            .for_each(|(row, (out, query))| {
                cpu::vectorized(|| {
                    let mut weights = vec![0f32; steps];
                    for (head, (out, query)) in out
                        .chunks_exact_mut(head_dim)
                        .zip(query.chunks_exact(head_dim))
                        .enumerate()
                    {
                        let at = |s: usize| {
                            let slot = ancestry.slots[s][row] as usize;
                            slot * d + head * head_dim..slot * d + (head + 1) * head_dim
                        };
                        for (s, w) in weights.iter_mut().enumerate() {
                            *w = dot(query, &self.keys[s][at(s)]);
                        }
                        softmax(&mut weights);
                        for (s, &w) in weights.iter().enumerate() {
                            for (o, &v) in out.iter_mut().zip(&self.values[s][at(s)]) {
                                *o = w.mul_add(v, *o);
                            }
                        }
                    }
                })
            });
        out
    }
}

/// The dot product in eight interleaved partial sums, added pairwise at the end: a fixed order,
/// so every CPU level gives the same bits.
#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    let mut a_chunks = a.chunks_exact(8);
    let mut b_chunks = b.chunks_exact(8);
    for (a, b) in a_chunks.by_ref().zip(b_chunks.by_ref()) {
        for i in 0..8 {
            lanes[i] = a[i].mul_add(b[i], lanes[i]);
        }
    }
    for (i, (a, b)) in a_chunks
        .remainder()
        .iter()
        .zip(b_chunks.remainder())
        .enumerate()
    {
        lanes[i] = a.mul_add(*b, lanes[i]);
    }
    let [a0, a1, a2, a3, a4, a5, a6, a7] = lanes;
    ((a0 + a4) + (a2 + a6)) + ((a1 + a5) + (a3 + a7))
}

/// Softmax in place: `exp(x - max) / sum`, as candle's `softmax_last_dim` computes it.
#[inline(always)]
fn softmax(xs: &mut [f32]) {
    let max = xs.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0f32;
    for x in xs.iter_mut() {
        *x = (*x - max).exp();
        sum += *x;
    }
    for x in xs.iter_mut() {
        *x /= sum;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The attention computed directly over each row's history, copied out in full.
    fn reference(history: &[(Vec<f32>, Vec<f32>)], query: &[f32], heads: usize) -> Vec<f32> {
        let head_dim = query.len() / heads;
        let mut out = vec![0f32; query.len()];
        for h in 0..heads {
            let span = h * head_dim..(h + 1) * head_dim;
            let scores: Vec<f64> = history
                .iter()
                .map(|(k, _)| {
                    k[span.clone()]
                        .iter()
                        .zip(&query[span.clone()])
                        .map(|(&a, &b)| f64::from(a) * f64::from(b))
                        .sum()
                })
                .collect();
            let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let exps: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
            let sum: f64 = exps.iter().sum();
            for (e, (_, v)) in exps.iter().zip(history) {
                for (o, &x) in out[span.clone()].iter_mut().zip(&v[span.clone()]) {
                    *o += (e / sum * f64::from(x)) as f32;
                }
            }
        }
        out
    }

    #[test]
    fn rows_read_their_own_history_after_reorders() {
        let (heads, head_dim) = (2, 5);
        let d = heads * head_dim;
        let value = |step: usize, row: usize, i: usize| {
            ((step * 31 + row * 7 + i * 3) % 17) as f32 / 8.0 - 1.0
        };
        let mut layer = LayerHistory::default();
        let mut ancestry = Ancestry::default();
        // Each current row's history, kept by copying: what the index has to reproduce.
        let mut copies: Vec<Vec<(Vec<f32>, Vec<f32>)>> = vec![Vec::new(); 4];
        let reorders: [&[u32]; 3] = [&[0, 0, 2, 1], &[3, 1, 1, 0], &[2, 3]];
        for step in 0..4 {
            let rows = copies.len();
            let make = |offset: usize| -> Vec<f32> {
                (0..rows * d)
                    .map(|j| value(step + offset, j / d, j % d))
                    .collect()
            };
            let (keys, values) = (make(0), make(5));
            for (row, history) in copies.iter_mut().enumerate() {
                history.push((
                    keys[row * d..(row + 1) * d].to_vec(),
                    values[row * d..(row + 1) * d].to_vec(),
                ));
            }
            ancestry.push_step(rows);
            layer.push(keys, values);
            let queries: Vec<f32> = (0..rows * d)
                .map(|j| value(step + 9, j / d, j % d))
                .collect();
            let out = layer.attend(&ancestry, &queries, heads);
            for (row, history) in copies.iter().enumerate() {
                let expected = reference(history, &queries[row * d..(row + 1) * d], heads);
                for (a, b) in out[row * d..(row + 1) * d].iter().zip(&expected) {
                    assert!((a - b).abs() < 1e-5, "step {step}, row {row}: {a} vs {b}");
                }
            }
            if let Some(order) = reorders.get(step) {
                ancestry.select_rows(order);
                copies = order.iter().map(|&r| copies[r as usize].clone()).collect();
            }
        }
    }

    #[test]
    fn the_dot_product_covers_every_element() {
        let a: Vec<f32> = (0..13).map(|i| i as f32 * 0.25 - 1.0).collect();
        let b: Vec<f32> = (0..13).map(|i| 2.0 - i as f32 * 0.5).collect();
        // Small multiples of 1/8: every order of summing gives the exact sum.
        let exact: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        assert_eq!(dot(&a, &b), exact);
        assert_eq!(
            dot(&a[..5], &b[..5]),
            a[..5].iter().zip(&b).map(|(x, y)| x * y).sum::<f32>()
        );
    }
}
