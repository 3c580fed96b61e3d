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

/// CPU time used so far by all threads of this process (Linux: the per-thread run times in
/// `/proc/self/task/*/schedstat`, in ns), or `None` elsewhere. On a shared machine, FLOPs per
/// CPU-second measure the kernel, where wall time also measures the neighbours. The kernel
/// updates these counters about once per scheduler tick, so time spans of well over 100 ms.
fn process_cpu_seconds() -> Option<f64> {
    let mut total = 0u64;
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let stat = std::fs::read_to_string(task.ok()?.path().join("schedstat")).ok()?;
        total += stat.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(total as f64 * 1e-9)
}

/// Wall seconds and CPU seconds of `f`.
fn timed(f: impl FnOnce()) -> (f64, f64) {
    let (t, c) = (std::time::Instant::now(), process_cpu_seconds());
    f();
    let wall = t.elapsed().as_secs_f64();
    let cpu = match (c, process_cpu_seconds()) {
        (Some(a), Some(b)) => b - a,
        _ => f64::NAN,
    };
    (wall, cpu)
}

/// Best GFLOPS (per wall second, per CPU second) of `trials` timed runs of `f`, which does
/// `flops` FLOPs. On a shared machine the best run is the one least disturbed.
fn best_gflops(trials: usize, flops: f64, mut f: impl FnMut()) -> (f64, f64) {
    let (mut best_wall, mut best_cpu) = (0f64, 0f64);
    for _ in 0..trials {
        let (wall, cpu) = timed(&mut f);
        best_wall = best_wall.max(flops / wall / 1e9);
        best_cpu = best_cpu.max(flops / cpu / 1e9);
    }
    (best_wall, best_cpu)
}

/// Measures the single-core FMA peak and the GFLOPS of the chosen kernel on benchmark shapes,
/// best of several runs, per wall second and per CPU second (see [`process_cpu_seconds`]).
/// Run: `cargo test -p octet-kernels --release --lib f32::tests::gflops -- --ignored --nocapture`
/// (`OCTET_F32_SHAPES="m,n,k;m,n,k"` for other shapes, `OCTET_KERNEL` for another kernel).
#[test]
#[ignore]
fn gflops() {
    let kernel = crate::kernels().f32;
    #[cfg(target_arch = "x86_64")]
    if Isa::Avx512.is_supported() {
        // SAFETY: AVX-512F detected just now.
        let (wall, cpu) = best_gflops(8, FMA_PEAK_FLOPS, || unsafe { fma_peak_avx512() });
        println!("single-core AVX-512 FMA peak: {wall:.1} GFLOPS wall, {cpu:.1} per CPU second");
    }
    let pool = |t| rayon::ThreadPoolBuilder::new().num_threads(t).build().unwrap();
    let pools = [(1, pool(1)), (2, pool(2))];
    let mut shapes = vec![(128, 1536, 384), (4096, 1536, 384), (128, 384, 1536), (4096, 384, 1536)];
    if let Ok(extra) = std::env::var("OCTET_F32_SHAPES") {
        shapes = extra
            .split(';')
            .map(|s| {
                let v: Vec<usize> = s.split(',').map(|x| x.trim().parse().unwrap()).collect();
                (v[0], v[1], v[2])
            })
            .collect();
    }
    for (m, n, k) in shapes {
        let case = Case::new(m, n, k, Source::Nk, 1);
        let bias = case.bias.clone();
        let e = Epilogue {
            bias: Some(&bias),
            activation: Activation::None,
            accumulate: false,
        };
        for (threads, pool) in &pools {
            let mut out = case.out0.clone();
            let b = case.packed.as_packed();
            let flops = 2.0 * (m * n * k) as f64;
            let reps = ((2e10 / flops) as usize).clamp(1, 100_000);
            pool.install(|| {
                matmul(kernel, &case.a, case.lda, m, &b, &e, &mut out, case.ldo).unwrap();
                let (wall, cpu) = best_gflops(8, flops * reps as f64, || {
                    for _ in 0..reps {
                        matmul(kernel, &case.a, case.lda, m, &b, &e, &mut out, case.ldo).unwrap();
                    }
                });
                println!(
                    "{} m={m} n={n} k={k} threads={threads}: {wall:.1} GFLOPS wall, {cpu:.1} per CPU second",
                    kernel.name
                );
            });
        }
    }
}

