//! int8 vs f32 matrix multiply on the linear-layer shapes of the real models octet runs.
//!
//! Shapes (k inputs -> n outputs):
//! - all-MiniLM-L6-v2: fused QKV 384 -> 1152, attention output 384 -> 384, FFN up 384 -> 1536,
//!   FFN down 1536 -> 384.
//! - EmbeddingGemma-300m: fused q (768) + k (256) + v (256) 768 -> 1280, attention output
//!   768 -> 768, gate and up 768 -> 1152 (two per layer), down 1152 -> 768.
//!
//! Rows m = 16 (one short text), 128 (one long text) and 4096 (32 texts of 128 tokens).
//! Variants, all through the kernels [`octet_kernels::kernels()`] chose (so `OCTET_KERNEL`
//! applies): int8 with one activation scale per token, int8 with one scale per 64 inputs (the
//! converter's default after a norm), int8 with groups of 128 quantized centered (what BERT's QKV
//! and FFN-up use, `int8::matmul_centered`), and f32. Each runs on a rayon pool of 1 and of 2 threads.
//!
//! Every benchmark prints the kernel's name, GOPS (2 m n k / median time) and its share of the
//! instruction peak ([`octet_benches::peak`]) measured at the start of the same run on the same
//! number of threads; after the f32 point of a shape it prints the int8 / f32 speed ratios.
//! The run ends with markdown tables (results and 2-thread scaling). The machine may be busy:
//! ratios of points measured side by side in one run are the meaningful figures.
//!
//! On a CPU where the AMX level is available it starts with a side-by-side of the AMX and VNNI
//! int8 kernels on MiniLM's FFN up shape (k = 384, n = 1536) at m = 128 and 512, one thread,
//! each as a share of its own instruction's peak (`tdpbusd tmm`, `vpdpbusd zmm`). An int8
//! point whose call ran on the AMX kernel is given as a share of the `tdpbusd` peak.
//!
//! Run: `cargo bench -p octet-benches --bench kernels` (criterion options after `--`, e.g.
//! `-- minilm` to filter by name).

use criterion::{BenchmarkGroup, Criterion, SamplingMode};
use octet_benches::host;
use octet_benches::peak::{self, PeakInstruction};
use octet_benches::samples::{time_iters, Samples};
use octet_benches::table::{num, pct, ratio, Table};
use octet_kernels::{f32 as kf32, int8, Epilogue, Isa};
use std::hint::black_box;
use std::time::Duration;

/// One linear layer's weight shape.
struct Shape {
    model: &'static str,
    layer: &'static str,
    k: usize,
    n: usize,
}

impl Shape {
    fn label(&self) -> String {
        format!("{} {} {}->{}", self.model, self.layer, self.k, self.n)
    }
}

const SHAPES: [Shape; 8] = [
    Shape {
        model: "minilm",
        layer: "qkv",
        k: 384,
        n: 1152,
    },
    Shape {
        model: "minilm",
        layer: "attn-out",
        k: 384,
        n: 384,
    },
    Shape {
        model: "minilm",
        layer: "ffn-up",
        k: 384,
        n: 1536,
    },
    Shape {
        model: "minilm",
        layer: "ffn-down",
        k: 1536,
        n: 384,
    },
    Shape {
        model: "gemma",
        layer: "qkv",
        k: 768,
        n: 1280,
    },
    Shape {
        model: "gemma",
        layer: "attn-out",
        k: 768,
        n: 768,
    },
    Shape {
        model: "gemma",
        layer: "gate/up(x2)",
        k: 768,
        n: 1152,
    },
    Shape {
        model: "gemma",
        layer: "down",
        k: 1152,
        n: 768,
    },
];

/// Activation rows: one short text, one long text, a batch of 32 x 128 tokens.
const ROWS: [usize; 3] = [16, 128, 4096];
/// Pool sizes (the machine this was written for has 2 cores).
const THREADS: [usize; 2] = [1, 2];
/// Activation group of the grouped int8 variant (the converter's choice after a norm).
const K_GROUP: usize = 64;
/// Activation group of the centered int8 variant (BERT's QKV and FFN-up).
const CENTERED_K_GROUP: usize = 128;

/// What is multiplied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Variant {
    Int8PerToken,
    Int8Group64,
    Int8Centered128,
    F32,
}

impl Variant {
    const ALL: [Variant; 4] = [
        Variant::Int8PerToken,
        Variant::Int8Group64,
        Variant::Int8Centered128,
        Variant::F32,
    ];

