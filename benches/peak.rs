//! Instruction-throughput peaks of this CPU, measured in the same run as the kernels.
//!
//! A kernel's GOPS mean little without the machine's ceiling next to them. The ceiling here is
//! the throughput of the one instruction each kernel's inner loop is built on, issued back to
//! back on independent registers:
//!
//! - int8: `vpdpbusd zmm` (AVX-512 VNNI): 16 lanes x 4 byte products = 64 multiply-adds, counted
//!   as 128 ops.
//! - f32: `vfmadd231ps zmm` (AVX-512 F): 16 lanes, counted as 32 flops.
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
/// Loop trips per timed run: 16 x 2^21 = 33.5M instructions, about 6-12 ms per run.
const TRIPS: u64 = 1 << 21;
/// Timed runs; the best one counts.
const RUNS: usize = 7;

/// The instruction a peak is measured with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeakInstruction {
    /// `vpdpbusd zmm`, the int8 kernel's core.
    Vpdpbusd,
    /// `vfmadd231ps zmm`, the f32 kernel's core.
    Vfmadd231ps,
}

impl PeakInstruction {
    /// Its name as in the assembly.
    pub fn name(self) -> &'static str {
        match self {
            PeakInstruction::Vpdpbusd => "vpdpbusd zmm",
            PeakInstruction::Vfmadd231ps => "vfmadd231ps zmm",
        }
    }

    /// Ops counted per instruction.
    pub fn ops(self) -> u64 {
        match self {
            PeakInstruction::Vpdpbusd => VNNI_OPS_PER_INSTRUCTION,
            PeakInstruction::Vfmadd231ps => FMA_OPS_PER_INSTRUCTION,
        }
    }
}

/// Peak GOPS of `instruction` with `threads` threads issuing it at once, or `None` when this
/// CPU lacks it (or this is not x86_64).
pub fn measure(instruction: PeakInstruction, threads: usize) -> Option<f64> {
    let run = loop_fn(instruction)?;
    let threads = threads.max(1);
    let ops_per_run = (TRIPS * ACCUMULATORS * instruction.ops()) as f64 * threads as f64;
    let best = (0..RUNS).map(|_| time_on_threads(run, threads)).min()?;
    Some(ops_per_run / best.as_secs_f64() / 1e9)
}

/// Runs `run(TRIPS)` on `threads` threads started together and returns the wall time until
/// the last one finishes.
fn time_on_threads(run: fn(u64), threads: usize) -> Duration {
    if threads == 1 {
        run(TRIPS / 16); // wake the vector unit up before timing
        let start = Instant::now();
        run(TRIPS);
        return start.elapsed();
    }
    let barrier = Barrier::new(threads + 1);
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                run(TRIPS / 16);
                barrier.wait();
                run(TRIPS);
            });
        }
        barrier.wait();
        let start = Instant::now();
        // Leaving the scope joins every thread.
        start
    })
    .elapsed()
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
        for instruction in [PeakInstruction::Vpdpbusd, PeakInstruction::Vfmadd231ps] {
            if let Some(gops) = measure(instruction, 1) {
                assert!(gops > 0.0 && gops.is_finite(), "{} {gops}", instruction.name());
            }
        }
    }
}
