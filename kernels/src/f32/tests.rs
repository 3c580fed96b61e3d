//! Tests of every f32 kernel the host can run against [`reference`], plus a GFLOPS probe.
//!
//! Tolerance, per output element: `2 · k · eps · Σ|a||b| + 4e-6 · max(1, |expected|)`.
//! - The first term is the textbook bound on the rounding error of an f32 dot product summed in
//!   any order (the kernels sum in k blocks with FMA; the reference sums exactly in f64), with
//!   a factor 2 for the final rounding and the bias add; GELU's slope is at most 1.13.
//! - The second covers the epilogue: SIMD and scalar activations agree to 2e-6 relative
//!   (see `activation`), plus the rounding of the residual add.

use super::reference::{self, RefB};
use super::*;
use crate::activation::GeluForm;
use crate::Activation;
use proptest::prelude::*;

/// Deterministic values in [-1, 1).
fn values(len: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

fn epilogues(bias: &[f32]) -> Vec<Epilogue<'_>> {
    let mut all = Vec::new();
    for bias in [None, Some(bias)] {
        for activation in [
            Activation::None,
            Activation::Relu,
            Activation::Gelu(GeluForm::Erf),
            Activation::Gelu(GeluForm::Tanh),
        ] {
            for accumulate in [false, true] {
                all.push(Epilogue {
                    bias,
                    activation,
                    accumulate,
                });
            }
        }
    }
    all
}

/// Which way `B` is given to the packer.
#[derive(Clone, Copy, Debug)]
enum Source {
    Nk,
    Kn,
}

/// A test case: shapes, strides, data, and the packed B.
struct Case {
    m: usize,
    n: usize,
    k: usize,
    lda: usize,
    ldo: usize,
    a: Vec<f32>,
    b_raw: Vec<f32>,
    ldb: usize,
    source: Source,
    packed: PackedF32Owned,
    bias: Vec<f32>,
    out0: Vec<f32>,
    oracle: std::sync::OnceLock<(Vec<f32>, Vec<f64>)>,
}

impl Case {
    fn new(m: usize, n: usize, k: usize, source: Source, seed: u64) -> Case {
        // Odd extra strides check that strides, not widths, are used.
        let (lda, ldo) = (k + (seed as usize % 3), n + 1 + (seed as usize % 2));
        let a = values(m * lda, seed);
        let (ldb, b_raw, packed) = match source {
            Source::Nk => {
                let ldb = k + 2;
                let w = values(n * ldb, seed + 1);
                let p = PackedF32Owned::from_nk(&w, n, k, ldb).unwrap();
                (ldb, w, p)
            }
            Source::Kn => {
                let ldb = n + 3;
                let b = values(k * ldb, seed + 1);
                let p = PackedF32Owned::from_kn(&b, k, n, ldb).unwrap();
                (ldb, b, p)
            }
        };
        let bias = values(n, seed + 2);
        let out0 = values(m * ldo, seed + 3);
        Case {
            m,
            n,
            k,
            lda,
            ldo,
            a,
            b_raw,
            ldb,
            source,
            packed,
            bias,
            out0,
            oracle: Default::default(),
        }
    }

    fn ref_b(&self) -> RefB<'_> {
        match self.source {
            Source::Nk => RefB::Nk {
                data: &self.b_raw,
                ld: self.ldb,
            },
            Source::Kn => RefB::Kn {
                data: &self.b_raw,
                ld: self.ldb,
            },
        }
    }

    fn run(&self, kernel: &F32Kernel, e: &Epilogue, serial: bool) -> Vec<f32> {
        let mut out = self.out0.clone();
        let b = self.packed.as_packed();
        let f = if serial { matmul_serial } else { matmul };
        f(kernel, &self.a, self.lda, self.m, &b, e, &mut out, self.ldo).unwrap();
        out
    }

    /// The raw reference dot products (`m × ldo`, other entries 0) and their error scales
    /// `Σ|a||b|` (`m × n`), computed once per case.
    fn oracle(&self) -> &(Vec<f32>, Vec<f64>) {
        self.oracle.get_or_init(|| {
            let mut dots = vec![0.0; self.m * self.ldo];
            reference::matmul(
                &self.a,
                self.lda,
                self.m,
                self.k,
                self.ref_b(),
                self.n,
                &Epilogue::NONE,
                &mut dots,
                self.ldo,
            )
            .unwrap();
            let scales = reference::abs_dots(&self.a, self.lda, self.m, self.k, self.ref_b(), self.n).unwrap();
            (dots, scales)
        })
    }

    /// Runs `kernel` with `e` and compares with the reference; returns an error message.
    fn check(&self, kernel: &F32Kernel, e: &Epilogue, serial: bool) -> Result<(), String> {
        let got = self.run(kernel, e, serial);
        let (dots, scales) = self.oracle();
        let scale = |r: usize, c: usize| scales[r * self.n + c];
        for r in 0..self.m {
            for c in 0..self.ldo {
                let i = r * self.ldo + c;
                if c >= self.n {
                    if got[i].to_bits() != self.out0[i].to_bits() {
                        return Err(format!("{}: wrote outside the output at ({r}, {c})", kernel.name));
                    }
                    continue;
                }
                // Exactly what `reference::matmul` does with this epilogue.
                let want = e.apply(c, dots[i], self.out0[i]);
                let tol = 2.0 * self.k as f64 * f32::EPSILON as f64 * scale(r, c) + 4e-6 * (want.abs() as f64).max(1.0);
                let err = (got[i] as f64 - want as f64).abs();
                if err > tol || got[i].is_nan() {
                    return Err(format!(
                        "{} m={} n={} k={} {:?} {e:?}: ({r}, {c}) got {} want {want} (tol {tol:e})",
                        kernel.name, self.m, self.n, self.k, self.source, got[i]
                    ));
                }
            }
        }
        Ok(())
    }
}