/// FLOPs done by one call of [`fma_peak_avx512`].
#[cfg(target_arch = "x86_64")]
const FMA_PEAK_FLOPS: f64 = (FMA_PEAK_ITERS * 12 * 32) as f64;
#[cfg(target_arch = "x86_64")]
const FMA_PEAK_ITERS: u64 = 50_000_000;

/// A loop of 12 independent `vfmadd231ps zmm` chains (inline assembly, so the
/// compiler cannot reshape it).
///
/// # Safety
/// The CPU must support AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn fma_peak_avx512() {
    let iters = FMA_PEAK_ITERS;
    // SAFETY: register-only instructions the caller's CPU supports; all touched registers are
    // declared clobbered.
    unsafe {
        std::arch::asm!(
            "vxorps zmm12, zmm12, zmm12",
            "vxorps zmm13, zmm13, zmm13",
            "2:",
            "vfmadd231ps zmm0, zmm12, zmm13",
            "vfmadd231ps zmm1, zmm12, zmm13",
            "vfmadd231ps zmm2, zmm12, zmm13",
            "vfmadd231ps zmm3, zmm12, zmm13",
            "vfmadd231ps zmm4, zmm12, zmm13",
            "vfmadd231ps zmm5, zmm12, zmm13",
            "vfmadd231ps zmm6, zmm12, zmm13",
            "vfmadd231ps zmm7, zmm12, zmm13",
            "vfmadd231ps zmm8, zmm12, zmm13",
            "vfmadd231ps zmm9, zmm12, zmm13",
            "vfmadd231ps zmm10, zmm12, zmm13",
            "vfmadd231ps zmm11, zmm12, zmm13",
            "dec {n}",
            "jnz 2b",
            n = inout(reg) iters => _,
            out("zmm0") _, out("zmm1") _, out("zmm2") _, out("zmm3") _, out("zmm4") _, out("zmm5") _,
            out("zmm6") _, out("zmm7") _, out("zmm8") _, out("zmm9") _, out("zmm10") _, out("zmm11") _,
            out("zmm12") _, out("zmm13") _,
            options(nostack, nomem),
        );
    }
}

/// GFLOPS of every register tile alone, with A and B in L1 (an upper bound for the blocked
/// loop nest). Run like [`gflops`] with `tile_gflops`.
#[test]
#[ignore]
fn tile_gflops() {
    use super::driver::TileJob;
    for isa in Isa::supported() {
        let kernel = for_isa(isa);
        let g = kernel.geometry;
        for (v, &mr) in g.row_variants.iter().enumerate() {
            for panels in 1..=g.panels {
                let kc = 128;
                let a = values(mr * kc + 16, 1);
                let b = values(panels * 16 * kc, 2);
                let mut dst = vec![0f32; mr * panels * 16];
                let job = TileJob {
                    kc,
                    a: a.as_ptr(),
                    b: b.as_ptr(),
                    b_panel_stride: 16 * kc,
                    init: std::ptr::null(),
                    init_ld: 0,
                    dst: dst.as_mut_ptr(),
                    dst_ld: panels * 16,
                    finish: None,
                };
                let tile = g.tiles[v][panels - 1];
                let reps = 2e10 as usize / (2 * mr * panels * 16 * kc);
                let flops = (2 * mr * panels * 16 * kc * reps) as f64;
                let (wall, cpu) = best_gflops(5, flops, || {
                    for _ in 0..reps {
                        // SAFETY: the kernel came from `for_isa` for a supported level; the
                        // buffers hold the tile's A (plus slack), B and output.
                        unsafe { tile(std::hint::black_box(&job)) };
                    }
                });
                println!(
                    "{} tile {mr}x{}: {wall:.1} GFLOPS wall, {cpu:.1} per CPU second",
                    kernel.name,
                    panels * 16
                );
            }
        }
    }
}
