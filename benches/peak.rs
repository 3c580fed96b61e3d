//! Instruction-throughput peaks of this CPU, measured in the same run as the kernels.
//!
//! A kernel's GOPS mean little without the machine's ceiling next to them. The ceiling here is
//! the throughput of the one instruction each kernel's inner loop is built on, issued back to
//! back on independent registers:
//!
//! - int8: `vpdpbusd zmm` (AVX-512 VNNI): 16 lanes x 4 byte products = 64 multiply-adds, counted
//!   as 128 ops.
//! - f32: `vfmadd231ps zmm` (AVX-512 F): 16 lanes, counted as 32 flops.
//! - int8 on AMX: `tdpbusd` on full 16 x 64-byte tiles: 16 x 16 outputs x 64 byte products =
//!   16384 multiply-adds, counted as 32768 ops. Four accumulator tiles (tmm0..tmm3) fed by two
//!   A and two B tiles loaded once before the loop, so no memory traffic is timed; four in
//!   flight cover `tdpbusd`'s latency (about 3 x its 16-cycle issue interval on Sapphire
//!   Rapids). Measured only where [`octet_kernels::int8::amx::availability`] grants the tiles.
//!
//! Each loop keeps [`ACCUMULATORS`] = 16 accumulators in flight: more than latency x issue
//! rate (5 cycles x 2 per cycle on Sapphire Rapids), so the loop is bound by throughput, not by
//! the dependency chain. The loops run on operands of zero (no denormal slow paths) and are
//! timed several times; the best run is the peak. With `threads > 1` the same loop runs on that
//! many threads at once and the peak is their summed rate, the honest ceiling for a parallel
//! kernel on this machine (it includes any frequency drop when every core runs AVX-512).
//! On CPUs without the instructions (and on aarch64, where qemu timing means nothing) the
//! peaks are `None`.

use std::sync::Barrier;
use std::time::{Duration, Instant};

/// Independent accumulators in each peak loop (registers zmm0..zmm15).
pub const ACCUMULATORS: u64 = 16;
/// int8 ops per `vpdpbusd zmm`: 64 multiply-adds.
pub const VNNI_OPS_PER_INSTRUCTION: u64 = 128;
/// f32 flops per `vfmadd231ps zmm`: 16 multiply-adds.
pub const FMA_OPS_PER_INSTRUCTION: u64 = 32;
/// int8 ops per `tdpbusd` on full tiles: 16 x 16 x 64 multiply-adds.
pub const AMX_OPS_PER_INSTRUCTION: u64 = 2 * 16 * 16 * 64;
/// Accumulator tiles in the `tdpbusd` loop (tmm0..tmm3).
pub const AMX_ACCUMULATORS: u64 = 4;
/// Loop trips per timed run: 16 x 2^21 = 33.5M instructions, about 6-12 ms per run.
const TRIPS: u64 = 1 << 21;
/// Trips of the `tdpbusd` loop per timed run: 4 x 2^17 instructions of 16 cycles, about 3 ms.
const AMX_TRIPS: u64 = 1 << 17;
/// Timed runs; the best one counts.
const RUNS: usize = 7;

/// The instruction a peak is measured with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeakInstruction {
    /// `vpdpbusd zmm`, the int8 kernel's core.
    Vpdpbusd,
    /// `vfmadd231ps zmm`, the f32 kernel's core.
    Vfmadd231ps,
    /// `tdpbusd` on full tiles, the AMX int8 kernel's core.
    Tdpbusd,
}

impl PeakInstruction {
    /// Its name as in the assembly.
    pub fn name(self) -> &'static str {
        match self {
            PeakInstruction::Vpdpbusd => "vpdpbusd zmm",
            PeakInstruction::Vfmadd231ps => "vfmadd231ps zmm",
            PeakInstruction::Tdpbusd => "tdpbusd tmm",
        }
    }

    /// Ops counted per instruction.
    pub fn ops(self) -> u64 {
        match self {
            PeakInstruction::Vpdpbusd => VNNI_OPS_PER_INSTRUCTION,
            PeakInstruction::Vfmadd231ps => FMA_OPS_PER_INSTRUCTION,
            PeakInstruction::Tdpbusd => AMX_OPS_PER_INSTRUCTION,
        }
    }

    /// (loop trips per timed run, instructions per trip).
    fn trips(self) -> (u64, u64) {
        match self {
            PeakInstruction::Vpdpbusd | PeakInstruction::Vfmadd231ps => (TRIPS, ACCUMULATORS),
            PeakInstruction::Tdpbusd => (AMX_TRIPS, AMX_ACCUMULATORS),
        }
    }
}