fn kernels() -> Vec<&'static F32Kernel> {
    let mut ks: Vec<&'static F32Kernel> = Isa::supported().into_iter().map(for_isa).collect();
    ks.dedup_by_key(|k| k.name);
    ks
}

#[test]
fn names_and_dispatch() {
    for isa in Isa::supported() {
        let k = for_isa(isa);
        assert!(!k.name.is_empty());
        if isa != Isa::Scalar {
            assert!(!k.name.contains("scalar"), "{isa:?} fell back to {}", k.name);
        }
    }
    assert_eq!(for_isa(Isa::Scalar).name, "f32-scalar-4x16");
}

#[test]
fn every_kernel_every_epilogue_small_shapes() {
    for (i, &(m, n, k)) in [(1, 1, 1), (3, 17, 5), (13, 33, 7), (25, 48, 64), (7, 20, 0)]
        .iter()
        .enumerate()
    {
        for source in [Source::Nk, Source::Kn] {
            let case = Case::new(m, n, k, source, i as u64 * 10);
            for kernel in kernels() {
                for e in epilogues(&case.bias) {
                    case.check(kernel, &e, false).unwrap();
                }
            }
        }
    }
}

#[test]
fn every_kernel_multiple_k_blocks_and_row_blocks() {
    // k = 700 is several k blocks for every kernel; m = 37 has a ragged row tail; n = 50 a
    // ragged last panel (and an odd panel count for the two-panel AVX-512 tile).
    for source in [Source::Nk, Source::Kn] {
        let case = Case::new(37, 50, 700, source, 5);
        for kernel in kernels() {
            for e in epilogues(&case.bias) {
                case.check(kernel, &e, true).unwrap();
            }
        }
    }
}

#[test]
fn real_model_shapes() {
    // MiniLM 384 -> 1536 (FFN up, GELU) and 1536 -> 384 (FFN down, residual add); Gemma
    // 768 -> 1152; attention scores q · kᵀ for one head (k = 64) and P · V.
    let big = cfg!(target_arch = "x86_64");
    let mut shapes = vec![(9, 1536, 384), (9, 384, 1536), (9, 64, 33), (33, 33, 64)];
    if big {
        shapes.extend([(128, 1536, 384), (64, 384, 1536), (20, 1152, 768), (12, 768, 768)]);
    }
    for (i, &(m, n, k)) in shapes.iter().enumerate() {
        let case = Case::new(
            m,
            n,
            k,
            if i % 2 == 0 { Source::Nk } else { Source::Kn },
            100 + i as u64,
        );
        let bias = case.bias.clone();
        let gelu = Epilogue {
            bias: Some(&bias),
            activation: Activation::Gelu(GeluForm::Erf),
            accumulate: false,
        };
        let residual = Epilogue {
            bias: Some(&bias),
            activation: Activation::None,
            accumulate: true,
        };
        for kernel in kernels() {
            case.check(kernel, &gelu, false).unwrap();
            case.check(kernel, &residual, false).unwrap();
        }
    }
}

