//! The GGUF block layouts (`block_q4_K`, `block_q6_K`, `block_q8_K`, `block_q5_0`,
//! `block_q8_0` in ggml), the matrices made of them, and the quantisers of activation rows
//! (Q8_K for the k-quants, Q8_0 for the 32-value formats).

#[cfg(test)]
use crate::infer::kernels::testing::pseudo_random_bytes;
use half::f16;

pub const QK_K: usize = 256;

/// Values per block of the 32-value formats (Q5_0, Q8_0), which llama.cpp's quantiser uses
/// for the matrices whose rows do not divide into 256 (the 0.5B model's 896 columns).
pub const QK8_0: usize = 32;

#[repr(C)]
#[derive(Clone, Copy)]
pub struct BlockQ4K {
    pub(crate) d: f16,
    pub(crate) dmin: f16,
    /// Eight 6-bit scales and eight 6-bit mins, packed.
    pub(crate) scales: [u8; 12],
    /// 256 nibbles: byte `32 j + l` holds value `64 j + l` (low) and `64 j + 32 + l` (high).
    pub(crate) qs: [u8; QK_K / 2],
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct BlockQ6K {
    /// Low four bits of each value.
    pub(crate) ql: [u8; QK_K / 2],
    /// High two bits of each value.
    pub(crate) qh: [u8; QK_K / 4],
    /// One scale per 16 values.
    pub(crate) scales: [i8; QK_K / 16],
    pub(crate) d: f16,
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct BlockQ8K {
    pub(crate) d: f32,
    pub(crate) qs: [i8; QK_K],
    /// Sums of each 16 consecutive `qs`.
    pub(crate) bsums: [i16; QK_K / 16],
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct BlockQ5_0 {
    pub(crate) d: f16,
    /// The fifth bit of each value: bit `j` (little-endian) belongs to value `j`.
    pub(crate) qh: [u8; 4],
    /// 32 nibbles: byte `j` holds value `j` (low) and value `16 + j` (high). Values are
    /// stored plus 16.
    pub(crate) qs: [u8; QK8_0 / 2],
}

/// A Q8_0 block: a weight format, and the activations' format for Q5_0 and Q8_0 weights.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct BlockQ8_0 {
    pub(crate) d: f16,
    pub(crate) qs: [i8; QK8_0],
}

const _: () = assert!(std::mem::size_of::<BlockQ5_0>() == 22);
const _: () = assert!(std::mem::size_of::<BlockQ8_0>() == 34);
const _: () = assert!(std::mem::size_of::<BlockQ4K>() == 144);
const _: () = assert!(std::mem::size_of::<BlockQ6K>() == 210);
const _: () = assert!(std::mem::size_of::<BlockQ8K>() == 292);

/// Weight formats with a kernel here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KQuant {
    Q4K,
    Q6K,
    Q5_0,
    Q8_0,
}

impl KQuant {
    pub fn from_ggml(dtype: candle_core::quantized::GgmlDType) -> Option<Self> {
        use candle_core::quantized::GgmlDType;
        match dtype {
            GgmlDType::Q4K => Some(Self::Q4K),
            GgmlDType::Q6K => Some(Self::Q6K),
            GgmlDType::Q5_0 => Some(Self::Q5_0),
            GgmlDType::Q8_0 => Some(Self::Q8_0),
            _ => None,
        }
    }

    pub fn block_bytes(self) -> usize {
        match self {
            Self::Q4K => std::mem::size_of::<BlockQ4K>(),
            Self::Q6K => std::mem::size_of::<BlockQ6K>(),
            Self::Q5_0 => std::mem::size_of::<BlockQ5_0>(),
            Self::Q8_0 => std::mem::size_of::<BlockQ8_0>(),
        }
    }

    /// Values per block.
    pub fn block_values(self) -> usize {
        match self {
            Self::Q4K | Self::Q6K => QK_K,
            Self::Q5_0 | Self::Q8_0 => QK8_0,
        }
    }

    /// Whether the activations go as Q8_K (the k-quants) rather than Q8_0.
    pub fn takes_q8k(self) -> bool {
        matches!(self, Self::Q4K | Self::Q6K)
    }
}

/// A borrowed `rows × cols` weight matrix in one of the formats above, row-major blocks.
#[derive(Clone, Copy)]
pub struct KQuantMatrix<'a> {
    pub format: KQuant,
    pub rows: usize,
    pub cols: usize,
    pub bytes: &'a [u8],
}