/// Peak GOPS of `instruction` with `threads` threads issuing it at once, or `None` when this
/// CPU lacks it (or this is not x86_64).
pub fn measure(instruction: PeakInstruction, threads: usize) -> Option<f64> {
    let run = loop_fn(instruction)?;
    let threads = threads.max(1);
    let (trips, per_trip) = instruction.trips();
    let ops_per_run = (trips * per_trip * instruction.ops()) as f64 * threads as f64;
    let best = (0..RUNS).map(|_| time_on_threads(run, trips, threads)).min()?;
    Some(ops_per_run / best.as_secs_f64() / 1e9)
}

/// Runs `run(trips)` on `threads` threads started together and returns the wall time from the
/// first one starting to the last one finishing, as the threads themselves clock it (a
/// spawning thread that timed it could be descheduled until the work is done: with two workers
/// on two vCPUs it once measured almost nothing, and a 2-thread AMX peak of millions of GOPS).
fn time_on_threads(run: fn(u64), trips: u64, threads: usize) -> Duration {
    if threads == 1 {
        run(trips / 16); // wake the vector unit up before timing
        let start = Instant::now();
        run(trips);
        return start.elapsed();
    }
    let barrier = Barrier::new(threads);
    let spans: Vec<(Instant, Instant)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    run(trips / 16);
                    barrier.wait();
                    let start = Instant::now();
                    run(trips);
                    (start, Instant::now())
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().expect("peak worker")).collect()
    });
    let first = spans.iter().map(|s| s.0).min().expect("threads > 1");
    let last = spans.iter().map(|s| s.1).max().expect("threads > 1");
    last - first
}

