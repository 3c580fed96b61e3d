//! Run-time kernel selection, decided once per process.
//!
//! [`Isa`] names an instruction-set level. [`kernels()`] builds, on first use, a [`Kernels`]
//! table holding one implementation per kernel family for the best level this CPU supports,
//! or for the level forced by the `OCTET_KERNEL` environment variable
//! (`scalar|avx2|avx512|amx|neon|dotprod|i8mm`). A forced level that the CPU lacks, or an unknown
//! name, is ignored, and [`describe()`] says so: a forced path must never execute instructions
//! the CPU does not have.
//!
//! `amx` is the AVX-512 level plus the AMX int8 tiles: its int8 kernel is
//! `x86_64-u8i8-32x32-amx` (which hands small m and grouped layouts to VNNI) and every other
//! family uses its AVX-512 implementation. It is supported only when CPUID reports AMX-TILE and
//! AMX-INT8, the OS enables the tile state, and Linux grants the process tile data permission
//! (requested on first use, [`crate::int8::amx::availability`]); otherwise the best level is
//! `avx512` and [`describe()`] says why AMX is not used. `OCTET_KERNEL=avx512` forces VNNI.
//!
//! Each family module exposes `for_isa(isa) -> &'static FamilyKernel`, returning its best
//! implementation at or below `isa`; tests call it for every level in [`Isa::supported()`] so
//! that every path the host can run is checked, not only the best one.

use std::sync::OnceLock;

/// An instruction-set level. Levels of one architecture are ordered: each implies the ones
/// before it (`I8mm` implies `Dotprod` implies `Neon`; `Amx` implies `Avx512` implies `Avx2`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Isa {
    /// Portable Rust, no SIMD intrinsics. Runs everywhere; the reference for every kernel.
    Scalar,
    /// x86_64 AVX2 + FMA (Haswell, Zen 1 and later).
    Avx2,
    /// x86_64 AVX-512 F/BW/VL plus VNNI (Ice Lake, Sapphire Rapids, Zen 4 and later).
    Avx512,
    /// `Avx512` plus AMX-TILE and AMX-INT8 (Sapphire Rapids and later), with the tile data
    /// permission granted by the OS.
    Amx,
    /// aarch64 Advanced SIMD (every aarch64 CPU).
    Neon,
    /// aarch64 NEON plus the dot-product extension (SDOT).
    Dotprod,
    /// aarch64 NEON plus dotprod plus the int8 matrix-multiply extension (SMMLA).
    I8mm,
}

impl Isa {
    /// Every level, in order.
    pub const ALL: [Isa; 7] = [
        Isa::Scalar,
        Isa::Avx2,
        Isa::Avx512,
        Isa::Amx,
        Isa::Neon,
        Isa::Dotprod,
        Isa::I8mm,
    ];

    /// The name used by `OCTET_KERNEL` and in kernel names.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Scalar => "scalar",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
            Isa::Amx => "amx",
            Isa::Neon => "neon",
            Isa::Dotprod => "dotprod",
            Isa::I8mm => "i8mm",
        }
    }

    /// Parses an `OCTET_KERNEL` value.
    pub fn from_name(name: &str) -> Option<Isa> {
        Isa::ALL
            .into_iter()
            .find(|isa| isa.name().eq_ignore_ascii_case(name.trim()))
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
            #[cfg(target_arch = "x86_64")]
            Isa::Amx => Isa::Avx512.is_supported() && crate::int8::amx::availability().is_ok(),
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

/// Which attention int8 models run (`OCTET_ATTENTION`). Models whose int8 layers allow it pick
/// a bf16 kernel ([`Kernels::attention_bf16`] or [`Kernels::attention_bf16_scores`], where the
/// CPU has them) by their own default unless this says otherwise (see
/// `octet::layers::attention::attention_math`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttentionPrecision {
    /// `OCTET_ATTENTION` unset: each model's default.
    ModelDefault,
    /// `OCTET_ATTENTION=f32`: f32 attention for every model.
    F32,
    /// `OCTET_ATTENTION=bf16`: all-bf16 attention for every int8 model, where the CPU has it.
    Bf16,
}

impl AttentionPrecision {
    /// Parses an `OCTET_ATTENTION` value; an unknown one is ignored, with a note saying so.
    pub fn from_env(value: Option<&str>) -> (AttentionPrecision, Option<String>) {
        match value.map(|v| v.trim().to_ascii_lowercase()).as_deref() {
            None | Some("") => (AttentionPrecision::ModelDefault, None),
            Some("f32") => (AttentionPrecision::F32, None),
            Some("bf16") => (AttentionPrecision::Bf16, None),
            Some(other) => (
                AttentionPrecision::ModelDefault,
                Some(format!("OCTET_ATTENTION={other} ignored: not f32 or bf16")),
            ),
        }
    }
}