    fn label(self) -> &'static str {
        match self {
            Variant::Int8PerToken => "int8-token",
            Variant::Int8Group64 => "int8-g64",
            Variant::Int8Centered128 => "int8-g128c",
            Variant::F32 => "f32",
        }
    }

    /// The kernel that runs this variant's call of `m` rows (the AMX kernel hands small m and
    /// grouped layouts to VNNI).
    fn kernel_name(self, m: usize, k: usize, n: usize) -> &'static str {
        let kernels = octet_kernels::kernels();
        let int8 = |k_group| {
            let layout = int8::PackedI8Layout::new(n, k, k_group).expect("valid int8 shape");
            kernels.int8.for_call(m, &layout).name
        };
        match self {
            Variant::Int8PerToken => int8(None),
            Variant::Int8Group64 => int8(Some(K_GROUP)),
            Variant::Int8Centered128 => int8(Some(CENTERED_K_GROUP)),
            Variant::F32 => kernels.f32.name,
        }
    }

    fn peak_instruction(self, m: usize, k: usize, n: usize) -> PeakInstruction {
        match self {
            Variant::F32 => PeakInstruction::Vfmadd231ps,
            _ if self.kernel_name(m, k, n).contains("amx") => PeakInstruction::Tdpbusd,
            _ => PeakInstruction::Vpdpbusd,
        }
    }
}

/// One shape's weights in every variant's packed form, from the same f32 matrix.
struct Weights {
    k: usize,
    n: usize,
    int8_token: int8::PackedI8Owned,
    int8_g64: int8::PackedI8Owned,
    int8_g128: int8::PackedI8Owned,
    f32: kf32::PackedF32Owned,
}

impl Weights {
    fn new(shape: &Shape) -> Weights {
        let (n, k) = (shape.n, shape.k);
        let w = pseudo_random(n * k, 0x5eed ^ (n * 31 + k) as u64, 0.05);
        let (q, scales) = int8::quantize_weights_per_channel(&w, n, k);
        Weights {
            k,
            n,
            int8_token: int8::pack_weights(&q, n, k, &scales, None).expect("valid int8 shape"),
            int8_g64: int8::pack_weights(&q, n, k, &scales, Some(K_GROUP)).expect("valid int8 shape"),
            int8_g128: int8::pack_weights(&q, n, k, &scales, Some(CENTERED_K_GROUP)).expect("valid int8 shape"),
            f32: kf32::PackedF32Owned::from_nk(&w, n, k, k).expect("valid f32 shape"),
        }
    }

    /// `out = a · Wᵀ` for `m` rows with `variant`'s kernel.
    fn multiply(&self, variant: Variant, a: &[f32], m: usize, out: &mut [f32]) {
        let kernels = octet_kernels::kernels();
        let (k, n) = (self.k, self.n);
        let result = match variant {
            Variant::Int8PerToken => {
                int8::matmul(kernels.int8, a, k, m, &self.int8_token.view(), &Epilogue::NONE, out, n)
            }
            Variant::Int8Group64 => int8::matmul(kernels.int8, a, k, m, &self.int8_g64.view(), &Epilogue::NONE, out, n),
            Variant::Int8Centered128 => {
                int8::matmul_centered(kernels.int8, a, k, m, &self.int8_g128.view(), &Epilogue::NONE, out, n)
            }
            Variant::F32 => kf32::matmul(kernels.f32, a, k, m, &self.f32.as_packed(), &Epilogue::NONE, out, n),
        };
        result.expect("benchmark shapes are valid");
    }
}

/// Deterministic values in [-scale, scale] (xorshift64*), so runs are comparable.
fn pseudo_random(len: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            let bits = state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 40; // 24 random bits
            (bits as f32 / (1u32 << 23) as f32 - 1.0) * scale
        })
        .collect()
}

/// The instruction peaks on one pool size.
struct PeaksOn {
    threads: usize,
    /// `vpdpbusd zmm` GOPS.
    vnni: Option<f64>,
    /// `vfmadd231ps zmm` GFLOPS.
    fma: Option<f64>,
    /// `tdpbusd tmm` GOPS.
    amx: Option<f64>,
}

/// The instruction peaks for each pool size.
struct Peaks {
    by_threads: Vec<PeaksOn>,
}

