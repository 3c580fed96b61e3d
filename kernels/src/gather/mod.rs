//! Gather-dequantize of an embedding table: token ids in, f32 rows out.
//!
//! For every id, row `ids[i]` of a `[rows, dim]` table is dequantized to f32, multiplied by a
//! constant and written to (or, in [`gather_add`], added into) row `i` of the output. The
//! constant exists because Gemma scales its token embeddings by sqrt(hidden); BERT sums word,
//! position and token-type embeddings, hence the adding form. Keeping the table in int8 (or 7
//! or 6 bits) is what lets a model like the browser's T5 encoder (a [32128, 512] table) stay
//! small.
//!
//! Table kinds ([`Table`]) and the exact definition every implementation computes:
//!
//! ```text
//! int8:  out = f32(q - zero_point) * (scale * multiplier)   // scale, zero point per row or per tensor
//! u6:    out = f32(q - zero_point) * (scale * multiplier)   // q in 0..=63 unpacked from the u6 layout
//! u7:    out = f32(q - zero_point) * (scale * multiplier)   // q in 0..=127 unpacked from the u7 layout
//! f16:   out = f32(h) * multiplier                           // f16 -> f32 is exact
//! f32:   out = x * multiplier
//! add:   out = out + (the value above)
//! ```
//!
//! The u6 layout (four 6-bit values in three bytes, rows padded to whole groups) is specified
//! in [`u6`]'s docs, with [`pack_u6`] to build it; the u7 layout (eight 7-bit values in seven
//! bytes) in [`u7`]'s, with [`pack_u7`]. `q - zero_point` is an i32 subtraction
//! (wrapping, which only matters for zero points far outside the value range), the conversion
//! to f32 rounds to nearest even, and
//! `scale * multiplier` is one f32 product formed once per row. Every SIMD path evaluates the
//! same IEEE operations in the same order, without fused multiply-adds, so **all
//! implementations are bit-exact with the scalar reference** ([`scalar`]): there is no
//! summation and no contraction that could reorder a rounding.
//!
//! Files: [`u6`] and [`u7`] (the 6- and 7-bit layouts, packing), [`scalar`] (reference),
//! `avx2`, `avx512`, `neon` (one per ISA), `tests`.

mod scalar;
pub mod u6;
pub mod u7;

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
#[cfg(target_arch = "aarch64")]
mod neon;

#[cfg(test)]
mod tests;

use crate::{check_len, Isa, KernelError};
use half::f16;
pub use u6::{pack_u6, u6_row_bytes, u6_table_bytes, unpack_u6, U6_MAX};
pub use u7::{pack_u7, u7_row_bytes, u7_table_bytes, unpack_u7, U7_MAX};

/// A quantization parameter that is either one value for the whole table or one per row.
#[derive(Clone, Copy, Debug)]
pub enum PerRowOrTensor<'a, T> {
    /// One value shared by every row.
    Tensor(T),
    /// One value per row; the slice must hold at least `rows` values.
    Row(&'a [T]),
}

impl<T: Copy> PerRowOrTensor<'_, T> {
    /// The value for `row` (which the caller has checked against the slice length).
    #[inline]
    fn at(&self, row: usize) -> T {
        match self {
            PerRowOrTensor::Tensor(v) => *v,
            PerRowOrTensor::Row(values) => values[row],
        }
    }

    /// Checks that a per-row slice covers `rows` rows.
    fn check(&self, what: &'static str, rows: usize) -> Result<(), KernelError> {
        match self {
            PerRowOrTensor::Tensor(_) => Ok(()),
            PerRowOrTensor::Row(values) => check_len(what, values.len(), rows),
        }
    }
}