/// One implementation per kernel family, all for the same [`Isa`].
pub struct Kernels {
    /// The level the table was built for.
    pub isa: Isa,
    /// int8 matrix multiply.
    pub int8: &'static crate::int8::Int8Kernel,
    /// Asymmetric activation rows for the int8 matrix multiply (TFLite's hybrid kernels).
    pub int8_asymmetric: &'static crate::int8::asymmetric::AsymmetricQuantizer,
    /// f32 matrix multiply.
    pub f32: &'static crate::f32::F32Kernel,
    /// Embedding-table gather-dequantize.
    pub gather: &'static crate::gather::GatherKernel,
    /// Row-wise vector helpers.
    pub vector: &'static crate::vector::VectorKernel,
    /// Fused attention.
    pub attention: &'static crate::attention::AttentionKernel,
    /// Fused attention on bf16 dot products, where the level has them; callers choose it per
    /// layer, for int8 models only, as [`Kernels::attention_precision`] says.
    pub attention_bf16: Option<&'static crate::attention::AttentionKernel>,
    /// Attention with only the scores (Q K^T) on bf16 dot products and P V in f32, where the
    /// level has them; chosen per layer like `attention_bf16`.
    pub attention_bf16_scores: Option<&'static crate::attention::AttentionKernel>,
    /// Which attention int8 models run: `OCTET_ATTENTION`, or each model's own default.
    pub attention_precision: AttentionPrecision,
    /// Why `OCTET_ATTENTION` was ignored, if it was set to something else than f32 or bf16.
    pub attention_note: Option<String>,
    /// Why `OCTET_KERNEL` was ignored, if it was set and could not be honoured.
    pub override_note: Option<String>,
    /// Why the AMX level is not in use on a CPU with AVX-512 VNNI, when it is not.
    pub amx_note: Option<String>,
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
            int8_asymmetric: crate::int8::asymmetric::for_isa(isa),
            f32: crate::f32::for_isa(isa),
            gather: crate::gather::for_isa(isa),
            vector: crate::vector::for_isa(isa),
            attention: crate::attention::for_isa(isa),
            attention_bf16: crate::attention::bf16_for_isa(isa),
            attention_bf16_scores: crate::attention::bf16_scores_for_isa(isa),
            attention_precision: AttentionPrecision::ModelDefault,
            attention_note: None,
            override_note: None,
            amx_note: None,
        })
    }
}

/// Why AMX is unavailable on this CPU, when the AVX-512 level it builds on is there.
fn amx_unavailable() -> Option<String> {
    #[cfg(target_arch = "x86_64")]
    if Isa::Avx512.is_supported() {
        if let Err(why) = crate::int8::amx::availability() {
            return Some(why.to_string());
        }
    }
    None
}

/// Chooses the level from an `OCTET_KERNEL` value (or none), the levels this CPU supports
/// (in [`Isa::ALL`] order) and why AMX is unavailable (if it is, on an AVX-512 CPU).
/// Returns the level and the note on an ignored override.
fn choose(forced: Option<&str>, supported: &[Isa], amx_unavailable: Option<&str>) -> (Isa, Option<String>) {
    let best = *supported.last().expect("scalar is always supported");
    match forced.map(str::trim).filter(|s| !s.is_empty()) {
        None => (best, None),
        Some(name) => match Isa::from_name(name) {
            Some(isa) if supported.contains(&isa) => (isa, None),
            Some(Isa::Amx) if amx_unavailable.is_some() => (
                best,
                Some(format!(
                    "OCTET_KERNEL=amx ignored: {}; using {}",
                    amx_unavailable.unwrap_or_default(),
                    best.name()
                )),
            ),
            Some(isa) => (
                best,
                Some(format!(
                    "OCTET_KERNEL={} ignored: this CPU does not support it; using {}",
                    isa.name(),
                    best.name()
                )),
            ),
            None => (
                best,
                Some(format!(
                    "OCTET_KERNEL={name} ignored: not one of scalar, avx2, avx512, amx, neon, dotprod, i8mm; using {}",
                    best.name()
                )),
            ),
        },
    }
}

