//! Run-time kernel selection, decided once per process.
//!
//! [`Isa`] names an instruction-set level. [`kernels()`] builds, on first use, a [`Kernels`]
//! table holding one implementation per kernel family for the best level this CPU supports,
//! or for the level forced by the `OCTET_KERNEL` environment variable
//! (`scalar|avx2|avx512|neon|dotprod|i8mm`). A forced level that the CPU lacks, or an unknown
//! name, is ignored, and [`describe()`] says so: a forced path must never execute instructions
//! the CPU does not have.
//!
//! Each family module exposes `for_isa(isa) -> &'static FamilyKernel`, returning its best
//! implementation at or below `isa`; tests call it for every level in [`Isa::supported()`] so
//! that every path the host can run is checked, not only the best one.

use std::sync::OnceLock;

/// An instruction-set level. Levels of one architecture are ordered: each implies the ones
/// before it (`I8mm` implies `Dotprod` implies `Neon`; `Avx512` implies `Avx2`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Isa {
    /// Portable Rust, no SIMD intrinsics. Runs everywhere; the reference for every kernel.
    Scalar,
    /// x86_64 AVX2 + FMA (Haswell, Zen 1 and later).
    Avx2,
    /// x86_64 AVX-512 F/BW/VL plus VNNI (Ice Lake, Sapphire Rapids, Zen 4 and later).
    Avx512,
    /// aarch64 Advanced SIMD (every aarch64 CPU).
    Neon,
    /// aarch64 NEON plus the dot-product extension (SDOT).
    Dotprod,
    /// aarch64 NEON plus dotprod plus the int8 matrix-multiply extension (SMMLA).
    I8mm,
}

impl Isa {
    /// Every level, in order.
    pub const ALL: [Isa; 6] = [Isa::Scalar, Isa::Avx2, Isa::Avx512, Isa::Neon, Isa::Dotprod, Isa::I8mm];

    /// The name used by `OCTET_KERNEL` and in kernel names.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Scalar => "scalar",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
            Isa::Neon => "neon",
            Isa::Dotprod => "dotprod",
            Isa::I8mm => "i8mm",
        }
    }

    /// Parses an `OCTET_KERNEL` value.
    pub fn from_name(name: &str) -> Option<Isa> {
        Isa::ALL.into_iter().find(|isa| isa.name().eq_ignore_ascii_case(name.trim()))
    }

    /// True when this CPU can execute code for this level.
    pub fn is_supported(self) -> bool {
        match self {
            Isa::Scalar => true,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => {
                Isa::Avx2.is_supported()
                    && is_x86_feature_detected!("avx512f")
                    && is_x86_feature_detected!("avx512bw")
                    && is_x86_feature_detected!("avx512vl")
                    && is_x86_feature_detected!("avx512vnni")
            }
            #[cfg(target_arch = "aarch64")]
            Isa::Neon => std::arch::is_aarch64_feature_detected!("neon"),
            #[cfg(target_arch = "aarch64")]
            Isa::Dotprod => Isa::Neon.is_supported() && std::arch::is_aarch64_feature_detected!("dotprod"),
            #[cfg(target_arch = "aarch64")]
            Isa::I8mm => Isa::Dotprod.is_supported() && std::arch::is_aarch64_feature_detected!("i8mm"),
            #[allow(unreachable_patterns)]
            _ => false,
        }
    }

    /// Every level this CPU supports, from `Scalar` up.
    pub fn supported() -> Vec<Isa> {
        Isa::ALL.into_iter().filter(|isa| isa.is_supported()).collect()
    }

    /// The highest level this CPU supports.
    pub fn best() -> Isa {
        *Isa::supported().last().expect("scalar is always supported")
    }
}

/// One implementation per kernel family, all for the same [`Isa`].
pub struct Kernels {
    /// The level the table was built for.
    pub isa: Isa,
    /// int8 matrix multiply.
    pub int8: &'static crate::int8::Int8Kernel,
    /// f32 matrix multiply.
    pub f32: &'static crate::f32::F32Kernel,
    /// Embedding-table gather-dequantize.
    pub gather: &'static crate::gather::GatherKernel,
    /// Row-wise vector helpers.
    pub vector: &'static crate::vector::VectorKernel,
    /// Fused attention.
    pub attention: &'static crate::attention::AttentionKernel,
    /// Why `OCTET_KERNEL` was ignored, if it was set and could not be honoured.
    pub override_note: Option<String>,
}

