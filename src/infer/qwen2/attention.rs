//! The model's attention: projections, RoPE, the cache, and the decoding attention over it.

use super::kv_cache::KvCache;
use super::weights::{QLinear, Rope};
use crate::infer::cpu;
use crate::infer::kernels::attention::{
    add_weighted, block_scores_kernel, HEADS_PER_PASS, KEY_BLOCK,
};
use crate::infer::kernels::kquant::RowMode;
use crate::infer::kernels::math::exp;
use crate::infer::team::Team;
use candle_core::{Device, Tensor};
use half::slice::HalfFloatSliceExt;

/// Attention of one query position over the first `positions` cached positions. `q` is
/// `[head][dim]`; the query heads sharing a KV head (head `h` reads KV head
/// `h / (heads / kv heads)`) are done together, so each cached key and value is read once per
/// KV head, and the KV heads run on the team's threads.
fn decode_attention(
    q: &[f32],
    cache: &KvCache,
    positions: usize,
    (n_head, n_kv, hd): (usize, usize, usize),
) -> Vec<f32> {
    let n_rep = n_head / n_kv;
    let scale = 1.0 / (hd as f32).sqrt();
    let mut out = vec![0f32; n_head * hd];
    let mut groups: Vec<(usize, &mut [f32])> = out.chunks_mut(n_rep * hd).enumerate().collect();
    let block_scores = block_scores_kernel();
    Team::get().for_each_mut(&mut groups, |(kv, out)| {
        let kv = *kv;
        let queries = &q[kv * n_rep * hd..(kv + 1) * n_rep * hd];
        let keys = &cache.keys[kv][..positions.div_ceil(KEY_BLOCK) * hd * KEY_BLOCK];
        let values = &cache.values[kv][..positions * hd];
        // scores[r][p] for query head r of this group, whole blocks (the lanes past
        // `positions` are never read).
        let width = positions.next_multiple_of(KEY_BLOCK);
        let mut scores = vec![0f32; n_rep * width];
        for (b, block) in keys.chunks_exact(hd * KEY_BLOCK).enumerate() {
            for (pass, heads) in queries.chunks(HEADS_PER_PASS * hd).enumerate() {
                let out = &mut scores[pass * HEADS_PER_PASS * width + b * KEY_BLOCK..];
                block_scores(heads, block, scale, out, width);
            }
        }
        cpu::vectorized(|| {
            for row in scores.chunks_exact_mut(width) {
                let row = &mut row[..positions];
                let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                for s in row.iter_mut() {
                    *s = exp(*s - max);
                }
                let total: f32 = row.iter().sum();
                for s in row.iter_mut() {
                    *s /= total;
                }
            }
            // Values are converted from f16 a tile of positions at a time, into a buffer that
            // stays in the L1 cache.
            let mut tile = vec![0f32; ATTENTION_TILE * hd];
            for (t, values) in values.chunks(ATTENTION_TILE * hd).enumerate() {
                let tile = &mut tile[..values.len()];
                values.convert_to_f32_slice(tile);
                for (r, out) in out.chunks_exact_mut(hd).enumerate() {
                    let weights = &scores[r * width + t * ATTENTION_TILE..][..values.len() / hd];
                    // Direct calls, so that each is inlined into this level's code.
                    match hd {
                        _ if hd.is_multiple_of(128) => add_weighted::<128>(weights, tile, out),
                        _ if hd.is_multiple_of(64) => add_weighted::<64>(weights, tile, out),
                        _ if hd.is_multiple_of(16) => add_weighted::<16>(weights, tile, out),
                        _ => add_weighted::<1>(weights, tile, out),
                    }
                }
            }
        });
    });
    out
}

/// Positions whose keys or values `decode_attention` converts to f32 at a time (16 KiB at
/// a head width of 128).
const ATTENTION_TILE: usize = 32;

pub(super) struct Attention {
    pub(super) wq: QLinear,
    pub(super) wk: QLinear,
    pub(super) wv: QLinear,
    pub(super) bq: Vec<f32>,
    pub(super) bk: Vec<f32>,
    pub(super) bv: Vec<f32>,
    pub(super) wo: QLinear,
    pub(super) n_head: usize,
    pub(super) n_kv_head: usize,
    pub(super) head_dim: usize,
}

impl Attention {
    /// Rows of one or more sequences (plain values, `rows × hidden`), each query over its own
    /// sequence's positions up to its own, as decoding does. `groups` gives, in row order, each
    /// sequence's cache (holding the positions before its first row) and its number of rows.
    /// Every step is per row, so each row's result is the one it has when its tokens are fed
    /// one at a time, alone.
    pub(super) fn forward_rows(
        &self,
        x: &[f32],
        rope: &Rope,
        groups: &mut [(&mut KvCache, usize)],
    ) -> candle_core::Result<Vec<f32>> {
        let (hd, n_kv) = (self.head_dim, self.n_kv_head);
        let seq = groups.iter().map(|(_, rows)| rows).sum();
        let [mut q, mut k, mut v]: [Vec<f32>; 3] =
            QLinear::rows_many(&[&self.wq, &self.wk, &self.wv], x, seq, RowMode::Exact)?
                .try_into()
                .expect("three projections");
        let (q_width, kv_width) = (self.n_head * hd, n_kv * hd);
        let dims = (self.n_head, n_kv, hd);
        let mut y = Vec::with_capacity(seq * q_width);
        let mut row = 0;
        for (cache, rows) in groups.iter_mut() {
            let cached = cache.positions(hd);
            for i in 0..*rows {
                let q = &mut q[(row + i) * q_width..][..q_width];
                let k = &mut k[(row + i) * kv_width..][..kv_width];
                let v = &mut v[(row + i) * kv_width..][..kv_width];
                for (row, bias) in [
                    (&mut *q, &self.bq),
                    (&mut *k, &self.bk),
                    (&mut *v, &self.bv),
                ] {
                    row.iter_mut().zip(bias).for_each(|(x, b)| *x += b);
                }
                rope.rotate(q, cached + i);
                rope.rotate(k, cached + i);
                cache.append_row(k, v, n_kv);
            }
            for i in 0..*rows {
                let q = &q[(row + i) * q_width..][..q_width];
                y.extend(decode_attention(q, cache, cached + i + 1, dims));
            }
            row += *rows;
        }
        self.wo.rows(&y, seq, RowMode::Exact)
    }