impl Peaks {
    fn measure() -> Peaks {
        let by_threads = THREADS
            .iter()
            .map(|&threads| PeaksOn {
                threads,
                vnni: peak::measure(PeakInstruction::Vpdpbusd, threads),
                fma: peak::measure(PeakInstruction::Vfmadd231ps, threads),
                amx: peak::measure(PeakInstruction::Tdpbusd, threads),
            })
            .collect();
        Peaks { by_threads }
    }

    fn get(&self, instruction: PeakInstruction, threads: usize) -> Option<f64> {
        let p = self.by_threads.iter().find(|p| p.threads == threads)?;
        match instruction {
            PeakInstruction::Vpdpbusd => p.vnni,
            PeakInstruction::Vfmadd231ps => p.fma,
            PeakInstruction::Tdpbusd => p.amx,
        }
    }
}

/// MiniLM's FFN up shape (k = 384, n = 1536) at m = 128 and 512 on one thread, with the AMX
/// and the VNNI int8 kernels side by side, each as a share of its instruction's peak. Prints
/// why it is skipped where AMX is unavailable.
fn amx_share_of_peak(peaks: &Peaks) {
    if !Isa::Amx.is_supported() {
        println!("amx vs vnni: skipped ({})", amx_status());
        return;
    }
    let shape = &SHAPES[2];
    let weights = Weights::new(shape);
    let (k, n) = (shape.k, shape.n);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("rayon pool");
    for m in [128, 512] {
        let a = pseudo_random(m * k, 0xa11ce ^ m as u64, 1.0);
        let mut out = vec![0f32; m * n];
        for (isa, instruction) in [
            (Isa::Amx, PeakInstruction::Tdpbusd),
            (Isa::Avx512, PeakInstruction::Vpdpbusd),
        ] {
            let kernel = int8::for_isa(isa);
            let packed = weights.int8_token.view();
            let run = || int8::matmul(kernel, &a, k, m, &packed, &Epilogue::NONE, &mut out, n).expect("valid shape");
            // Best of 7 runs of ~50 ms each after a warm-up: the machine may be busy.
            let seconds = pool.install(move || {
                let mut run = run;
                run();
                let ops = 2.0 * (m * n * k) as f64;
                let iters = ((5e10 / ops) as u64).max(1);
                (0..7)
                    .map(|_| time_iters(iters, &mut run).as_secs_f64() / iters as f64)
                    .fold(f64::INFINITY, f64::min)
            });
            let g = gops(m, shape, Some(seconds));
            println!(
                "amx vs vnni: {} m={m} t=1 [{}]: {} GOPS, {} of the 1-thread {} peak",
                shape.label(),
                kernel.name,
                num(g, 1),
                pct(g.zip(peaks.get(instruction, 1)).map(|(g, p)| g / p)),
                instruction.name()
            );
        }
    }
}

/// Why the AMX level is or is not in use, for the bench header.
fn amx_status() -> String {
    #[cfg(target_arch = "x86_64")]
    match int8::amx::availability() {
        Ok(()) => "amx available".into(),
        Err(why) => format!("amx unavailable: {why}"),
    }
    #[cfg(not(target_arch = "x86_64"))]
    "amx unavailable: not x86_64".into()
}

/// How busy the rest of the machine was while one (shape, m, threads) row was measured.
struct Busy {
    shape: usize,
    m: usize,
    threads: usize,
    /// CPUs kept busy by other processes, on average ([`host::CpuMeter`]).
    other_cpus: Option<f64>,
}

/// One measured point.
struct Point {
    shape: usize,
    m: usize,
    threads: usize,
    variant: Variant,
    seconds: Option<f64>,
}

/// Criterion settings per row count: short runs for small m, few flat samples for m = 4096
/// (one f32 iteration there takes tens of milliseconds).
fn configure(group: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>, m: usize) -> usize {
    let samples = if m >= 1024 { 10 } else { 20 };
    group.sampling_mode(SamplingMode::Flat).sample_size(samples);
    if m >= 1024 {
        group
            .warm_up_time(Duration::from_millis(200))
            .measurement_time(Duration::from_millis(1200));
    } else {
        group
            .warm_up_time(Duration::from_millis(200))
            .measurement_time(Duration::from_millis(600));
    }
    samples
}

fn gops(m: usize, shape: &Shape, seconds: Option<f64>) -> Option<f64> {
    seconds.map(|s| 2.0 * (m * shape.n * shape.k) as f64 / s / 1e9)
}

