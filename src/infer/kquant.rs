//! Matrix-vector products over GGUF k-quant weights (Q4_K, Q6_K), read in place.
//!
//! Why not candle's `QMatMul` for decoding: candle 0.11 repacks Q4_K weights into tiles with
//! f32 scales (a third more bytes to stream per token, kept beside the original copy) and runs
//! Q6_K through a generic dot product. A decoding step reads every weight once, so its speed is
//! set by bytes streamed per token; these kernels read the GGUF blocks as they are, with the
//! activation quantised to Q8_K the way llama.cpp's `quantize_row_q8_K` does, so the integer
//! sums are the ones llama.cpp computes. Rows are split across rayon's threads, and the
//! products that share an input (Q/K/V, gate/up) run in one parallel region.
//!
//! The block layouts are GGUF's (`block_q4_K`, `block_q6_K`, `block_q8_K` in ggml).

use half::f16;

pub const QK_K: usize = 256;

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

const _: () = assert!(std::mem::size_of::<BlockQ4K>() == 144);
const _: () = assert!(std::mem::size_of::<BlockQ6K>() == 210);
const _: () = assert!(std::mem::size_of::<BlockQ8K>() == 292);

/// Whether this CPU runs the SIMD kernels here. Elsewhere (ARM, x86 without AVX2) the model
/// keeps candle's kernels, which have NEON versions: the portable ones here are a reference.
pub fn accelerated() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        simd::level() != simd::Level::None
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Weight formats with a kernel here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KQuant {
    Q4K,
    Q6K,
}

impl KQuant {
    pub fn from_ggml(dtype: candle_core::quantized::GgmlDType) -> Option<Self> {
        use candle_core::quantized::GgmlDType;
        match dtype {
            GgmlDType::Q4K => Some(Self::Q4K),
            GgmlDType::Q6K => Some(Self::Q6K),
            _ => None,
        }
    }

    pub fn block_bytes(self) -> usize {
        match self {
            Self::Q4K => std::mem::size_of::<BlockQ4K>(),
            Self::Q6K => std::mem::size_of::<BlockQ6K>(),
        }
    }
}