#[test]
fn thread_count_does_not_change_bits() {
    let pool = |t| rayon::ThreadPoolBuilder::new().num_threads(t).build().unwrap();
    let (one, two, three) = (pool(1), pool(2), pool(3));
    // Row split (many rows), column split (few rows), and several k blocks with accumulate.
    let shapes: &[(usize, usize, usize)] = if cfg!(target_arch = "x86_64") {
        &[(130, 384, 64), (10, 1552, 128), (50, 200, 600)]
    } else {
        &[(40, 200, 200)]
    };
    for kernel in kernels() {
        for (i, &(m, n, k)) in shapes.iter().enumerate() {
            let case = Case::new(m, n, k, Source::Nk, 7 + i as u64);
            let bias = case.bias.clone();
            let e = Epilogue {
                bias: Some(&bias),
                activation: Activation::Gelu(GeluForm::Tanh),
                accumulate: true,
            };
            let r1 = one.install(|| case.run(kernel, &e, false));
            let r2 = two.install(|| case.run(kernel, &e, false));
            let r3 = three.install(|| case.run(kernel, &e, false));
            let rs = case.run(kernel, &e, true);
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&r1), bits(&r2), "{} {m}x{n}x{k}", kernel.name);
            assert_eq!(bits(&r1), bits(&r3), "{} {m}x{n}x{k}", kernel.name);
            assert_eq!(bits(&r1), bits(&rs), "{} {m}x{n}x{k}", kernel.name);
        }
    }
}

#[test]
fn errors_instead_of_panics() {
    let kernel = for_isa(Isa::best());
    let (m, n, k) = (3, 5, 4);
    let packed = PackedF32Owned::from_nk(&values(n * k, 1), n, k, k).unwrap();
    let b = packed.as_packed();
    let a = values(m * k, 2);
    let mut out = vec![0.0; m * n];
    let e = Epilogue::NONE;
    assert!(matmul(kernel, &a, k, m, &b, &e, &mut out, n).is_ok());
    assert!(matches!(
        matmul(kernel, &a[1..], k, m, &b, &e, &mut out, n),
        Err(KernelError::Length { .. })
    ));
    assert!(matches!(
        matmul(kernel, &a, k - 1, m, &b, &e, &mut out, n),
        Err(KernelError::Invalid(_))
    ));
    assert!(matches!(
        matmul_serial(kernel, &a, k, m, &b, &e, &mut out[1..], n),
        Err(KernelError::Length { .. })
    ));
    assert!(matches!(
        matmul(kernel, &a, k, m, &b, &e, &mut out, n - 1),
        Err(KernelError::Invalid(_))
    ));
    let short_bias = [0.0; 4];
    let e = Epilogue {
        bias: Some(&short_bias),
        ..Epilogue::NONE
    };
    assert!(matches!(
        matmul(kernel, &a, k, m, &b, &e, &mut out, n),
        Err(KernelError::Length { .. })
    ));
    let layout = PackedF32Layout::new(n, k);
    assert!(PackedF32::from_parts(layout, &vec![0.0; layout.len() - 1]).is_err());
    assert!(PackedF32::from_parts(PackedF32Layout { n_pad: 5, ..layout }, &vec![0.0; 100]).is_err());
    assert!(PackedF32::from_parts(layout, &vec![0.0; layout.len() + 3]).is_ok());
    // m = 0 and n = 0 are valid and touch nothing.
    assert!(matmul(kernel, &[], k, 0, &b, &Epilogue::NONE, &mut [], n).is_ok());
    let empty = PackedF32Owned::from_nk(&[], 0, k, k).unwrap();
    assert!(matmul(kernel, &a, k, m, &empty.as_packed(), &Epilogue::NONE, &mut [], 0).is_ok());
}

/// Sizes proptest draws from: 1, tile edges, odd sizes and real model sizes.
fn dim(real: &'static [usize]) -> impl Strategy<Value = usize> {
    prop_oneof![1..=40usize, prop::sample::select(real)]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn ragged_shapes_match_reference(
        m in dim(&[1, 7, 12, 13, 25, 64, 65]),
        n in dim(&[15, 16, 17, 31, 33, 47, 64, 256, 384]),
        k in dim(&[0, 3, 64, 187, 384, 385]),
        nk in any::<bool>(),
        e_index in 0usize..16,
        seed in any::<u64>(),
    ) {
        let case = Case::new(m, n, k, if nk { Source::Nk } else { Source::Kn }, seed);
        let e = epilogues(&case.bias)[e_index];
        for kernel in kernels() {
            case.check(kernel, &e, seed % 2 == 0).map_err(TestCaseError::fail)?;
        }
    }
}