impl Kernels {
    /// Builds the table for one level. The level must be supported by this CPU.
    pub fn for_isa(isa: Isa) -> Option<Kernels> {
        if !isa.is_supported() {
            return None;
        }
        Some(Kernels {
            isa,
            int8: crate::int8::for_isa(isa),
            f32: crate::f32::for_isa(isa),
            gather: crate::gather::for_isa(isa),
            vector: crate::vector::for_isa(isa),
            attention: crate::attention::for_isa(isa),
            override_note: None,
        })
    }
}

/// Chooses the level from an `OCTET_KERNEL` value (or none) and this CPU.
fn choose(forced: Option<&str>) -> (Isa, Option<String>) {
    let best = Isa::best();
    match forced.map(str::trim).filter(|s| !s.is_empty()) {
        None => (best, None),
        Some(name) => match Isa::from_name(name) {
            Some(isa) if isa.is_supported() => (isa, None),
            Some(isa) => (best, Some(format!("OCTET_KERNEL={} ignored: this CPU does not support it; using {}", isa.name(), best.name()))),
            None => (best, Some(format!("OCTET_KERNEL={name} ignored: not one of scalar, avx2, avx512, neon, dotprod, i8mm; using {}", best.name()))),
        },
    }
}

/// The process-wide kernel table, built once on first use.
pub fn kernels() -> &'static Kernels {
    static TABLE: OnceLock<Kernels> = OnceLock::new();
    TABLE.get_or_init(|| {
        let forced = std::env::var("OCTET_KERNEL").ok();
        let (isa, note) = choose(forced.as_deref());
        let mut table = Kernels::for_isa(isa).expect("chosen level is supported");
        table.override_note = note;
        table
    })
}

/// One line naming the chosen kernel of every family, for `--version` output and benchmarks,
/// e.g. `int8=x86_64-i8-16x4-avx512vnni f32=... gather=... vector=... attention=...`.
pub fn describe() -> String {
    let k = kernels();
    let mut s = format!(
        "isa={} int8={} f32={} gather={} vector={} attention={}",
        k.isa.name(),
        k.int8.name,
        k.f32.name,
        k.gather.name,
        k.vector.name,
        k.attention.name
    );
    if let Some(note) = &k.override_note {
        s.push_str(" (");
        s.push_str(note);
        s.push(')');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for isa in Isa::ALL {
            assert_eq!(Isa::from_name(isa.name()), Some(isa));
        }
        assert_eq!(Isa::from_name(" AVX2 "), Some(Isa::Avx2));
        assert_eq!(Isa::from_name("sse"), None);
    }

    #[test]
    fn scalar_always_supported_and_best_is_supported() {
        assert!(Isa::Scalar.is_supported());
        assert!(Isa::best().is_supported());
    }

    #[test]
    fn forcing_honours_supported_and_reports_the_rest() {
        assert_eq!(choose(Some("scalar")), (Isa::Scalar, None));
        let (isa, note) = choose(Some("bogus"));
        assert_eq!(isa, Isa::best());
        assert!(note.unwrap().contains("bogus"));
        let foreign = if cfg!(target_arch = "x86_64") { "i8mm" } else { "avx512" };
        let (isa, note) = choose(Some(foreign));
        assert_eq!(isa, Isa::best());
        assert!(note.unwrap().contains("does not support"));
    }

    #[test]
    fn every_supported_level_builds_a_table() {
        for isa in Isa::supported() {
            let table = Kernels::for_isa(isa).unwrap();
            assert!(!table.int8.name.is_empty() && !table.f32.name.is_empty());
            assert!(!table.gather.name.is_empty() && !table.vector.name.is_empty() && !table.attention.name.is_empty());
        }
        assert!(!describe().is_empty());
    }
}