/// The safe loop for `instruction`, if this CPU runs it.
fn loop_fn(instruction: PeakInstruction) -> Option<fn(u64)> {
    #[cfg(target_arch = "x86_64")]
    {
        match instruction {
            PeakInstruction::Vpdpbusd => (is_x86_feature_detected!("avx512f")
                && is_x86_feature_detected!("avx512vnni"))
            .then_some(x86::vpdpbusd_safe as fn(u64)),
            PeakInstruction::Vfmadd231ps => {
                is_x86_feature_detected!("avx512f").then_some(x86::vfmadd231ps_safe as fn(u64))
            }
            PeakInstruction::Tdpbusd => octet_kernels::int8::amx::availability()
                .is_ok()
                .then_some(x86::tdpbusd_safe as fn(u64)),
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = instruction;
        None
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::asm;

    /// Calls [`vpdpbusd_loop`]; only reachable through `loop_fn` after feature detection.
    pub fn vpdpbusd_safe(trips: u64) {
        assert!(is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512vnni"));
        // SAFETY: the CPU has AVX-512 F and VNNI (checked just above).
        unsafe { vpdpbusd_loop(trips) }
    }

    /// Calls [`vfmadd231ps_loop`]; only reachable through `loop_fn` after feature detection.
    pub fn vfmadd231ps_safe(trips: u64) {
        assert!(is_x86_feature_detected!("avx512f"));
        // SAFETY: the CPU has AVX-512 F (checked just above).
        unsafe { vfmadd231ps_loop(trips) }
    }

    /// Calls [`tdpbusd_loop`]; only reachable through `loop_fn` when AMX is available.
    pub fn tdpbusd_safe(trips: u64) {
        assert!(octet_kernels::int8::amx::availability().is_ok());
        // SAFETY: the CPU has AMX-TILE and AMX-INT8 and the process holds the tile data
        // permission (checked just above).
        unsafe { tdpbusd_loop(trips) }
    }

    /// `ldtilecfg` operand: palette 1, tiles tmm0..tmm7 all 16 rows x 64 bytes.
    #[repr(C, align(64))]
    struct TileConfig([u8; 64]);

    impl TileConfig {
        fn full_tiles() -> TileConfig {
            let mut c = [0u8; 64];
            c[0] = 1; // palette
            for t in 0..8 {
                c[16 + 2 * t..18 + 2 * t].copy_from_slice(&64u16.to_le_bytes()); // colsb
                c[48 + t] = 16; // rows
            }
            TileConfig(c)
        }
    }

    /// `trips` x 4 independent `tdpbusd` (accumulators tmm0..tmm3; A tiles tmm4, tmm5 and B
    /// tiles tmm6, tmm7 loaded once from a zeroed buffer), between `ldtilecfg` and
    /// `tilerelease`.
    ///
    /// # Safety
    /// The CPU must support AMX-TILE and AMX-INT8 and the process must hold the tile data
    /// permission.
    unsafe fn tdpbusd_loop(trips: u64) {
        if trips == 0 {
            return;
        }
        let cfg = TileConfig::full_tiles();
        let zeros = [0u8; 1024];
        // SAFETY: tile instructions the caller guarantees are usable; `ldtilecfg` reads the 64
        // bytes of `cfg`, each `tileloadd` reads 16 rows of 64 bytes of `zeros` (stride 64);
        // the tile state is released before returning, and no general register other than
        // the declared ones is written.
        unsafe {
            asm!(
                "ldtilecfg [{cfg}]",
                "tilezero tmm0", "tilezero tmm1", "tilezero tmm2", "tilezero tmm3",
                "tileloadd tmm4, [{src} + {stride}*1]", "tileloadd tmm5, [{src} + {stride}*1]",
                "tileloadd tmm6, [{src} + {stride}*1]", "tileloadd tmm7, [{src} + {stride}*1]",
                "2:",
                "tdpbusd tmm0, tmm4, tmm6", "tdpbusd tmm1, tmm4, tmm7",
                "tdpbusd tmm2, tmm5, tmm6", "tdpbusd tmm3, tmm5, tmm7",
                "dec {trips}",
                "jnz 2b",
                "tilerelease",
                cfg = in(reg) &cfg as *const TileConfig,
                src = in(reg) zeros.as_ptr(),
                stride = in(reg) 64usize,
                trips = inout(reg) trips => _,
                options(nostack, readonly),
            );
        }
    }

    /// `trips` x 16 independent `vpdpbusd zmm` (accumulators zmm0..zmm15, operands zmm16, zmm17).
    ///
    /// # Safety
    /// The CPU must support AVX-512 F and AVX-512 VNNI.
    #[target_feature(enable = "avx512f,avx512vnni")]
    unsafe fn vpdpbusd_loop(trips: u64) {
        if trips == 0 {
            return;
        }
        // SAFETY: register-only instructions the caller guarantees the CPU has; every register
        // written is declared clobbered; no memory or stack is touched.
        unsafe {
            asm!(
                "vpxord zmm0, zmm0, zmm0", "vpxord zmm1, zmm1, zmm1", "vpxord zmm2, zmm2, zmm2", "vpxord zmm3, zmm3, zmm3",
                "vpxord zmm4, zmm4, zmm4", "vpxord zmm5, zmm5, zmm5", "vpxord zmm6, zmm6, zmm6", "vpxord zmm7, zmm7, zmm7",
                "vpxord zmm8, zmm8, zmm8", "vpxord zmm9, zmm9, zmm9", "vpxord zmm10, zmm10, zmm10", "vpxord zmm11, zmm11, zmm11",
                "vpxord zmm12, zmm12, zmm12", "vpxord zmm13, zmm13, zmm13", "vpxord zmm14, zmm14, zmm14", "vpxord zmm15, zmm15, zmm15",
                "vpxord zmm16, zmm16, zmm16", "vpxord zmm17, zmm17, zmm17",
                "2:",
                "vpdpbusd zmm0, zmm16, zmm17", "vpdpbusd zmm1, zmm16, zmm17", "vpdpbusd zmm2, zmm16, zmm17", "vpdpbusd zmm3, zmm16, zmm17",
                "vpdpbusd zmm4, zmm16, zmm17", "vpdpbusd zmm5, zmm16, zmm17", "vpdpbusd zmm6, zmm16, zmm17", "vpdpbusd zmm7, zmm16, zmm17",
                "vpdpbusd zmm8, zmm16, zmm17", "vpdpbusd zmm9, zmm16, zmm17", "vpdpbusd zmm10, zmm16, zmm17", "vpdpbusd zmm11, zmm16, zmm17",
                "vpdpbusd zmm12, zmm16, zmm17", "vpdpbusd zmm13, zmm16, zmm17", "vpdpbusd zmm14, zmm16, zmm17", "vpdpbusd zmm15, zmm16, zmm17",
                "dec {trips}",
                "jnz 2b",
                trips = inout(reg) trips => _,
                out("zmm0") _, out("zmm1") _, out("zmm2") _, out("zmm3") _, out("zmm4") _, out("zmm5") _,
                out("zmm6") _, out("zmm7") _, out("zmm8") _, out("zmm9") _, out("zmm10") _, out("zmm11") _,
                out("zmm12") _, out("zmm13") _, out("zmm14") _, out("zmm15") _, out("zmm16") _, out("zmm17") _,
                options(nostack, nomem),
            );
        }
    }

    /// `trips` x 16 independent `vfmadd231ps zmm` (accumulators zmm0..zmm15, operands zmm16,
    /// zmm17, all zero so no denormal assists).
    ///
    /// # Safety
    /// The CPU must support AVX-512 F.
    #[target_feature(enable = "avx512f")]
    unsafe fn vfmadd231ps_loop(trips: u64) {
        if trips == 0 {
            return;
        }
        // SAFETY: register-only instructions the caller guarantees the CPU has; every register
        // written is declared clobbered; no memory or stack is touched.
        unsafe {
            asm!(
                "vpxord zmm0, zmm0, zmm0", "vpxord zmm1, zmm1, zmm1", "vpxord zmm2, zmm2, zmm2", "vpxord zmm3, zmm3, zmm3",
                "vpxord zmm4, zmm4, zmm4", "vpxord zmm5, zmm5, zmm5", "vpxord zmm6, zmm6, zmm6", "vpxord zmm7, zmm7, zmm7",
                "vpxord zmm8, zmm8, zmm8", "vpxord zmm9, zmm9, zmm9", "vpxord zmm10, zmm10, zmm10", "vpxord zmm11, zmm11, zmm11",
                "vpxord zmm12, zmm12, zmm12", "vpxord zmm13, zmm13, zmm13", "vpxord zmm14, zmm14, zmm14", "vpxord zmm15, zmm15, zmm15",
                "vpxord zmm16, zmm16, zmm16", "vpxord zmm17, zmm17, zmm17",
                "2:",
                "vfmadd231ps zmm0, zmm16, zmm17", "vfmadd231ps zmm1, zmm16, zmm17", "vfmadd231ps zmm2, zmm16, zmm17",
                "vfmadd231ps zmm3, zmm16, zmm17", "vfmadd231ps zmm4, zmm16, zmm17", "vfmadd231ps zmm5, zmm16, zmm17",
                "vfmadd231ps zmm6, zmm16, zmm17", "vfmadd231ps zmm7, zmm16, zmm17", "vfmadd231ps zmm8, zmm16, zmm17",
                "vfmadd231ps zmm9, zmm16, zmm17", "vfmadd231ps zmm10, zmm16, zmm17", "vfmadd231ps zmm11, zmm16, zmm17",
                "vfmadd231ps zmm12, zmm16, zmm17", "vfmadd231ps zmm13, zmm16, zmm17", "vfmadd231ps zmm14, zmm16, zmm17",
                "vfmadd231ps zmm15, zmm16, zmm17",
                "dec {trips}",
                "jnz 2b",
                trips = inout(reg) trips => _,
                out("zmm0") _, out("zmm1") _, out("zmm2") _, out("zmm3") _, out("zmm4") _, out("zmm5") _,
                out("zmm6") _, out("zmm7") _, out("zmm8") _, out("zmm9") _, out("zmm10") _, out("zmm11") _,
                out("zmm12") _, out("zmm13") _, out("zmm14") _, out("zmm15") _, out("zmm16") _, out("zmm17") _,
                options(nostack, nomem),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peaks_are_positive_where_supported() {
        for instruction in [
            PeakInstruction::Vpdpbusd,
            PeakInstruction::Vfmadd231ps,
            PeakInstruction::Tdpbusd,
        ] {
            if let Some(gops) = measure(instruction, 1) {
                assert!(gops > 0.0 && gops.is_finite(), "{} {gops}", instruction.name());
            }
        }
    }
}