impl<'a> KQuantMatrix<'a> {
    /// `None` when the bytes do not hold `rows × cols` values of `format` or `cols` does not
    /// divide into blocks.
    pub fn new(format: KQuant, rows: usize, cols: usize, bytes: &'a [u8]) -> Option<Self> {
        let fits = cols > 0
            && cols.is_multiple_of(format.block_values())
            && bytes.len() == rows * cols / format.block_values() * format.block_bytes();
        fits.then_some(Self {
            format,
            rows,
            cols,
            bytes,
        })
    }

    fn row_bytes(&self) -> usize {
        self.cols / self.format.block_values() * self.format.block_bytes()
    }

    /// The blocks of weight row `row`.
    pub(crate) fn row<T: Copy>(&self, row: usize) -> &[T] {
        cast_blocks(&self.bytes[row * self.row_bytes()..(row + 1) * self.row_bytes()])
    }
}

fn cast_blocks<T: Copy>(bytes: &[u8]) -> &[T] {
    let size = std::mem::size_of::<T>();
    assert!(bytes.len().is_multiple_of(size));
    // The block types hold only integers and f16/f32 (any bit pattern is valid) and have
    // alignment 1 or their first field's; check the pointer to be safe on odd offsets.
    assert!((bytes.as_ptr() as usize).is_multiple_of(std::mem::align_of::<T>()));
    // SAFETY: length and alignment checked above; every bit pattern is a valid `T`.
    unsafe { std::slice::from_raw_parts(bytes.as_ptr().cast::<T>(), bytes.len() / size) }
}

/// Quantises `x` (a multiple of 256 long) to Q8_K blocks, as ggml's `quantize_row_q8_K_ref`.
/// Written so that the compiler vectorises every pass (the first version, one fold carrying
/// the largest magnitude and its signed value, ran a value at a time: 15 µs for the 8960
/// activations of the 1.5B model's down projection, 1% of a decoding step, on one thread
/// while the other waited).
pub fn quantize_q8k(x: &[f32]) -> Vec<BlockQ8K> {
    // At the baseline target, `round_ties_even` is a call to the C library for each value.
    crate::infer::cpu::vectorized(|| quantize_blocks(x))
}

/// A loop rather than `map` and `collect`, whose code would not be inlined into the level's.
#[inline(always)]
fn quantize_blocks(x: &[f32]) -> Vec<BlockQ8K> {
    let mut blocks = Vec::with_capacity(x.len() / QK_K);
    for chunk in x.chunks_exact(QK_K) {
        blocks.push(quantize_block(chunk));
    }
    blocks
}

#[inline(always)]
fn quantize_block(chunk: &[f32]) -> BlockQ8K {
    const LANES: usize = 16;
    let mut lanes = [0f32; LANES];
    for values in chunk.chunks_exact(LANES) {
        for (lane, v) in lanes.iter_mut().zip(values) {
            // NaN never wins, as in ggml's `fabsf(x) > amax`.
            *lane = if v.abs() > *lane { v.abs() } else { *lane };
        }
    }
    let amax = lanes.iter().fold(0f32, |m, &l| if l > m { l } else { m });
    let mut block = BlockQ8K {
        d: 0.0,
        qs: [0; QK_K],
        bsums: [0; QK_K / 16],
    };
    if amax == 0.0 {
        return block;
    }
    // ggml keeps the first value of the largest magnitude, with its sign.
    let max = *chunk
        .iter()
        .find(|v| v.abs() == amax)
        .expect("amax is in the chunk");
    // ggml's current rule (-127, not -128: its IQ kernels need the symmetric range).
    let iscale = -127.0 / max;
    for (q, &v) in block.qs.iter_mut().zip(chunk) {
        // ggml's `MIN(127, nearest_int(iscale * v))`, where a NaN converts to 0. The
        // saturating `as i32` would convert one value at a time.
        let r = (iscale * v).round_ties_even();
        let r = if r.is_nan() {
            0.0
        } else {
            r.clamp(-128.0, 127.0)
        };
        // SAFETY: `r` is finite and within the range of i8.
        *q = unsafe { r.to_int_unchecked::<i8>() };
    }
    for (sum, group) in block.bsums.iter_mut().zip(block.qs.chunks_exact(16)) {
        *sum = group.iter().map(|&q| i16::from(q)).sum();
    }
    block.d = 1.0 / iscale;
    block
}