/// A borrowed `rows × cols` weight matrix in a k-quant format, row-major blocks.
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
            && cols.is_multiple_of(QK_K)
            && bytes.len() == rows * cols / QK_K * format.block_bytes();
        fits.then_some(Self {
            format,
            rows,
            cols,
            bytes,
        })
    }

    fn row_bytes(&self) -> usize {
        self.cols / QK_K * self.format.block_bytes()
    }

    /// The blocks of weight row `row`.
    pub(crate) fn row<T: Copy>(&self, row: usize) -> &[T] {
        cast_blocks(&self.bytes[row * self.row_bytes()..(row + 1) * self.row_bytes()])
    }

    fn row_dots<const R: usize>(&self, row: usize, xs: [&[BlockQ8K]; R]) -> [f32; R] {
        match self.format {
            KQuant::Q4K => dot::<BlockQ4K, R>(self.row(row), xs),
            KQuant::Q6K => dot::<BlockQ6K, R>(self.row(row), xs),
        }
    }

    /// `row_dots` for any number of activation rows up to [`ROWS_PER_DECODE`], written to `out`:
    /// a group smaller than a full one still decodes the weight row once.
    fn row_dots_into(&self, row: usize, xs: &[&[BlockQ8K]], out: &mut [f32]) {
        fn fixed<const R: usize>(
            m: &KQuantMatrix,
            row: usize,
            xs: &[&[BlockQ8K]],
            out: &mut [f32],
        ) {
            out.copy_from_slice(&m.row_dots::<R>(row, xs.try_into().expect("R rows")));
        }
        match xs.len() {
            1 => fixed::<1>(self, row, xs, out),
            2 => fixed::<2>(self, row, xs, out),
            3 => fixed::<3>(self, row, xs, out),
            4 => fixed::<4>(self, row, xs, out),
            5 => fixed::<5>(self, row, xs, out),
            6 => fixed::<6>(self, row, xs, out),
            7 => fixed::<7>(self, row, xs, out),
            8 => fixed::<8>(self, row, xs, out),
            n => unreachable!("{n} rows in one group"),
        }
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
    const LANES: usize = 16;
    x.chunks_exact(QK_K)
        .map(|chunk| {
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
        })
        .collect()
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

/// A weight block format with kernels for every CPU level.
trait KernelBlock: Copy {
    fn dot_scalar(w: &[Self], x: &[BlockQ8K]) -> f32;
    /// # Safety
    /// The CPU must have AVX-512 F and BW.
    #[cfg(target_arch = "x86_64")]
    unsafe fn dot_avx512<const R: usize>(w: &[Self], xs: [&[BlockQ8K]; R]) -> [f32; R];
    /// # Safety
    /// The CPU must have AVX2 and FMA.
    #[cfg(target_arch = "x86_64")]
    unsafe fn dot_avx2<const R: usize>(w: &[Self], xs: [&[BlockQ8K]; R]) -> [f32; R];
}

impl KernelBlock for BlockQ4K {
    fn dot_scalar(w: &[Self], x: &[BlockQ8K]) -> f32 {
        dot_q4k_scalar(w, x)
    }
    #[cfg(target_arch = "x86_64")]
    unsafe fn dot_avx512<const R: usize>(w: &[Self], xs: [&[BlockQ8K]; R]) -> [f32; R] {
        simd::dot_q4k_avx512(w, xs)
    }
    #[cfg(target_arch = "x86_64")]
    unsafe fn dot_avx2<const R: usize>(w: &[Self], xs: [&[BlockQ8K]; R]) -> [f32; R] {
        simd::dot_q4k(w, xs)
    }
}

impl KernelBlock for BlockQ6K {
    fn dot_scalar(w: &[Self], x: &[BlockQ8K]) -> f32 {
        dot_q6k_scalar(w, x)
    }
    #[cfg(target_arch = "x86_64")]
    unsafe fn dot_avx512<const R: usize>(w: &[Self], xs: [&[BlockQ8K]; R]) -> [f32; R] {
        simd::dot_q6k_avx512(w, xs)
    }
    #[cfg(target_arch = "x86_64")]
    unsafe fn dot_avx2<const R: usize>(w: &[Self], xs: [&[BlockQ8K]; R]) -> [f32; R] {
        simd::dot_q6k(w, xs)
    }
}

/// `w · x` for each of the `R` activation rows in `xs`. Each result is computed by the same
/// operations in the same order whatever `R` is, so a prompt (many rows) and a decoding step
/// (one row) give bit-identical products.
fn dot<B: KernelBlock, const R: usize>(w: &[B], xs: [&[BlockQ8K]; R]) -> [f32; R] {
    #[cfg(target_arch = "x86_64")]
    match simd::level() {
        // SAFETY: `level` checked the CPU features each kernel enables.
        simd::Level::Avx512 => return unsafe { B::dot_avx512(w, xs) },
        simd::Level::Avx2 => return unsafe { B::dot_avx2(w, xs) },
        simd::Level::None => {}
    }
    xs.map(|x| B::dot_scalar(w, x))
}

/// Portable Q4_K · Q8_K; the reference the SIMD kernel is tested against.
pub fn dot_q4k_scalar(w: &[BlockQ4K], x: &[BlockQ8K]) -> f32 {
    w.iter()
        .zip(x)
        .map(|(w, x)| {
            let (scales, mins) = q4k_scales_mins(&w.scales);
            let mut sum = 0i32;
            for j in 0..4 {
                for l in 0..32 {
                    let byte = w.qs[32 * j + l];
                    let lo = i32::from(byte & 0x0F) * i32::from(x.qs[64 * j + l]);
                    let hi = i32::from(byte >> 4) * i32::from(x.qs[64 * j + 32 + l]);
                    sum += lo * i32::from(scales[2 * j]) + hi * i32::from(scales[2 * j + 1]);
                }
            }
            let min_sum: i32 = (0..8)
                .map(|s| {
                    i32::from(mins[s]) * (i32::from(x.bsums[2 * s]) + i32::from(x.bsums[2 * s + 1]))
                })
                .sum();
            x.d * (w.d.to_f32() * sum as f32 - w.dmin.to_f32() * min_sum as f32)
        })
        .sum()
}

/// Portable Q6_K · Q8_K; the reference the SIMD kernel is tested against.
pub fn dot_q6k_scalar(w: &[BlockQ6K], x: &[BlockQ8K]) -> f32 {
    w.iter()
        .zip(x)
        .map(|(w, x)| {
            let mut sum = 0i32;
            for half in 0..2 {
                let (ql, qh) = (&w.ql[64 * half..], &w.qh[32 * half..]);
                for l in 0..32 {
                    let quad = [
                        (ql[l] & 0x0F) | ((qh[l] & 3) << 4),
                        (ql[l + 32] & 0x0F) | (((qh[l] >> 2) & 3) << 4),
                        (ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4),
                        (ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4),
                    ];
                    for (i, q) in quad.into_iter().enumerate() {
                        let index = 128 * half + 32 * i + l;
                        sum += (i32::from(q) - 32)
                            * i32::from(x.qs[index])
                            * i32::from(w.scales[index / 16]);
                    }
                }
            }
            x.d * w.d.to_f32() * sum as f32
        })
        .sum()
}

#[cfg(target_arch = "x86_64")]
mod simd {
    use super::{BlockQ4K, BlockQ6K, BlockQ8K};
    use std::arch::x86_64::*;

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Level {
        None,
        Avx2,
        Avx512,
    }

    /// How far ahead of the block being multiplied the weights are prefetched. The kernels do
    /// enough work per cache line that the out-of-order window alone keeps too few loads in
    /// flight: without prefetching one core streams 12 GB/s where it can read 30.
    const PREFETCH_BYTES: usize = 2048;

    /// Asks for the cache lines `PREFETCH_BYTES` after the start of `block`, which may lie
    /// past the end of the matrix (a prefetch never faults).
    #[inline(always)]
    unsafe fn prefetch_ahead<T>(block: &T) {
        let ahead = (block as *const T)
            .cast::<i8>()
            .wrapping_add(PREFETCH_BYTES);
        let mut line = 0;
        while line < std::mem::size_of::<T>() {
            _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(line));
            line += 64;
        }
    }

    /// The widest kernels this CPU runs; `PRECIS_KQUANT=avx2` holds them to AVX2 (to compare
    /// the two on one machine: on some CPUs 512-bit integer work is not faster).
    pub fn level() -> Level {
        static LEVEL: std::sync::OnceLock<Level> = std::sync::OnceLock::new();
        *LEVEL.get_or_init(|| {
            let avx2 = is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma");
            let allow_512 = std::env::var("PRECIS_KQUANT").map_or(true, |v| v != "avx2");
            if avx2
                && allow_512
                && is_x86_feature_detected!("avx512f")
                && is_x86_feature_detected!("avx512bw")
            {
                Level::Avx512
            } else if avx2 {
                Level::Avx2
            } else {
                Level::None
            }
        })
    }

    /// `q4k_scales_mins` with word operations (ggml's `utmp` form): the scalar one costs as
    /// much as the products themselves.
    #[inline(always)]
    fn q4k_scales_mins_fast(packed: &[u8; 12]) -> ([u8; 8], [u8; 8]) {
        const KMASK1: u32 = 0x3f3f_3f3f;
        const KMASK2: u32 = 0x0f0f_0f0f;
        const KMASK3: u32 = 0x0303_0303;
        let word = |i: usize| u32::from_le_bytes(packed[4 * i..4 * i + 4].try_into().unwrap());
        let (w0, w1, w2) = (word(0), word(1), word(2));
        let scales_lo = w0 & KMASK1;
        let scales_hi = (w2 & KMASK2) | (((w0 >> 6) & KMASK3) << 4);
        let mins_lo = w1 & KMASK1;
        let mins_hi = ((w2 >> 4) & KMASK2) | (((w1 >> 6) & KMASK3) << 4);
        let join =
            |lo: u32, hi: u32| -> [u8; 8] { (u64::from(lo) | (u64::from(hi) << 32)).to_le_bytes() };
        (join(scales_lo, scales_hi), join(mins_lo, mins_hi))
    }

    /// Σ_s min[s] · (activation sum of the 32 values of sub-block s), as 4 partial i32 sums.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn q4k_min_products(mins: &[u8; 8], bsums: &[i16; 16]) -> __m128i {
        let bsums = _mm256_loadu_si256(bsums.as_ptr().cast());
        let pair_sums = _mm_hadd_epi16(
            _mm256_castsi256_si128(bsums),
            _mm256_extracti128_si256(bsums, 1),
        );
        let mins = _mm_cvtepu8_epi16(_mm_loadl_epi64(mins.as_ptr().cast()));
        _mm_madd_epi16(mins, pair_sums)
    }

    #[target_feature(enable = "avx2,fma")]
    unsafe fn hsum128(v: __m128) -> f32 {
        let s = _mm_add_ps(v, _mm_movehl_ps(v, v));
        _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)))
    }

    #[target_feature(enable = "avx2,fma")]
    unsafe fn hsum(v: __m256) -> f32 {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)))
    }

    /// Two i16 scales for the halves of a 16-lane product: lanes 0-7 get `lo`, 8-15 `hi`.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn scale_pair(lo: i16, hi: i16) -> __m256i {
        _mm256_set_m128i(_mm_set1_epi16(hi), _mm_set1_epi16(lo))
    }

    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn dot_q4k<const R: usize>(w: &[BlockQ4K], xs: [&[BlockQ8K]; R]) -> [f32; R] {
        let nibble = _mm256_set1_epi8(0x0F);
        let mut acc = [_mm256_setzero_ps(); R];
        let mut acc_min = [_mm_setzero_ps(); R];
        for (b, w) in w.iter().enumerate() {
            prefetch_ahead(w);
            let (scales, mins) = q4k_scales_mins_fast(&w.scales);
            let (d, dmin) = (w.d.to_f32(), w.dmin.to_f32());
            let mut q = [_mm256_setzero_si256(); 8];
            for j in 0..4 {
                let q4 = _mm256_loadu_si256(w.qs.as_ptr().add(32 * j).cast());
                q[2 * j] = _mm256_and_si256(q4, nibble);
                q[2 * j + 1] = _mm256_and_si256(_mm256_srli_epi16(q4, 4), nibble);
            }
            for r in 0..R {
                let x = &xs[r][b];
                acc_min[r] = _mm_fmadd_ps(
                    _mm_set1_ps(x.d * dmin),
                    _mm_cvtepi32_ps(q4k_min_products(&mins, &x.bsums)),
                    acc_min[r],
                );
                let mut sum = _mm256_setzero_si256();
                for (s, q) in q.iter().enumerate() {
                    let xq = _mm256_loadu_si256(x.qs.as_ptr().add(32 * s).cast());
                    let p = _mm256_madd_epi16(
                        _mm256_maddubs_epi16(*q, xq),
                        _mm256_set1_epi16(i16::from(scales[s])),
                    );
                    sum = _mm256_add_epi32(sum, p);
                }
                acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(x.d * d), _mm256_cvtepi32_ps(sum), acc[r]);
            }
        }
        std::array::from_fn(|r| hsum(acc[r]) - hsum128(acc_min[r]))
    }

    /// Sixteen-bit lane indices for `_mm512_permutexvar_epi16`: lane `i` takes element
    /// `groups[i / width]`.
    const fn lane_index(groups: [u16; 4], width: usize) -> [u16; 32] {
        let mut index = [0u16; 32];
        let mut i = 0;
        while i < 32 {
            index[i] = groups[(i / width) % 4];
            i += 1;
        }
        index
    }

    /// Q4_K: one 64-value group (two sub-blocks) per step. The group's 32 bytes are loaded
    /// into both halves of a register and shifted per half (low nibbles below, high nibbles
    /// above), which puts the weights in the order of the activations: these are plain loads,
    /// folded into the multiplies. Each product lane takes its sub-block's scale by a lane
    /// permutation of the eight scales.
    #[target_feature(enable = "avx512f,avx512bw,avx2,fma")]
    pub unsafe fn dot_q4k_avx512<const R: usize>(w: &[BlockQ4K], xs: [&[BlockQ8K]; R]) -> [f32; R] {
        // Byte shuffles that spread scale 2j over the low 256 bits and 2j+1 over the high
        // ones, zero-extended to 16 bits.
        let index: [__m512i; 4] = std::array::from_fn(|j| {
            let lo = _mm256_set1_epi16(0x8000u16 as i16 | (2 * j) as i16);
            let hi = _mm256_set1_epi16(0x8000u16 as i16 | (2 * j + 1) as i16);
            _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1)
        });
        let nibble_shift = _mm512_inserti64x4(_mm512_setzero_si512(), _mm256_set1_epi16(4), 1);
        let nibble = _mm512_set1_epi8(0x0F);
        // Spreads the eight mins to 16-bit lanes, each twice: one per 16-value activation sum.
        let min_index = {
            let pair = |m: i16| 0x8000u16 as i16 | m;
            _mm256_setr_epi16(
                pair(0),
                pair(0),
                pair(1),
                pair(1),
                pair(2),
                pair(2),
                pair(3),
                pair(3),
                pair(4),
                pair(4),
                pair(5),
                pair(5),
                pair(6),
                pair(6),
                pair(7),
                pair(7),
            )
        };
        let mut acc = [_mm512_setzero_ps(); R];
        let mut acc_min = [_mm256_setzero_ps(); R];
        for (b, w) in w.iter().enumerate() {
            prefetch_ahead(w);
            let (scales, mins) = q4k_scales_mins_fast(&w.scales);
            let (d, dmin) = (w.d.to_f32(), w.dmin.to_f32());
            let scales8 = _mm512_set1_epi64(i64::from_le_bytes(scales));
            let mins16 =
                _mm256_shuffle_epi8(_mm256_set1_epi64x(i64::from_le_bytes(mins)), min_index);
            let mut q = [_mm512_setzero_si512(); 4];
            let mut sc = [_mm512_setzero_si512(); 4];
            for j in 0..4 {
                let bytes =
                    _mm512_broadcast_i64x4(_mm256_loadu_si256(w.qs.as_ptr().add(32 * j).cast()));
                q[j] = _mm512_and_si512(_mm512_srlv_epi16(bytes, nibble_shift), nibble);
                sc[j] = _mm512_shuffle_epi8(scales8, index[j]);
            }
            for r in 0..R {
                let x = &xs[r][b];
                let bsums = _mm256_loadu_si256(x.bsums.as_ptr().cast());
                acc_min[r] = _mm256_fmadd_ps(
                    _mm256_set1_ps(x.d * dmin),
                    _mm256_cvtepi32_ps(_mm256_madd_epi16(mins16, bsums)),
                    acc_min[r],
                );
                let xq = x.qs.as_ptr();
                let mut sum = _mm512_setzero_si512();
                for j in 0..4 {
                    let x = _mm512_loadu_si512(xq.add(64 * j).cast());
                    sum = _mm512_add_epi32(
                        sum,
                        _mm512_madd_epi16(_mm512_maddubs_epi16(q[j], x), sc[j]),
                    );
                }
                acc[r] = _mm512_fmadd_ps(_mm512_set1_ps(x.d * d), _mm512_cvtepi32_ps(sum), acc[r]);
            }
        }
        std::array::from_fn(|r| _mm512_reduce_add_ps(acc[r]) - hsum(acc_min[r]))
    }

    /// Q6_K: one 128-value half per step. Its 64 `ql` bytes give values 0-63 (low nibbles)
    /// and 64-127 (high nibbles) of the half in order, each joined with two bits of `qh`
    /// shifted per 256-bit lane; each product lane takes its 16-value group's scale.
    #[target_feature(enable = "avx512f,avx512bw,avx2,fma")]
    pub unsafe fn dot_q6k_avx512<const R: usize>(w: &[BlockQ6K], xs: [&[BlockQ8K]; R]) -> [f32; R] {
        const INDEX: [[u16; 32]; 4] = [
            lane_index([0, 1, 2, 3], 8),
            lane_index([4, 5, 6, 7], 8),
            lane_index([8, 9, 10, 11], 8),
            lane_index([12, 13, 14, 15], 8),
        ];
        let index: [__m512i; 4] = INDEX.map(|i| _mm512_loadu_si512(i.as_ptr().cast()));
        // qh bit pairs: (0, 2) for the low nibbles' two lanes, (4, 6) for the high ones.
        let shift_low = _mm512_inserti64x4(_mm512_setzero_si512(), _mm256_set1_epi16(2), 1);
        let shift_high = _mm512_inserti64x4(_mm512_set1_epi16(4), _mm256_set1_epi16(6), 1);
        let low4 = _mm512_set1_epi8(0x0F);
        let two_bits = _mm512_set1_epi8(3);
        let mut acc = [_mm512_setzero_ps(); R];
        for (b, w) in w.iter().enumerate() {
            prefetch_ahead(w);
            let d = w.d.to_f32();
            let scales16 = _mm256_cvtepi8_epi16(_mm_loadu_si128(w.scales.as_ptr().cast()));
            let scales512 = _mm512_castsi256_si512(scales16);
            // [half][low, high] values (0..63, stored plus 32) with the matching scale lanes.
            let mut q = [[_mm512_setzero_si512(); 2]; 2];
            let mut sc = [[_mm512_setzero_si512(); 2]; 2];
            for half in 0..2 {
                let ql = _mm512_loadu_si512(w.ql.as_ptr().add(64 * half).cast());
                let qh =
                    _mm512_broadcast_i64x4(_mm256_loadu_si256(w.qh.as_ptr().add(32 * half).cast()));
                let high = |shift: __m512i| {
                    _mm512_slli_epi16(_mm512_and_si512(_mm512_srlv_epi16(qh, shift), two_bits), 4)
                };
                q[half] = [
                    _mm512_or_si512(_mm512_and_si512(ql, low4), high(shift_low)),
                    _mm512_or_si512(
                        _mm512_and_si512(_mm512_srli_epi16(ql, 4), low4),
                        high(shift_high),
                    ),
                ];
                sc[half] = [
                    _mm512_permutexvar_epi16(index[2 * half], scales512),
                    _mm512_permutexvar_epi16(index[2 * half + 1], scales512),
                ];
            }
            for r in 0..R {
                let x = &xs[r][b];
                // Values are stored plus 32: subtract 32 · Σ scale[s] · (sum of sub-block s).
                let bsums = _mm256_loadu_si256(x.bsums.as_ptr().cast());
                let offset = _mm256_slli_epi32(_mm256_madd_epi16(scales16, bsums), 5);
                let mut sum = _mm512_setzero_si512();
                for half in 0..2 {
                    let x_low = _mm512_loadu_si512(x.qs.as_ptr().add(128 * half).cast());
                    let x_high = _mm512_loadu_si512(x.qs.as_ptr().add(128 * half + 64).cast());
                    sum = _mm512_add_epi32(
                        sum,
                        _mm512_add_epi32(
                            _mm512_madd_epi16(_mm512_maddubs_epi16(q[half][0], x_low), sc[half][0]),
                            _mm512_madd_epi16(
                                _mm512_maddubs_epi16(q[half][1], x_high),
                                sc[half][1],
                            ),
                        ),
                    );
                }
                let sum = _mm512_sub_epi32(sum, _mm512_zextsi256_si512(offset));
                acc[r] = _mm512_fmadd_ps(_mm512_set1_ps(x.d * d), _mm512_cvtepi32_ps(sum), acc[r]);
            }
        }
        std::array::from_fn(|r| _mm512_reduce_add_ps(acc[r]))
    }

    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn dot_q6k<const R: usize>(w: &[BlockQ6K], xs: [&[BlockQ8K]; R]) -> [f32; R] {
        let low4 = _mm256_set1_epi8(0x0F);
        let two_bits = _mm256_set1_epi8(3);
        let mut acc = [_mm256_setzero_ps(); R];
        for (b, w) in w.iter().enumerate() {
            prefetch_ahead(w);
            let d = w.d.to_f32();
            let scales16 = _mm256_cvtepi8_epi16(_mm_loadu_si128(w.scales.as_ptr().cast()));
            // The 256 values (0..63, stored plus 32) in eight runs of 32, in order.
            let mut q = [_mm256_setzero_si256(); 8];
            for half in 0..2 {
                let ql0 = _mm256_loadu_si256(w.ql.as_ptr().add(64 * half).cast());
                let ql1 = _mm256_loadu_si256(w.ql.as_ptr().add(64 * half + 32).cast());
                let qh = _mm256_loadu_si256(w.qh.as_ptr().add(32 * half).cast());
                let high = |shift: i32| -> __m256i {
                    let bits = match shift {
                        0 => qh,
                        2 => _mm256_srli_epi16(qh, 2),
                        4 => _mm256_srli_epi16(qh, 4),
                        _ => _mm256_srli_epi16(qh, 6),
                    };
                    _mm256_slli_epi16(_mm256_and_si256(bits, two_bits), 4)
                };
                q[4 * half] = _mm256_or_si256(_mm256_and_si256(ql0, low4), high(0));
                q[4 * half + 1] = _mm256_or_si256(_mm256_and_si256(ql1, low4), high(2));
                q[4 * half + 2] =
                    _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), low4), high(4));
                q[4 * half + 3] =
                    _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), low4), high(6));
            }
            for r in 0..R {
                let x = &xs[r][b];
                // Values are stored plus 32: subtract 32 · Σ scale[s] · (sum of sub-block s).
                let bsums = _mm256_loadu_si256(x.bsums.as_ptr().cast());
                let offset = _mm256_slli_epi32(_mm256_madd_epi16(scales16, bsums), 5);
                let mut sum = _mm256_setzero_si256();
                for (i, q) in q.iter().enumerate() {
                    let xq = _mm256_loadu_si256(x.qs.as_ptr().add(32 * i).cast());
                    let scales =
                        scale_pair(i16::from(w.scales[2 * i]), i16::from(w.scales[2 * i + 1]));
                    sum = _mm256_add_epi32(
                        sum,
                        _mm256_madd_epi16(_mm256_maddubs_epi16(*q, xq), scales),
                    );
                }
                acc[r] = _mm256_fmadd_ps(
                    _mm256_set1_ps(x.d * d),
                    _mm256_cvtepi32_ps(_mm256_sub_epi32(sum, offset)),
                    acc[r],
                );
            }
        }
        std::array::from_fn(|r| hsum(acc[r]))
    }
}