fn main() {
    let listing = std::env::args().any(|a| a == "--list");
    println!("{}", host::describe_host());
    println!("kernels: {}", octet_kernels::describe());
    println!("load average at start: {}", num(host::load_average(), 2));
    let peaks = if listing {
        Peaks { by_threads: Vec::new() }
    } else {
        Peaks::measure()
    };
    for &PeaksOn {
        threads: t,
        vnni,
        fma,
        amx,
    } in &peaks.by_threads
    {
        println!(
            "peak on {t} thread(s): {} {} GOPS, {} {} GFLOPS, {} {} GOPS",
            PeakInstruction::Vpdpbusd.name(),
            num(vnni, 1),
            PeakInstruction::Vfmadd231ps.name(),
            num(fma, 1),
            PeakInstruction::Tdpbusd.name(),
            num(amx, 1)
        );
    }
    if !listing {
        amx_share_of_peak(&peaks);
    }

    let pools: Vec<(usize, rayon::ThreadPool)> = THREADS
        .iter()
        .map(|&t| {
            (
                t,
                rayon::ThreadPoolBuilder::new()
                    .num_threads(t)
                    .build()
                    .expect("rayon pool"),
            )
        })
        .collect();
    let max_m = *ROWS.iter().max().unwrap();
    let max_k = SHAPES.iter().map(|s| s.k).max().unwrap();
    let max_n = SHAPES.iter().map(|s| s.n).max().unwrap();
    let a = pseudo_random(max_m * max_k, 0xa11ce, 1.0);
    let mut out = vec![0f32; max_m * max_n];

    let mut criterion = Criterion::default()
        .warm_up_time(Duration::from_millis(150))
        .measurement_time(Duration::from_millis(350))
        .nresamples(10_000)
        .without_plots()
        .configure_from_args();
    let mut points: Vec<Point> = Vec::new();
    let mut busy: Vec<Busy> = Vec::new();
    for (si, shape) in SHAPES.iter().enumerate() {
        let weights = Weights::new(shape);
        let mut group = criterion.benchmark_group(shape.label());
        for &m in &ROWS {
            let sample_size = configure(&mut group, m);
            let a = &a[..m * shape.k];
            let out = &mut out[..m * shape.n];
            for (threads, pool) in &pools {
                let meter = host::CpuMeter::now();
                for variant in Variant::ALL {
                    let mut samples = Samples::default();
                    group.bench_function(format!("{}/m{m}/t{threads}", variant.label()), |b| {
                        b.iter_custom(|iters| {
                            let elapsed = pool.install(|| {
                                time_iters(iters, || {
                                    weights.multiply(variant, black_box(a), m, black_box(&mut *out))
                                })
                            });
                            samples.record(iters, elapsed);
                            elapsed
                        })
                    });
                    let seconds = samples.median_of_last(sample_size).map(|d| d.as_secs_f64());
                    if seconds.is_some() {
                        let g = gops(m, shape, seconds);
                        let instruction = variant.peak_instruction(m, shape.k, shape.n);
                        let p = peaks.get(instruction, *threads);
                        println!(
                            "  {} m={m} t={threads} {} [{}]: {} GOPS, {} of the {threads}-thread {} peak",
                            shape.label(),
                            variant.label(),
                            variant.kernel_name(m, shape.k, shape.n),
                            num(g, 1),
                            pct(g.zip(p).map(|(g, p)| g / p)),
                            instruction.name()
                        );
                    }
                    points.push(Point {
                        shape: si,
                        m,
                        threads: *threads,
                        variant,
                        seconds,
                    });
                }
                let other_cpus = meter
                    .zip(host::CpuMeter::now())
                    .and_then(|(a, b)| a.other_busy_cpus(&b));
                busy.push(Busy {
                    shape: si,
                    m,
                    threads: *threads,
                    other_cpus,
                });
                let time = |v: Variant| {
                    points
                        .iter()
                        .find(|p| p.shape == si && p.m == m && p.threads == *threads && p.variant == v)?
                        .seconds
                };
                if let (Some(f), Some(tok), Some(g64)) = (
                    time(Variant::F32),
                    time(Variant::Int8PerToken),
                    time(Variant::Int8Group64),
                ) {
                    println!(
                        "  {} m={m} t={threads}: int8-token/f32 {:.2}x, int8-g64/f32 {:.2}x (speed ratio, same run)",
                        shape.label(),
                        f / tok,
                        f / g64
                    );
                }
            }
        }
        group.finish();
    }
    criterion.final_summary();
    if !listing {
        println!("load average at end: {}", num(host::load_average(), 2));
        print_summary(&points, &busy, &peaks);
    }
}