/// Quantises `x` (a multiple of 32 long) to Q8_0 blocks as llama.cpp does on x86 CPUs with
/// AVX2 (`quantize_row_q8_0`'s AVX branch: the values times `127 / max|x|`, rounded to the
/// nearest even, and the scale `max|x| / 127` stored as f16). Its portable reference differs
/// in two roundings (it multiplies by the inverse of the f32 scale and rounds halves away from
/// zero); the products here are compared with llama.cpp on x86.
pub fn quantize_q8_0(x: &[f32]) -> Vec<BlockQ8_0> {
    crate::infer::cpu::vectorized(|| {
        let mut blocks = Vec::with_capacity(x.len() / QK8_0);
        for chunk in x.chunks_exact(QK8_0) {
            blocks.push(quantize_block_q8_0(chunk));
        }
        blocks
    })
}

#[inline(always)]
fn quantize_block_q8_0(chunk: &[f32]) -> BlockQ8_0 {
    let amax = chunk.iter().fold(0f32, |m, v| m.max(v.abs()));
    let scale = if amax == 0.0 { 0.0 } else { 127.0 / amax };
    BlockQ8_0 {
        d: f16::from_f32(amax / 127.0),
        // |v · scale| <= 127: the conversion never saturates (a NaN becomes 0, as in the
        // saturating conversion llama.cpp's `_mm256_cvtps_epi32` is not; neither occurs in a
        // model's activations).
        qs: std::array::from_fn(|i| (chunk[i] * scale).round_ties_even() as i8),
    }
}

/// The eight (scale, min) pairs of a Q4_K block (ggml's `get_scale_min_k4`).
pub(crate) fn q4k_scales_mins(packed: &[u8; 12]) -> ([u8; 8], [u8; 8]) {
    let mut scales = [0; 8];
    let mut mins = [0; 8];
    for j in 0..8 {
        if j < 4 {
            scales[j] = packed[j] & 63;
            mins[j] = packed[j + 4] & 63;
        } else {
            scales[j] = (packed[j + 4] & 0x0F) | ((packed[j - 4] >> 6) << 4);
            mins[j] = (packed[j + 4] >> 4) | ((packed[j] >> 6) << 4);
        }
    }
    (scales, mins)
}

/// Random blocks with sane f16 scales (random bits could be NaN or huge).
#[cfg(test)]
pub(crate) fn q4k_blocks(n: usize, seed: u64) -> Vec<BlockQ4K> {
    let raw = pseudo_random_bytes(n * 144, seed);
    raw.chunks_exact(144)
        .enumerate()
        .map(|(i, b)| BlockQ4K {
            d: f16::from_f32(0.001 + (i % 7) as f32 * 0.0003),
            dmin: f16::from_f32(0.0005 + (i % 5) as f32 * 0.0002),
            scales: b[4..16].try_into().unwrap(),
            qs: b[16..].try_into().unwrap(),
        })
        .collect()
}

/// [`q4k_blocks`] for Q6_K.
#[cfg(test)]
pub(crate) fn q6k_blocks(n: usize, seed: u64) -> Vec<BlockQ6K> {
    let raw = pseudo_random_bytes(n * 210, seed);
    raw.chunks_exact(210)
        .enumerate()
        .map(|(i, b)| BlockQ6K {
            ql: b[..128].try_into().unwrap(),
            qh: b[128..192].try_into().unwrap(),
            scales: std::array::from_fn(|j| b[192 + j] as i8),
            d: f16::from_f32(0.002 + (i % 3) as f32 * 0.0004),
        })
        .collect()
}

/// [`q4k_blocks`] for Q5_0.
#[cfg(test)]
pub(crate) fn q5_0_blocks(n: usize, seed: u64) -> Vec<BlockQ5_0> {
    let raw = pseudo_random_bytes(n * 20, seed);
    raw.chunks_exact(20)
        .enumerate()
        .map(|(i, b)| BlockQ5_0 {
            d: f16::from_f32(0.003 + (i % 5) as f32 * 0.0005),
            qh: b[..4].try_into().unwrap(),
            qs: b[4..].try_into().unwrap(),
        })
        .collect()
}