    /// A prompt chunk of `seq` rows of one sequence, with whole-chunk products and attention.
    pub(super) fn forward(
        &self,
        x: &[f32],
        seq: usize,
        chunk: &PromptChunk,
        cache: &mut KvCache,
    ) -> candle_core::Result<Vec<f32>> {
        let (b, (cos, sin), mask) = (1, (&chunk.cos, &chunk.sin), &chunk.mask);
        let (hd, n_kv) = (self.head_dim, self.n_kv_head);
        let device = &Device::Cpu;
        let heads = |projected: Vec<f32>, bias: &[f32], n: usize| -> candle_core::Result<Tensor> {
            Tensor::from_vec(projected, (b, seq, n * hd), device)?
                .broadcast_add(&Tensor::from_slice(bias, bias.len(), device)?)?
                .reshape((b, seq, n, hd))?
                .transpose(1, 2)?
                .contiguous()
        };
        let [q, k, v]: [Vec<f32>; 3] =
            QLinear::rows_many(&[&self.wq, &self.wk, &self.wv], x, seq, RowMode::Fastest)?
                .try_into()
                .expect("three projections");
        let q = heads(q, &self.bq, self.n_head)?;
        let k = heads(k, &self.bk, n_kv)?;
        let v = heads(v, &self.bv, n_kv)?;
        let q = candle_nn::rotary_emb::rope(&q, cos, sin)?;
        let k = candle_nn::rotary_emb::rope(&k, cos, sin)?;
        cache.append(&k, &v)?;
        let [k, v] = cache.tensors(n_kv, hd, device)?;
        let kv_len = k.dim(2)?;

        // Grouped-query attention without copying K and V per query head: the query heads
        // sharing a KV head are stacked as extra rows (head h uses KV head h / n_rep).
        let n_rep = self.n_head / n_kv;
        let q = q.reshape((b, n_kv, n_rep * seq, hd))?;
        let scores = (q.matmul(&k.t()?)? * (1.0 / (hd as f64).sqrt()))?;
        let scores = scores
            .reshape((b, n_kv, n_rep, seq, kv_len))?
            .broadcast_add(mask)?
            .reshape((b, n_kv, n_rep * seq, kv_len))?;
        let weights = candle_nn::ops::softmax_last_dim(&scores)?;
        let y = weights
            .matmul(&v)?
            .reshape((b, self.n_head, seq, hd))?
            .transpose(1, 2)?
            .reshape((b * seq, self.n_head * hd))?
            .flatten_all()?
            .to_vec1::<f32>()?;
        self.wo.rows(&y, seq, RowMode::Fastest)
    }
}

/// What a prompt-sized chunk's attention needs beside its rows: the RoPE tables of its
/// positions and the mask that hides later positions.
pub(super) struct PromptChunk {
    pub(super) cos: Tensor,
    pub(super) sin: Tensor,
    pub(super) mask: Tensor,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::infer::kernels::testing::values;
    use half::f16;

    #[test]
    fn decode_attention_matches_a_direct_computation() {
        // Head widths that take each accumulation path, enough positions for several tiles
        // and key blocks and a partial one, and groups of query heads wider than one pass.
        for (hd, positions, n_head) in [(128, 75, 12), (64, 33, 20), (40, 7, 14)] {
            let n_kv = 2;
            let mut cache = KvCache::default();
            let keys = values(positions * n_kv * hd, 1);
            let vals = values(positions * n_kv * hd, 2);
            let row = n_kv * hd;
            for p in 0..positions {
                cache.append_row(&keys[p * row..][..row], &vals[p * row..][..row], n_kv);
            }
            let q = values(n_head * hd, 3);
            let got = decode_attention(&q, &cache, positions, (n_head, n_kv, hd));
            // The cache holds f16: the reference uses the same rounded keys and values.
            let at = |v: &[f32], p: usize, kv: usize, d: usize| {
                f64::from(f16::from_f32(v[p * row + kv * hd + d]).to_f32())
            };
            for h in 0..n_head {
                let kv = h / (n_head / n_kv);
                let scores: Vec<f64> = (0..positions)
                    .map(|p| {
                        let s: f64 = (0..hd)
                            .map(|d| f64::from(q[h * hd + d]) * at(&keys, p, kv, d))
                            .sum();
                        s / (hd as f64).sqrt()
                    })
                    .collect();
                let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let weights: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
                let total: f64 = weights.iter().sum();
                for d in 0..hd {
                    let want: f64 = (0..positions)
                        .map(|p| weights[p] / total * at(&vals, p, kv, d))
                        .sum();
                    let got = f64::from(got[h * hd + d]);
                    assert!(
                        (got - want).abs() < 1e-5,
                        "hd {hd} head {h} dim {d}: {got} vs {want}"
                    );
                }
            }
        }
    }
}