/// A row-major `[rows, dim]` embedding table in one of the stored element types.
#[derive(Clone, Copy, Debug)]
pub enum Table<'a> {
    /// int8 with affine quantization: real = (q - zero_point) * scale. Zero points are i32 as
    /// loaded (TFLite stores them as int64 in [-128, 127]).
    I8 {
        data: &'a [i8],
        scale: PerRowOrTensor<'a, f32>,
        zero_point: PerRowOrTensor<'a, i32>,
    },
    /// Unsigned 6-bit values in the [`u6`] layout (`rows * u6_row_bytes(dim)` bytes) with
    /// affine quantization: real = (q - zero_point) * scale, q in 0..=63.
    U6 {
        data: &'a [u8],
        scale: PerRowOrTensor<'a, f32>,
        zero_point: PerRowOrTensor<'a, i32>,
    },
    /// Unsigned 7-bit values in the [`u7`] layout (`rows * u7_row_bytes(dim)` bytes) with
    /// affine quantization: real = (q - zero_point) * scale, q in 0..=127.
    U7 {
        data: &'a [u8],
        scale: PerRowOrTensor<'a, f32>,
        zero_point: PerRowOrTensor<'a, i32>,
    },
    /// IEEE half precision.
    F16(&'a [f16]),
    /// Plain f32.
    F32(&'a [f32]),
}

/// Dequantizes one int8 row: `dst = f32(src - zero_point) * row_scale`, or adds that into `dst`
/// when `accumulate`. `src.len() == dst.len()`.
type I8RowFn = fn(src: &[i8], zero_point: i32, row_scale: f32, dst: &mut [f32], accumulate: bool);
/// Unpacks and dequantizes one u6 row: `dst = f32(q - zero_point) * row_scale` (or adds it),
/// `src.len() == u6_row_bytes(dst.len())`.
type U6RowFn = fn(src: &[u8], zero_point: i32, row_scale: f32, dst: &mut [f32], accumulate: bool);
/// Unpacks and dequantizes one u7 row: `dst = f32(q - zero_point) * row_scale` (or adds it),
/// `src.len() == u7_row_bytes(dst.len())`.
type U7RowFn = fn(src: &[u8], zero_point: i32, row_scale: f32, dst: &mut [f32], accumulate: bool);
/// Converts one f16 row: `dst = f32(src) * multiplier` (or adds it).
type F16RowFn = fn(src: &[f16], multiplier: f32, dst: &mut [f32], accumulate: bool);
/// Scales one f32 row: `dst = src * multiplier` (or adds it).
type F32RowFn = fn(src: &[f32], multiplier: f32, dst: &mut [f32], accumulate: bool);

/// The gather implementation for one instruction-set level. Holding one proves the CPU
/// supports it: the statics are private and handed out only by [`for_isa`].
pub struct GatherKernel {
    /// Kernel name with its geometry: architecture, table types, f32 lanes per step, ISA.
    pub name: &'static str,
    i8_row: I8RowFn,
    u6_row: U6RowFn,
    u7_row: U7RowFn,
    f16_row: F16RowFn,
    f32_row: F32RowFn,
}

static SCALAR: GatherKernel = GatherKernel {
    name: "generic-gather-i8u6u7f16f32-1xf32-scalar",
    i8_row: scalar::i8_row,
    u6_row: scalar::u6_row,
    u7_row: scalar::u7_row,
    f16_row: scalar::f16_row,
    f32_row: scalar::f32_row,
};

#[cfg(target_arch = "x86_64")]
static AVX2: GatherKernel = GatherKernel {
    name: "x86_64-gather-i8u6u7f16f32-8xf32-avx2",
    i8_row: avx2::i8_row,
    u6_row: avx2::u6_row,
    u7_row: avx2::u7_row,
    f16_row: avx2::f16_row,
    f32_row: avx2::f32_row,
};

#[cfg(target_arch = "x86_64")]
static AVX512: GatherKernel = GatherKernel {
    name: "x86_64-gather-i8u6u7f16f32-16xf32-avx512",
    i8_row: avx512::i8_row,
    u6_row: avx512::u6_row,
    u7_row: avx512::u7_row,
    f16_row: avx512::f16_row,
    f32_row: avx512::f32_row,
};

/// The AVX-512 kernel with its u7 rows unpacked by AVX512_VBMI (`vpermb`, `vpmultishiftqb`),
/// handed out only where the CPU has VBMI too (Ice Lake, Zen 4 and later).
#[cfg(target_arch = "x86_64")]
static AVX512_VBMI: GatherKernel = GatherKernel {
    name: "x86_64-gather-i8u6u7f16f32-16xf32-avx512vbmi",
    u7_row: avx512::u7_row_vbmi,
    ..AVX512
};

#[cfg(target_arch = "aarch64")]
static NEON: GatherKernel = GatherKernel {
    name: "aarch64-gather-i8u6u7f16f32-4xf32-neon",
    i8_row: neon::i8_row,
    u6_row: neon::u6_row,
    u7_row: neon::u7_row,
    f16_row: neon::f16_row,
    f32_row: neon::f32_row,
};

/// The best gather implementation at or below `isa` that this CPU supports. The AVX2 path
/// also needs F16C (for `vcvtph2ps`); every AVX2 CPU has it, but it is checked, and a CPU
/// without it gets the scalar kernel. The AVX-512 level takes the VBMI form of the kernel
/// where the CPU has AVX512_VBMI. The NEON kernel serves the dotprod and i8mm levels too:
/// gathering needs no dot products.
pub fn for_isa(isa: Isa) -> &'static GatherKernel {
    // The AMX level adds int8 tiles only: gathering uses AVX-512 there.
    let isa = if isa == Isa::Amx { Isa::Avx512 } else { isa };
    if !isa.is_supported() {
        return &SCALAR;
    }
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 if is_x86_feature_detected!("avx512vbmi") => &AVX512_VBMI,
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => &AVX512,
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 if is_x86_feature_detected!("f16c") => &AVX2,
        #[cfg(target_arch = "aarch64")]
        Isa::Neon | Isa::Dotprod | Isa::I8mm => &NEON,
        _ => &SCALAR,
    }
}