/// Rows handed to a thread at a time: small enough to balance two threads when one is
/// briefly descheduled, large enough that scheduling costs stay negligible.
const ROWS_PER_TASK: usize = 16;

/// Activation rows multiplied together against each weight row: its blocks are decoded once
/// for this many rows, which stay in registers.
const ROWS_PER_DECODE: usize = 8;

/// Bytes of quantised activation rows a product keeps in cache at a time.
const X_TILE_BYTES: usize = 256 << 10;

/// Activation rows from which a product goes through the tiled kernels when the CPU has them:
/// below, unpacking the tiles costs more than it saves, and each row's result equals its
/// single-row product bit for bit (a speculative draft's verification relies on it).
pub const TILED_FROM_ROWS: usize = 16;

/// `X W^T` for each matrix, for `x` holding `m` rows of the matrices' common column count;
/// each result is `m × matrix.rows`, row-major. The rows are quantised once for all matrices.
/// Prompt-sized products go through the tiled AVX-512 VNNI kernels where the CPU has them;
/// otherwise every matrix runs in one parallel region and row `i` of each result equals the
/// one-row product of `x_i` bit for bit.
pub fn gemm_many(matrices: &[KQuantMatrix], x: &[f32], m: usize) -> Vec<Vec<f32>> {
    let Some(cols) = matrices.first().map(|matrix| matrix.cols) else {
        return Vec::new();
    };
    debug_assert!(matrices.iter().all(|matrix| matrix.cols == cols));
    debug_assert_eq!(x.len(), m * cols);
    let xq = quantize_q8k(x);
    let x_rows: Vec<&[BlockQ8K]> = xq.chunks_exact(cols / QK_K).collect();
    #[cfg(target_arch = "x86_64")]
    if m >= TILED_FROM_ROWS {
        if let Some(tiled) = super::kquant_tiles::gemm_many(matrices, &x_rows) {
            return tiled;
        }
    }
    gemm_by_rows(matrices, &x_rows)
}