fn print_summary(points: &[Point], busy: &[Busy], peaks: &Peaks) {
    let seconds = |si: usize, m: usize, t: usize, v: Variant| {
        points
            .iter()
            .find(|p| p.shape == si && p.m == m && p.threads == t && p.variant == v)
            .and_then(|p| p.seconds)
    };
    let kernels = octet_kernels::kernels();
    println!();
    println!("## Summary (median of criterion's samples)");
    println!();
    println!("kernels: {}", octet_kernels::describe());
    println!(
        "int8 kernel {}, f32 kernel {}; %peak = share of the `vpdpbusd zmm` (int8; `tdpbusd tmm` where the \
         AMX kernel ran the call) / `vfmadd231ps zmm` (f32) \
         throughput measured in this run on the same number of threads; int8/f32 = f32 time / int8 time; \
         other CPUs busy = CPUs used by other processes on average while the row was measured (noise).",
        kernels.int8.name, kernels.f32.name
    );
    for &PeaksOn {
        threads: t,
        vnni,
        fma,
        amx,
    } in &peaks.by_threads
    {
        println!(
            "peak, {t} thread(s): vpdpbusd {} GOPS, vfmadd231ps {} GFLOPS, tdpbusd {} GOPS",
            num(vnni, 1),
            num(fma, 1),
            num(amx, 1)
        );
    }
    println!();
    let mut table = Table::new(&[
        "shape (k->n)",
        "m",
        "threads",
        "int8 GOPS",
        "int8 %peak",
        "int8-g64 GOPS",
        "g64 %peak",
        "f32 GOPS",
        "f32 %peak",
        "int8/f32",
        "g64/f32",
        "other CPUs busy",
    ]);
    for (si, shape) in SHAPES.iter().enumerate() {
        for &m in &ROWS {
            for &t in &THREADS {
                let s = |v| seconds(si, m, t, v);
                if Variant::ALL.iter().all(|&v| s(v).is_none()) {
                    continue;
                }
                let g = |v| gops(m, shape, s(v));
                let share = |v: Variant| {
                    g(v).zip(peaks.get(v.peak_instruction(m, shape.k, shape.n), t))
                        .map(|(g, p)| g / p)
                };
                let speedup = |v| s(Variant::F32).zip(s(v)).map(|(f, i)| f / i);
                table.row(vec![
                    shape.label(),
                    m.to_string(),
                    t.to_string(),
                    num(g(Variant::Int8PerToken), 1),
                    pct(share(Variant::Int8PerToken)),
                    num(g(Variant::Int8Group64), 1),
                    pct(share(Variant::Int8Group64)),
                    num(g(Variant::F32), 1),
                    pct(share(Variant::F32)),
                    ratio(speedup(Variant::Int8PerToken)),
                    ratio(speedup(Variant::Int8Group64)),
                    num(
                        busy.iter()
                            .find(|b| b.shape == si && b.m == m && b.threads == t)
                            .and_then(|b| b.other_cpus),
                        2,
                    ),
                ]);
            }
        }
    }
    println!("{}", table.render());

    println!("## Thread scaling (1-thread time / 2-thread time)");
    println!();
    let mut scaling = Table::new(&[
        "shape (k->n)",
        "m",
        "int8 2T/1T",
        "int8-g64 2T/1T",
        "f32 2T/1T",
        "other CPUs busy 1T / 2T",
    ]);
    let other = |si: usize, m: usize, t: usize| {
        num(
            busy.iter()
                .find(|b| b.shape == si && b.m == m && b.threads == t)
                .and_then(|b| b.other_cpus),
            2,
        )
    };
    for (si, shape) in SHAPES.iter().enumerate() {
        for &m in &ROWS {
            let speedup = |v| {
                seconds(si, m, 1, v)
                    .zip(seconds(si, m, 2, v))
                    .map(|(one, two)| one / two)
            };
            if Variant::ALL.iter().all(|&v| speedup(v).is_none()) {
                continue;
            }
            scaling.row(vec![
                shape.label(),
                m.to_string(),
                ratio(speedup(Variant::Int8PerToken)),
                ratio(speedup(Variant::Int8Group64)),
                ratio(speedup(Variant::F32)),
                format!("{} / {}", other(si, m, 1), other(si, m, 2)),
            ]);
        }
    }
    println!("{}", scaling.render());
}