/// Writes `multiplier * dequant(table row ids[i])` to row `i` of `out` (rows of `dim`), for
/// every `i`. `out` must hold at least `ids.len() * dim` values; values past that are left
/// alone. Errors (before anything is written): an id `>= rows`, a table, per-row parameter
/// or output slice shorter than needed, or `rows * dim` overflowing.
pub fn gather(
    kernel: &GatherKernel,
    table: &Table,
    rows: usize,
    dim: usize,
    ids: &[u32],
    multiplier: f32,
    out: &mut [f32],
) -> Result<(), KernelError> {
    run(kernel, table, rows, dim, ids, multiplier, out, false)
}

/// Like [`gather`], but adds into `out` instead of overwriting it (BERT sums word, position
/// and token-type embeddings).
pub fn gather_add(
    kernel: &GatherKernel,
    table: &Table,
    rows: usize,
    dim: usize,
    ids: &[u32],
    multiplier: f32,
    out: &mut [f32],
) -> Result<(), KernelError> {
    run(kernel, table, rows, dim, ids, multiplier, out, true)
}

/// Checks every argument, then dequantizes row by row through the kernel's row functions.
#[allow(clippy::too_many_arguments)]
fn run(
    kernel: &GatherKernel,
    table: &Table,
    rows: usize,
    dim: usize,
    ids: &[u32],
    multiplier: f32,
    out: &mut [f32],
    accumulate: bool,
) -> Result<(), KernelError> {
    check(table, rows, dim, ids, out)?;
    if dim == 0 {
        return Ok(());
    }
    for (dst, &id) in out.chunks_exact_mut(dim).zip(ids) {
        let row = id as usize;
        let span = row * dim..(row + 1) * dim;
        match table {
            Table::I8 {
                data,
                scale,
                zero_point,
            } => {
                let row_scale = scale.at(row) * multiplier;
                (kernel.i8_row)(&data[span], zero_point.at(row), row_scale, dst, accumulate)
            }
            Table::U6 {
                data,
                scale,
                zero_point,
            } => {
                let row_bytes = u6_row_bytes(dim);
                let src = &data[row * row_bytes..(row + 1) * row_bytes];
                let row_scale = scale.at(row) * multiplier;
                (kernel.u6_row)(src, zero_point.at(row), row_scale, dst, accumulate)
            }
            Table::U7 {
                data,
                scale,
                zero_point,
            } => {
                let row_bytes = u7_row_bytes(dim);
                let src = &data[row * row_bytes..(row + 1) * row_bytes];
                let row_scale = scale.at(row) * multiplier;
                (kernel.u7_row)(src, zero_point.at(row), row_scale, dst, accumulate)
            }
            Table::F16(data) => (kernel.f16_row)(&data[span], multiplier, dst, accumulate),
            Table::F32(data) => (kernel.f32_row)(&data[span], multiplier, dst, accumulate),
        }
    }
    Ok(())
}

/// Validates sizes and ids so that [`run`] can index without failing.
fn check(table: &Table, rows: usize, dim: usize, ids: &[u32], out: &[f32]) -> Result<(), KernelError> {
    let elements = rows
        .checked_mul(dim)
        .ok_or_else(|| KernelError::Invalid(format!("embedding table of {rows} x {dim} overflows usize")))?;
    match table {
        Table::I8 {
            data,
            scale,
            zero_point,
        } => {
            check_len("int8 embedding table", data.len(), elements)?;
            scale.check("per-row scales", rows)?;
            zero_point.check("per-row zero points", rows)?;
        }
        Table::U6 {
            data,
            scale,
            zero_point,
        } => {
            let bytes = u6_table_bytes(rows, dim)
                .ok_or_else(|| KernelError::Invalid(format!("u6 embedding table of {rows} x {dim} overflows usize")))?;
            check_len("u6 embedding table", data.len(), bytes)?;
            scale.check("per-row scales", rows)?;
            zero_point.check("per-row zero points", rows)?;
        }
        Table::U7 {
            data,
            scale,
            zero_point,
        } => {
            let bytes = u7_table_bytes(rows, dim)
                .ok_or_else(|| KernelError::Invalid(format!("u7 embedding table of {rows} x {dim} overflows usize")))?;
            check_len("u7 embedding table", data.len(), bytes)?;
            scale.check("per-row scales", rows)?;
            zero_point.check("per-row zero points", rows)?;
        }
        Table::F16(data) => check_len("f16 embedding table", data.len(), elements)?,
        Table::F32(data) => check_len("f32 embedding table", data.len(), elements)?,
    }
    let needed = ids
        .len()
        .checked_mul(dim)
        .ok_or_else(|| KernelError::Invalid(format!("{} ids x {dim} overflows usize", ids.len())))?;
    check_len("gather output", out.len(), needed)?;
    if let Some(&id) = ids.iter().find(|&&id| id as usize >= rows) {
        return Err(KernelError::IdOutOfRange { id, rows });
    }
    Ok(())
}