/// [`q4k_blocks`] for Q8_0 weights.
#[cfg(test)]
pub(crate) fn q8_0_blocks(n: usize, seed: u64) -> Vec<BlockQ8_0> {
    let raw = pseudo_random_bytes(n * QK8_0, seed);
    raw.chunks_exact(QK8_0)
        .enumerate()
        .map(|(i, b)| BlockQ8_0 {
            d: f16::from_f32(0.001 + (i % 7) as f32 * 0.0002),
            // -128 included: the kernels must take the whole range of i8.
            qs: std::array::from_fn(|j| b[j] as i8),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::infer::kernels::testing::activations;

    #[test]
    fn q8k_matches_ggml_rules() {
        let x = activations(512, 3);
        let q = quantize_q8k(&x);
        for (block, chunk) in q.iter().zip(x.chunks_exact(QK_K)) {
            let amax = chunk.iter().fold(0f32, |m, v| m.max(v.abs()));
            let i = chunk.iter().position(|v| v.abs() == amax).unwrap();
            // The first largest magnitude maps to -127 (iscale = -127 / max).
            assert_eq!(block.qs[i], -127);
            for (j, group) in block.qs.chunks_exact(16).enumerate() {
                assert_eq!(
                    block.bsums[j],
                    group.iter().map(|&q| i16::from(q)).sum::<i16>()
                );
            }
            for (&q, &v) in block.qs.iter().zip(chunk) {
                assert!((f32::from(q) * block.d - v).abs() <= block.d.abs() * 0.5 + 1e-6);
            }
        }
        assert!(quantize_q8k(&[0.0; 256])[0].qs.iter().all(|&q| q == 0));
    }

    /// ggml's `quantize_row_q8_K_ref`, a value at a time.
    fn q8k_reference(chunk: &[f32]) -> ([i8; QK_K], f32) {
        let (mut amax, mut max) = (0f32, 0f32);
        for &v in chunk {
            if v.abs() > amax {
                (amax, max) = (v.abs(), v);
            }
        }
        let mut qs = [0i8; QK_K];
        if amax == 0.0 {
            return (qs, 0.0);
        }
        let iscale = -127.0 / max;
        for (q, &v) in qs.iter_mut().zip(chunk) {
            *q = ((iscale * v).round_ties_even() as i32).min(127) as i8;
        }
        (qs, 1.0 / iscale)
    }

    #[test]
    fn q8k_equals_the_reference_bit_for_bit() {
        let mut x = activations(QK_K * 8, 11);
        // Ties for the largest magnitude with either sign first, a NaN, a negative zero.
        x[3] = 4.0;
        x[9] = -4.0;
        x[QK_K + 5] = -4.0;
        x[QK_K + 7] = 4.0;
        x[2 * QK_K] = f32::NAN;
        x[3 * QK_K + 1] = -0.0;
        for (block, chunk) in quantize_q8k(&x).iter().zip(x.chunks_exact(QK_K)) {
            let (qs, d) = q8k_reference(chunk);
            assert_eq!(block.qs, qs);
            assert_eq!(block.d.to_bits(), d.to_bits());
        }
    }

    #[test]
    fn q8_0_rounds_as_llama_cpp_does_on_x86() {
        // A largest magnitude of 127 makes the factor exactly 1: the halves show the rounding
        // (to even, as `_mm256_round_ps`; ggml's portable `roundf` would give 3, -4, 1).
        let mut x = [0f32; QK8_0];
        x[..5].copy_from_slice(&[127.0, 2.5, -3.5, 0.5, -126.4]);
        let block = quantize_q8_0(&x)[0];
        assert_eq!(block.qs[..5], [127, 2, -4, 0, -126]);
        assert_eq!(block.d.to_f32(), f16::from_f32(1.0).to_f32());
        // The largest magnitude maps to ±127 with its sign; a zero block has scale 0.
        let x = activations(QK8_0 * 4, 12);
        for (block, chunk) in quantize_q8_0(&x).iter().zip(x.chunks_exact(QK8_0)) {
            let i = (0..QK8_0)
                .max_by(|&a, &b| chunk[a].abs().total_cmp(&chunk[b].abs()))
                .unwrap();
            assert_eq!(i32::from(block.qs[i]).abs(), 127);
            assert_eq!(block.qs[i].signum() as f32, chunk[i].signum());
        }
        let zero = quantize_q8_0(&[0.0; QK8_0])[0];
        assert_eq!((zero.d.to_f32(), zero.qs), (0.0, [0; QK8_0]));
    }
}
