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
//! model keeps candle's kernels; AVX2; AVX-512; the VNNI tiles for prompts) and the decoding
//! attention's scores (`kernels::attention`: AVX-512, else portable).

use std::sync::OnceLock;

/// What this CPU runs, each level including the ones below it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum CpuLevel {
    /// Plain Rust only (other architectures, x86 without AVX2 and FMA).
    Portable,
    /// AVX2 and FMA.
    Avx2,
    /// AVX-512 F and BW besides.
    Avx512,
    /// AVX-512 VNNI besides.
    Avx512Vnni,
}

/// The level every kernel of this process runs at.
pub fn level() -> CpuLevel {
    static LEVEL: OnceLock<CpuLevel> = OnceLock::new();
    *LEVEL.get_or_init(|| {
        let setting = std::env::var("PRECIS_KQUANT").ok();
        held_to(detected(), setting.as_deref())
    })
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
        let avx2 = is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma");
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
