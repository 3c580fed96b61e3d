//! f32 matrix multiply: the float baseline, packed, cache-blocked, register-tiled, with the
//! shared fused epilogue.
//!
//! `out[r][c] = epilogue(Σ_k A[r][k] · B[k][c])` (see [`crate::epilogue`]), where `B` is packed
//! into 16-column panels ([`pack`]): once by the converter for linear-layer weights `W[n][k]`
//! ([`pack_nk`], `B = Wᵀ`, used in place from a memory map through [`PackedF32::from_parts`]),
//! or on the fly for attention (`Q Kᵀ` with [`pack_nk`], `P V` with [`pack_kn`]) into a buffer
//! the caller owns. [`reference`] is the definition and test oracle.
//!
//! [`matmul`] runs over rayon's current pool when the work is large enough and
//! [`matmul_serial`] on the calling thread; both give bit-identical results for any thread
//! count (see the driver's notes on determinism). Blocking for L1 / L2 and the loop nest are
//! described in the private `driver` module.
//!
//! Kernels ([`for_isa`]), named by register tile (rows × columns):
//! - `f32-scalar-4x16`: portable Rust.
//! - `x86_64-f32-6x16-avx2`: 6 rows × 2 ymm, 12 accumulators of 16 ymm registers.
//! - `x86_64-f32-12x32-avx512`: 12 rows × 2 panels, 24 zmm accumulators of 32, each A value
//!   broadcast once per k step and shared by both panels.
//! - `aarch64-f32-6x16-neon`: 6 rows × 4 q registers, 24 accumulators of 32, A values
//!   used by lane (`fmla v.4s, v.4s, v.s[i]`).

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
mod driver;
#[cfg(target_arch = "aarch64")]
mod neon;
pub mod pack;
pub mod reference;
mod scalar;
#[cfg(test)]
mod tests;

pub use pack::{pack_kn, pack_nk, PackedF32Layout, NR};

use crate::{Epilogue, Isa, KernelError};
use driver::{Geometry, OutPtr, Problem};
use pack::check_matrix;

/// The f32 implementation for one instruction-set level. Holding one proves the CPU runs it:
/// the statics are private and [`for_isa`] only returns supported ones.
pub struct F32Kernel {
    /// Kernel name with its register-tile geometry, e.g. `x86_64-f32-12x32-avx512`.
    pub name: &'static str,
    geometry: &'static Geometry,
}

impl F32Kernel {
    /// Rows × columns of the main register tile.
    pub fn tile(&self) -> (usize, usize) {
        (self.geometry.mr, self.geometry.panels * NR)
    }
}

static SCALAR: F32Kernel = F32Kernel {
    name: "f32-scalar-4x16",
    geometry: &scalar::GEOMETRY,
};
#[cfg(target_arch = "x86_64")]
static AVX2: F32Kernel = F32Kernel {
    name: "x86_64-f32-6x16-avx2",
    geometry: &avx2::GEOMETRY,
};
#[cfg(target_arch = "x86_64")]
static AVX512: F32Kernel = F32Kernel {
    name: "x86_64-f32-12x32-avx512",
    geometry: &avx512::GEOMETRY,
};
#[cfg(target_arch = "aarch64")]
static NEON: F32Kernel = F32Kernel {
    name: "aarch64-f32-6x16-neon",
    geometry: &neon::GEOMETRY,
};

/// The best f32 implementation at or below `isa` that this CPU supports.
pub fn for_isa(isa: Isa) -> &'static F32Kernel {
    #[cfg(target_arch = "x86_64")]
    {
        // The AMX level adds int8 tiles only: f32 uses its AVX-512 kernel there.
        if matches!(isa, Isa::Amx | Isa::Avx512) && Isa::Avx512.is_supported() {
            return &AVX512;
        }
        if matches!(isa, Isa::Amx | Isa::Avx512 | Isa::Avx2) && Isa::Avx2.is_supported() {
            return &AVX2;
        }
    }
    #[cfg(target_arch = "aarch64")]
    {
        // One NEON kernel serves every aarch64 level: f32 gains nothing from SDOT / SMMLA.
        if matches!(isa, Isa::Neon | Isa::Dotprod | Isa::I8mm) && Isa::Neon.is_supported() {
            return &NEON;
        }
    }
    let _ = isa;
    &SCALAR
}