/// [`gemm_many`] for one matrix.
pub fn gemm(matrix: &KQuantMatrix, x: &[f32], m: usize) -> Vec<f32> {
    gemm_many(&[*matrix], x, m).remove(0)
}

/// The portable product: each result through the decoding kernels, the weight rows of every
/// matrix split into tasks of one parallel region.
fn gemm_by_rows(matrices: &[KQuantMatrix], x_rows: &[&[BlockQ8K]]) -> Vec<Vec<f32>> {
    let Some(k) = matrices.first().map(|matrix| matrix.cols) else {
        return Vec::new();
    };
    let m = x_rows.len();
    // Weight-row-major while computing, so each task writes one contiguous run.
    let mut by_weight_row: Vec<Vec<f32>> = matrices
        .iter()
        .map(|matrix| vec![0f32; matrix.rows * m])
        .collect();
    // A task's weight rows are multiplied with one tile of activation rows after another, so
    // that both stay in the core's cache (a long row of 35 blocks times 600 prompt tokens
    // would not).
    let tile = (X_TILE_BYTES / (k / QK_K * std::mem::size_of::<BlockQ8K>())).max(ROWS_PER_DECODE);
    let mut tasks: Vec<(&KQuantMatrix, usize, &mut [f32])> = matrices
        .iter()
        .zip(by_weight_row.iter_mut())
        .flat_map(|(matrix, out)| {
            out.chunks_mut(ROWS_PER_TASK * m)
                .enumerate()
                .map(move |(task, out)| (matrix, task * ROWS_PER_TASK, out))
        })
        .collect();
    super::team::Team::get().for_each_mut(&mut tasks, |(matrix, first, out)| {
        let (matrix, first) = (*matrix, *first);
        for (t, tile_rows) in x_rows.chunks(tile).enumerate() {
            for (i, out) in out.chunks_exact_mut(m).enumerate() {
                let out = &mut out[t * tile..t * tile + tile_rows.len()];
                for (group, out) in tile_rows
                    .chunks(ROWS_PER_DECODE)
                    .zip(out.chunks_mut(ROWS_PER_DECODE))
                {
                    matrix.row_dots_into(first + i, group, out);
                }
            }
        }
    });
    if m == 1 {
        return by_weight_row;
    }
    by_weight_row
        .into_iter()
        .zip(matrices)
        .map(|(by_weight_row, matrix)| {
            let mut out = vec![0f32; m * matrix.rows];
            for (row, column) in by_weight_row.chunks_exact(m).enumerate() {
                for (i, v) in column.iter().enumerate() {
                    out[i * matrix.rows + row] = *v;
                }
            }
            out
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic pseudo-random bytes (xorshift), so failures reproduce.
    fn bytes(n: usize, seed: u64) -> Vec<u8> {
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

    /// Random blocks with sane f16 scales (random bits could be NaN or huge).
    fn q4k_blocks(n: usize, seed: u64) -> Vec<BlockQ4K> {
        let raw = bytes(n * 144, seed);
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

    fn q6k_blocks(n: usize, seed: u64) -> Vec<BlockQ6K> {
        let raw = bytes(n * 210, seed);
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

    fn activations(n: usize, seed: u64) -> Vec<f32> {
        bytes(n, seed)
            .into_iter()
            .map(|b| (f32::from(b) - 127.5) / 40.0)
            .collect()
    }

    fn close(a: f32, b: f32) -> bool {
        (a - b).abs() <= 1e-4 * a.abs().max(b.abs()).max(1.0)
    }

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
    fn scalar_q4k_dot_equals_dequantised_dot() {
        // Dequantise by ggml's formula, independently of the fused integer form.
        let w = q4k_blocks(3, 11);
        let x = quantize_q8k(&activations(768, 5));
        let mut expected = 0f64;
        for (w, x) in w.iter().zip(&x) {
            let (scales, mins) = q4k_scales_mins(&w.scales);
            for i in 0..QK_K {
                let (j, l, high) = (i / 64, i % 32, (i % 64) >= 32);
                let byte = w.qs[32 * j + l];
                let q = if high { byte >> 4 } else { byte & 0x0F };
                let s = i / 32;
                let v = w.d.to_f32() * f32::from(scales[s]) * f32::from(q)
                    - w.dmin.to_f32() * f32::from(mins[s]);
                expected += f64::from(v) * f64::from(f32::from(x.qs[i]) * x.d);
            }
        }
        assert!(close(dot_q4k_scalar(&w, &x), expected as f32));
    }

    #[test]
    fn scalar_q6k_dot_equals_dequantised_dot() {
        let w = q6k_blocks(2, 17);
        let x = quantize_q8k(&activations(512, 9));
        let mut expected = 0f64;
        for (w, x) in w.iter().zip(&x) {
            for i in 0..QK_K {
                let (half, r) = (i / 128, i % 128);
                let (quarter, l) = (r / 32, r % 32);
                let ql = w.ql[64 * half + l + 32 * (quarter % 2)];
                let low = if quarter >= 2 { ql >> 4 } else { ql & 0x0F };
                let high = (w.qh[32 * half + l] >> (2 * quarter)) & 3;
                let q = i32::from(low | (high << 4)) - 32;
                let v = w.d.to_f32() * f32::from(w.scales[i / 16]) * q as f32;
                expected += f64::from(v) * f64::from(f32::from(x.qs[i]) * x.d);
            }
        }
        assert!(close(dot_q6k_scalar(&w, &x), expected as f32));
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn tiled_products_match_row_products() {
        if !crate::infer::kquant_tiles::available() {
            return;
        }
        // 48 weight rows (3 tiles) and 19 activation rows (groups of 4 and a remainder of 3).
        let (rows, cols, m) = (48, 768, 19);
        let w4 = q4k_blocks(rows * 3, 21);
        let w6 = q6k_blocks(rows * 3, 22);
        // SAFETY: plain-old-data blocks viewed as bytes.
        let b4 = unsafe { std::slice::from_raw_parts(w4.as_ptr().cast::<u8>(), w4.len() * 144) };
        let b6 = unsafe { std::slice::from_raw_parts(w6.as_ptr().cast::<u8>(), w6.len() * 210) };
        let xq = quantize_q8k(&activations(cols * m, 23));
        let x_rows: Vec<&[BlockQ8K]> = xq.chunks_exact(cols / QK_K).collect();
        for (format, bytes) in [(KQuant::Q4K, b4), (KQuant::Q6K, b6)] {
            let matrix = KQuantMatrix::new(format, rows, cols, bytes).unwrap();
            let tiled = crate::infer::kquant_tiles::gemm_many(&[matrix], &x_rows)
                .unwrap()
                .remove(0);
            let by_rows = gemm_by_rows(&[matrix], &x_rows).remove(0);
            for (i, (a, b)) in tiled.iter().zip(&by_rows).enumerate() {
                assert!(close(*a, *b), "{format:?} element {i}: {a} vs {b}");
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn simd_kernels_match_scalar() {
        let level = simd::level();
        for seed in 1..20 {
            let x = quantize_q8k(&activations(1536, seed));
            let w4 = q4k_blocks(6, seed * 31);
            let w6 = q6k_blocks(6, seed * 37);
            let (r4, r6) = (dot_q4k_scalar(&w4, &x), dot_q6k_scalar(&w6, &x));
            if level != simd::Level::None {
                // SAFETY: AVX2 and FMA are available (checked by `level`).
                let ([s4], [s6]) = unsafe { (simd::dot_q4k(&w4, [&x]), simd::dot_q6k(&w6, [&x])) };
                assert!(close(s4, r4), "avx2 q4k seed {seed}: {s4} vs {r4}");
                assert!(close(s6, r6), "avx2 q6k seed {seed}: {s6} vs {r6}");
            }
            if level == simd::Level::Avx512 {
                // SAFETY: AVX-512 F/BW are available (checked by `level`).
                let ([s4], [s6]) = unsafe {
                    (
                        simd::dot_q4k_avx512(&w4, [&x]),
                        simd::dot_q6k_avx512(&w6, [&x]),
                    )
                };
                assert!(close(s4, r4), "avx512 q4k seed {seed}: {s4} vs {r4}");
                assert!(close(s6, r6), "avx512 q6k seed {seed}: {s6} vs {r6}");
            }
        }
    }

    #[test]
    fn gemm_many_computes_every_row_of_every_matrix() {
        let (rows, cols) = (37, 512);
        let w4 = q4k_blocks(rows * 2, 7);
        let w6 = q6k_blocks(rows * 2, 8);
        let as_bytes = |b: &[u8]| b.to_vec();
        // SAFETY: plain-old-data blocks viewed as bytes.
        let b4 = as_bytes(unsafe {
            std::slice::from_raw_parts(w4.as_ptr().cast::<u8>(), w4.len() * 144)
        });
        let b6 = as_bytes(unsafe {
            std::slice::from_raw_parts(w6.as_ptr().cast::<u8>(), w6.len() * 210)
        });
        let m4 = KQuantMatrix::new(KQuant::Q4K, rows, cols, &b4).unwrap();
        let m6 = KQuantMatrix::new(KQuant::Q6K, rows, cols, &b6).unwrap();
        assert!(KQuantMatrix::new(KQuant::Q4K, rows, cols, &b4[1..]).is_none());
        let x = activations(cols, 4);
        let out = gemm_many(&[m4, m6], &x, 1);
        // Below the tiled path, every row of a product of 2 to 15 rows (one group of 8 and
        // groups of 1 to 7) must equal the one-row result exactly, for both matrices at once.
        for n in 2..TILED_FROM_ROWS {
            let xs = activations(cols * n, 5);
            let products = gemm_many(&[m4, m6], &xs, n);
            for (product, m) in products.iter().zip([m4, m6]) {
                for (i, x) in xs.chunks_exact(cols).enumerate() {
                    let single = gemm(&m, x, 1);
                    assert_eq!(
                        &product[i * rows..(i + 1) * rows],
                        &single[..],
                        "row {i} of {n}"
                    );
                }
            }
        }
        let xq = quantize_q8k(&x);
        for r in 0..rows {
            assert!(close(out[0][r], dot_q4k_scalar(&w4[2 * r..2 * r + 2], &xq)));
            assert!(close(out[1][r], dot_q6k_scalar(&w6[2 * r..2 * r + 2], &xq)));
        }
    }
}