/// The process-wide kernel table, built once on first use.
pub fn kernels() -> &'static Kernels {
    static TABLE: OnceLock<Kernels> = OnceLock::new();
    TABLE.get_or_init(|| {
        let forced = std::env::var("OCTET_KERNEL").ok();
        let amx = amx_unavailable();
        let (isa, note) = choose(forced.as_deref(), &Isa::supported(), amx.as_deref());
        let mut table = Kernels::for_isa(isa).expect("chosen level is supported");
        let (precision, attention_note) =
            AttentionPrecision::from_env(std::env::var("OCTET_ATTENTION").ok().as_deref());
        table.attention_precision = precision;
        table.attention_note = attention_note;
        // Said once: an ignored OCTET_KERNEL=amx already gives the reason.
        let said = |why: &String| note.as_ref().is_some_and(|n| n.contains(why.as_str()));
        table.amx_note = amx.filter(|why| isa == Isa::Avx512 && !said(why));
        table.override_note = note;
        table
    })
}

/// One line naming the chosen kernel of every family, for `--version` output and benchmarks,
/// e.g. `isa=avx512 int8=x86_64-u8i8-12x32-avx512vnni f32=... gather=... vector=... attention=... (amx: this
/// CPU has no AMX-TILE / AMX-INT8)`.
pub fn describe() -> String {
    describe_table(kernels())
}

fn describe_table(k: &Kernels) -> String {
    let mut s = format!(
        "isa={} int8={} f32={} gather={} vector={} attention={}",
        k.isa.name(),
        k.int8.name,
        k.f32.name,
        k.gather.name,
        k.vector.name,
        k.attention.name
    );
    if let Some(bf16) = k.attention_bf16 {
        s.push_str(" attention-bf16=");
        s.push_str(bf16.name);
    }
    if let Some(scores) = k.attention_bf16_scores {
        s.push_str(" attention-bf16-scores=");
        s.push_str(scores.name);
    }
    match k.attention_precision {
        AttentionPrecision::ModelDefault => {}
        AttentionPrecision::F32 => s.push_str(" (OCTET_ATTENTION=f32)"),
        AttentionPrecision::Bf16 => s.push_str(" (OCTET_ATTENTION=bf16)"),
    }
    if let Some(note) = &k.attention_note {
        s.push_str(" (");
        s.push_str(note);
        s.push(')');
    }
    if let Some(note) = &k.override_note {
        s.push_str(" (");
        s.push_str(note);
        s.push(')');
    }
    if let Some(why) = &k.amx_note {
        s.push_str(" (amx: ");
        s.push_str(why);
        s.push(')');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attention_precision_parses() {
        use AttentionPrecision::*;
        assert_eq!(AttentionPrecision::from_env(None), (ModelDefault, None));
        assert_eq!(AttentionPrecision::from_env(Some(" BF16 ")), (Bf16, None));
        assert_eq!(AttentionPrecision::from_env(Some("f32")), (F32, None));
        let (p, note) = AttentionPrecision::from_env(Some("fp8"));
        assert_eq!(p, ModelDefault);
        assert!(note.unwrap().contains("fp8"));
    }

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
        let here = Isa::supported();
        let amx = amx_unavailable();
        let choose = |forced| choose(Some(forced), &here, amx.as_deref());
        assert_eq!(choose("scalar"), (Isa::Scalar, None));
        let (isa, note) = choose("bogus");
        assert_eq!(isa, Isa::best());
        assert!(note.unwrap().contains("bogus"));
        let foreign = if cfg!(target_arch = "x86_64") { "i8mm" } else { "avx512" };
        let (isa, note) = choose(foreign);
        assert_eq!(isa, Isa::best());
        assert!(note.unwrap().contains("does not support"));
    }

    /// A Sapphire Rapids whose kernel refused the tile permission (simulated): the best level
    /// is avx512, `OCTET_KERNEL=amx` is ignored with the reason, and describe() says why.
    #[test]
    fn refused_amx_falls_back_to_vnni_and_says_why() {
        let avx512 = [Isa::Scalar, Isa::Avx2, Isa::Avx512];
        let why = "the kernel refused tile data permission (arch_prctl: EPERM)";
        assert_eq!(choose(None, &avx512, Some(why)), (Isa::Avx512, None));
        assert_eq!(choose(Some("avx512"), &avx512, Some(why)), (Isa::Avx512, None));
        let (isa, note) = choose(Some("amx"), &avx512, Some(why));
        assert_eq!(isa, Isa::Avx512);
        assert!(note.unwrap().contains(why));
        let with_amx = [Isa::Scalar, Isa::Avx2, Isa::Avx512, Isa::Amx];
        assert_eq!(choose(None, &with_amx, None), (Isa::Amx, None));
        assert_eq!(choose(Some("AVX512"), &with_amx, None), (Isa::Avx512, None));
        if Isa::Avx512.is_supported() {
            let mut table = Kernels::for_isa(Isa::Avx512).unwrap();
            table.amx_note = Some(why.into());
            let text = describe_table(&table);
            assert!(
                text.contains("int8=x86_64-u8i8-12x32-avx512vnni") && text.contains(why),
                "{text}"
            );
        }
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
