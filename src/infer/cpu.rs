//! The CPU level every kernel dispatches on, decided once per process.
//!
//! The build is portable in this sense: each SIMD kernel is compiled for its instructions
//! (`#[target_feature]`) whatever the build's target, and runs only where [`level`] says the CPU
//! has them; every other path is plain Rust. The level is detected at run time, the first time a
//! kernel asks, and `PRECIS_KQUANT=avx2` holds it to AVX2 (to compare the two levels on one
//! machine: on some CPUs 512-bit integer work is not faster). That variable is read here and
//! nowhere else.
//!
//! Who reads the level: the k-quant products (`kernels::kquant`: portable below AVX2, where the
//! model keeps candle's kernels; AVX2; AVX-512; the prompt tiles, VNNI or AVX2), the decoding
//! attention's scores (`kernels::attention`: AVX-512, AVX2, else portable), and [`vectorized`],
//! which compiles the decoder's plain loops (SiLU, softmax, norms, RoPE, the weighted sums of
//! values, the greedy pick) once per level.

use std::sync::OnceLock;

/// What this CPU runs, each level including the ones below it. `--format json` reports it
/// (`timings.cpu_level`): speed, and where two levels sum in another order the text, depend on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CpuLevel {
    /// Plain Rust only (other architectures, x86 without AVX2 and FMA).
    Portable,
    /// AVX2, FMA and F16C (every CPU with AVX2 has the other two).
    Avx2,
    /// AVX-512 F and BW besides.
    Avx512,
    /// AVX-512 VNNI besides.
    Avx512Vnni,
}

/// A run's level is its process's.
impl Default for CpuLevel {
    fn default() -> Self {
        level()
    }
}

/// The level every kernel of this process runs at.
pub fn level() -> CpuLevel {
    static LEVEL: OnceLock<CpuLevel> = OnceLock::new();
    *LEVEL.get_or_init(|| {
        let setting = std::env::var("PRECIS_KQUANT").ok();
        held_to(detected(), setting.as_deref())
    })
}

/// Runs `work` compiled for this CPU's level: the build targets the x86-64 baseline, where
/// `f32::mul_add` is a call to the C library's `fmaf` and loops vectorise 4 wide; inlined into
/// these functions, the same code gets FMA instructions and 8 or 16 lanes. The results are the
/// same at every level (Rust never fuses or reorders float operations on its own; `mul_add` is
/// fused at every level). `work` and what it calls must be inlined to gain: mark them
/// `#[inline]` or `#[inline(always)]`.
#[inline(always)]
pub fn vectorized<R>(work: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    match level() {
        // SAFETY: the level says the CPU has these instructions.
        CpuLevel::Avx512 | CpuLevel::Avx512Vnni => return unsafe { with_avx512(work) },
        CpuLevel::Avx2 => return unsafe { with_avx2(work) },
        CpuLevel::Portable => {}
    }
    work()
}

/// # Safety
/// The CPU has AVX2, FMA and F16C.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn with_avx2<R>(work: impl FnOnce() -> R) -> R {
    work()
}

/// # Safety
/// The CPU has AVX-512 F and BW, AVX2, FMA and F16C.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx2,fma,f16c")]
unsafe fn with_avx512<R>(work: impl FnOnce() -> R) -> R {
    work()
}

/// The lowest level the build's target allows (`.cargo/config.toml`), when this CPU is below
/// it: the binary would die on an illegal instruction, and `main` says why instead. Read with
/// CPUID itself, as `is_x86_feature_detected!` answers `true` for every feature the target
/// enables, whatever the CPU.
pub fn missing_build_level() -> Option<&'static str> {
    #[cfg(all(target_arch = "x86_64", target_feature = "avx2"))]
    {
        use std::arch::x86_64::{__cpuid, __cpuid_count, _xgetbv};
        // SAFETY: CPUID exists on every x86-64 CPU; XGETBV is used only where CPUID says the
        // OS enabled it (OSXSAVE).
        let has_level = unsafe {
            let leaf1 = __cpuid(1);
            let (fma, osxsave, avx, f16c) = (
                leaf1.ecx & (1 << 12) != 0,
                leaf1.ecx & (1 << 27) != 0,
                leaf1.ecx & (1 << 28) != 0,
                leaf1.ecx & (1 << 29) != 0,
            );
            let avx2 = __cpuid_count(7, 0).ebx & (1 << 5) != 0;
            // The OS saves the vector registers' upper halves (XCR0 bits 1 and 2).
            let os_saves_ymm = osxsave && _xgetbv(0) & 0b110 == 0b110;
            fma && avx && f16c && avx2 && os_saves_ymm
        };
        if !has_level {
            return Some("x86-64-v3 (AVX2, FMA, F16C)");
        }
    }
    None
}

/// `detected`, held to AVX2 when `PRECIS_KQUANT` is `avx2` (any other value changes nothing).
fn held_to(detected: CpuLevel, setting: Option<&str>) -> CpuLevel {
    match setting {
        Some("avx2") => detected.min(CpuLevel::Avx2),
        _ => detected,
    }
}

/// The highest level whose instructions this CPU has.
fn detected() -> CpuLevel {
    #[cfg(target_arch = "x86_64")]
    {
        let avx2 = is_x86_feature_detected!("avx2")
            && is_x86_feature_detected!("fma")
            && is_x86_feature_detected!("f16c");
        let avx512 =
            avx2 && is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512bw");
        if avx512 && is_x86_feature_detected!("avx512vnni") {
            CpuLevel::Avx512Vnni
        } else if avx512 {
            CpuLevel::Avx512
        } else if avx2 {
            CpuLevel::Avx2
        } else {
            CpuLevel::Portable
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        CpuLevel::Portable
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn avx2_holds_the_level_to_avx2_and_nothing_else_does() {
        use CpuLevel::*;
        for level in [Portable, Avx2, Avx512, Avx512Vnni] {
            assert_eq!(held_to(level, None), level);
            assert_eq!(held_to(level, Some("avx512")), level);
            assert_eq!(held_to(level, Some("")), level);
            assert_eq!(held_to(level, Some("avx2")), level.min(Avx2));
        }
    }

    #[test]
    fn the_level_is_one_the_cpu_has() {
        assert!(level() <= detected());
    }
}