/// A packed `B` borrowed from a model file or a scratch buffer; see [`pack`] for the layout.
#[derive(Clone, Copy, Debug)]
pub struct PackedF32<'a> {
    layout: PackedF32Layout,
    data: &'a [f32],
}

impl<'a> PackedF32<'a> {
    /// Wraps packed data (the first `layout.len()` floats of `data` are used).
    pub fn from_parts(layout: PackedF32Layout, data: &'a [f32]) -> Result<Self, KernelError> {
        layout.validate()?;
        crate::check_len("packed f32 data", data.len(), layout.len())?;
        Ok(PackedF32 {
            layout,
            data: &data[..layout.len()],
        })
    }

    /// The shape.
    pub fn layout(&self) -> &PackedF32Layout {
        &self.layout
    }

    /// The packed floats, exactly `layout().len()` of them.
    pub fn data(&self) -> &'a [f32] {
        self.data
    }
}

/// An owned packed `B`, for tests, tools and callers that pack once and keep the result.
#[derive(Clone, Debug)]
pub struct PackedF32Owned {
    layout: PackedF32Layout,
    data: Vec<f32>,
}

impl PackedF32Owned {
    /// Packs a weight `W[n][k]` with row stride `ldw`; see [`pack_nk`].
    pub fn from_nk(w: &[f32], n: usize, k: usize, ldw: usize) -> Result<Self, KernelError> {
        let layout = PackedF32Layout::new(n, k);
        let mut data = vec![0.0; layout.len()];
        pack_nk(w, n, k, ldw, &mut data)?;
        Ok(PackedF32Owned { layout, data })
    }

    /// Packs `B[k][n]` with row stride `ldb`; see [`pack_kn`].
    pub fn from_kn(b: &[f32], k: usize, n: usize, ldb: usize) -> Result<Self, KernelError> {
        let layout = PackedF32Layout::new(n, k);
        let mut data = vec![0.0; layout.len()];
        pack_kn(b, k, n, ldb, &mut data)?;
        Ok(PackedF32Owned { layout, data })
    }

    /// Borrows it for [`matmul`].
    pub fn as_packed(&self) -> PackedF32<'_> {
        PackedF32 {
            layout: self.layout,
            data: &self.data,
        }
    }
}

/// Checks the arguments of a matmul and builds the problem.
#[allow(clippy::too_many_arguments)]
fn problem<'a>(
    a: &'a [f32],
    a_stride: usize,
    m: usize,
    b: &'a PackedF32<'a>,
    epilogue: &'a Epilogue<'a>,
    out: &'a mut [f32],
    out_stride: usize,
) -> Result<Problem<'a>, KernelError> {
    let layout = b.layout();
    check_matrix("A", a.len(), m, layout.k, a_stride)?;
    check_matrix("out", out.len(), m, layout.n, out_stride)?;
    epilogue.check(layout.n)?;
    Ok(Problem {
        a,
        lda: a_stride,
        m,
        b,
        epilogue,
        out: OutPtr(out.as_mut_ptr()),
        ldo: out_stride,
    })
}

/// `out[r][c] = epilogue(Σ_k a[r][k] · B[k][c])` for `r < m`, `c < n`, on rayon's current pool
/// when the work is large enough. `a` holds `m` rows of `k` values `a_stride` apart; `out` holds
/// `m` rows of `n` values `out_stride` apart (other values are left alone). The result is
/// bit-identical for any number of threads.
#[allow(clippy::too_many_arguments)]
pub fn matmul(
    kernel: &F32Kernel,
    a: &[f32],
    a_stride: usize,
    m: usize,
    b: &PackedF32,
    epilogue: &Epilogue,
    out: &mut [f32],
    out_stride: usize,
) -> Result<(), KernelError> {
    let p = problem(a, a_stride, m, b, epilogue, out, out_stride)?;
    driver::run(kernel.geometry, &p, true);
    Ok(())
}

/// [`matmul`] on the calling thread only (for callers already inside a parallel loop, e.g. one
/// attention head per task).
#[allow(clippy::too_many_arguments)]
pub fn matmul_serial(
    kernel: &F32Kernel,
    a: &[f32],
    a_stride: usize,
    m: usize,
    b: &PackedF32,
    epilogue: &Epilogue,
    out: &mut [f32],
    out_stride: usize,
) -> Result<(), KernelError> {
    let p = problem(a, a_stride, m, b, epilogue, out, out_stride)?;
    driver::run(kernel.geometry, &p, false);
    Ok(())
}
