//! The KV cache: keys and values of every cached position, in the layout the attention kernel reads.

use crate::infer::kernels::attention::KEY_BLOCK;
use candle_core::{Device, Tensor};
use half::{f16, slice::HalfFloatSliceExt};

/// Keys and values of every cached position, one plain vector per KV head: a decoding step
/// appends its position in place (no copy of the cache into a new tensor, no fresh pages per
/// token). Stored as f16, as llama.cpp's cache is by default: a decoding step reads the whole
/// cache (45 MB per token at 800 positions in f32 for the 1.5B model), so half the bytes is a
/// faster step. Values are position-major (`[position][dim]`); keys are in blocks of
/// `KEY_BLOCK` positions, dimension-major within a block (`[block][dim][position]`), so that a
/// query's scores for a block are multiply-adds of whole rows, with no horizontal sum per
/// position (which took half the decoding attention's time).
#[derive(Default)]
pub(super) struct KvCache {
    pub(super) keys: Vec<Vec<f16>>,
    pub(super) values: Vec<Vec<f16>>,
}

impl KvCache {
    /// Positions cached, for heads of `hd` values.
    pub(super) fn positions(&self, hd: usize) -> usize {
        self.values.first().map_or(0, |head| head.len() / hd)
    }

    /// Appends `k` and `v`, shaped `(1, n_kv_head, positions, head_dim)`.
    pub(super) fn append(&mut self, k: &Tensor, v: &Tensor) -> candle_core::Result<()> {
        let (n_kv, positions, hd) = (k.dim(1)?, k.dim(2)?, k.dim(3)?);
        let [k, v] = [k, v].map(|t| t.flatten_all()?.to_vec1::<f32>());
        let (k, v) = (k?, v?);
        let row = |heads: &[f32], p: usize| -> Vec<f32> {
            (0..n_kv)
                .flat_map(|h| &heads[(h * positions + p) * hd..][..hd])
                .copied()
                .collect()
        };
        for p in 0..positions {
            self.append_row(&row(&k, p), &row(&v, p), n_kv);
        }
        Ok(())
    }

    /// Appends one position: `k` and `v` hold `n_kv_head` heads of `head_dim` values.
    pub(super) fn append_row(&mut self, k: &[f32], v: &[f32], n_kv: usize) {
        let hd = k.len() / n_kv;
        let position = self.positions(hd);
        let (block, lane) = (position / KEY_BLOCK, position % KEY_BLOCK);
        self.keys.resize_with(n_kv, Vec::new);
        self.values.resize_with(n_kv, Vec::new);
        for (head, k) in self.keys.iter_mut().zip(k.chunks_exact(hd)) {
            if lane == 0 {
                head.resize((block + 1) * hd * KEY_BLOCK, f16::ZERO);
            }
            let block = &mut head[block * hd * KEY_BLOCK..][..hd * KEY_BLOCK];
            for (d, &k) in k.iter().enumerate() {
                block[d * KEY_BLOCK + lane] = f16::from_f32(k);
            }
        }
        for (head, v) in self.values.iter_mut().zip(v.chunks_exact(hd)) {
            head.extend(v.iter().map(|&v| f16::from_f32(v)));
        }
    }

    /// The cache as `(1, n_kv_head, positions, head_dim)` tensors, for prompt chunks.
    pub(super) fn tensors(
        &self,
        n_kv: usize,
        hd: usize,
        device: &Device,
    ) -> candle_core::Result<[Tensor; 2]> {
        let positions = self.positions(hd);
        let keys: Vec<f32> = self
            .keys
            .iter()
            .flat_map(|head| {
                (0..positions).flat_map(move |p| {
                    let block = &head[p / KEY_BLOCK * hd * KEY_BLOCK..][..hd * KEY_BLOCK];
                    (0..hd).map(move |d| block[d * KEY_BLOCK + p % KEY_BLOCK].to_f32())
                })
            })
            .collect();
        let values: Vec<f32> = self.values.iter().flat_map(|h| h.to_f32_vec()).collect();
        let shape = (1, n_kv, positions, hd);
        Ok([
            Tensor::from_vec(keys, shape, device)?,
            Tensor::from_vec(values, shape, device)?,
        ])
    }

    /// Keeps the first `position` positions; later appends overwrite the rest of the last
    /// key block.
    pub(super) fn truncate(&mut self, position: usize, hd: usize) {
        for head in &mut self.keys {
            head.truncate(position.div_ceil(KEY_BLOCK) * hd * KEY_BLOCK);
        }
        for head in &mut self.values {
            head.truncate(position * hd);
        }
    }

    /// Replaces this cache by the first `positions` positions of `other`.
    pub(super) fn copy_prefix(&mut self, other: &Self, positions: usize, hd: usize) {
        let key_len = positions.div_ceil(KEY_BLOCK) * hd * KEY_BLOCK;
        self.keys = other.keys.iter().map(|h| h[..key_len].to_vec()).collect();
        self.values = other
            .values
            .iter()
            .map(|h| h[..positions * hd].to_vec())
            .collect();
    }

    /// Bytes allocated for keys and values.
    pub(super) fn bytes(&self) -> usize {
        let halves: usize = self
            .keys
            .iter()
            .chain(&self.values)
            .map(Vec::capacity)
            .sum();
        halves * std::mem::size_of::<f16>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::infer::kernels::testing::values;

    #[test]
    fn the_key_blocks_give_back_every_position_after_truncation() {
        let (n_kv, hd) = (2, 8);
        let row = n_kv * hd;
        let keys = values(40 * row, 7);
        let vals = values(40 * row, 8);
        let mut cache = KvCache::default();
        for p in 0..37 {
            cache.append_row(&keys[p * row..][..row], &vals[p * row..][..row], n_kv);
        }
        // Rewind into the middle of a block, then overwrite its tail with other positions.
        cache.truncate(20, hd);
        for p in 20..33 {
            let p_src = p + 7;
            cache.append_row(
                &keys[p_src * row..][..row],
                &vals[p_src * row..][..row],
                n_kv,
            );
        }
        let [k, v] = cache.tensors(n_kv, hd, &Device::Cpu).unwrap();
        let (k, v) = (
            k.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            v.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
        );
        assert_eq!(k.len(), n_kv * 33 * hd);
        let rounded = |x: f32| f16::from_f32(x).to_f32();
        for h in 0..n_kv {
            for p in 0..33 {
                let src = if p < 20 { p } else { p + 7 };
                for d in 0..hd {
                    let at = (h * 33 + p) * hd + d;
                    assert_eq!(
                        k[at],
                        rounded(keys[src * row + h * hd + d]),
                        "key {h} {p} {d}"
                    );
                    assert_eq!(
                        v[at],
                        rounded(vals[src * row + h * hd + d]),
                        "value {h} {p} {d}"
                    );
                }
            }
        }
    }
}
