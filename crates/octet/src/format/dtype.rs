//! Tensor element types ([`Dtype`]), the quantization parameters of `i8`, `u6` and `u7`
//! tensors ([`QuantParam`]), the octet-kernels packed weight layouts ([`PackedI8Layout`],
//! [`PackedF32Layout`]) of packed tensors and the 6- and 7-bit table layouts of `u6` and `u7`
//! tensors.
//!
//! A tensor's `shape` is always its *logical* shape. For plain dtypes its byte length is
//! `product(shape) * element size`. For the packed dtypes the shape is `[n, k]` (n output
//! features, k input features) and the byte length is that of the octet-kernels panel layout.
//! For `u6` the shape is `[rows, dim]` and the byte length `rows * 3 * ceil(dim / 4)`
//! ([`octet_kernels::gather::u6`]); for `u7` it is `rows * 7 * ceil(dim / 8)`
//! ([`octet_kernels::gather::u7`]).

use octet_kernels::f32::PackedF32Layout;
use octet_kernels::int8::PackedI8Layout;
use std::fmt;

/// The element type and layout of a tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dtype {
    /// IEEE-754 binary32, little-endian.
    F32,
    /// IEEE-754 binary16, little-endian.
    F16,
    /// bfloat16 (upper half of a binary32), little-endian.
    Bf16,
    /// Signed 8-bit integers; optionally quantized (see the entry's `quant`).
    I8,
    /// Signed 32-bit integers, little-endian.
    I32,
    /// Raw bytes (blobs such as the tokenizer JSON).
    U8,
    /// octet-kernels int8 weight panels, shape `[n, k]`, with companions `<name>.col_scales` (f32)
    /// and `<name>.col_sums` (i32). See [`PackedI8Layout`].
    I8Packed,
    /// octet-kernels f32 weight panels, shape `[n, k]`. See [`PackedF32Layout`].
    F32Packed,
    /// Unsigned 6-bit values, four in three bytes, shape `[rows, dim]`, each row padded to a
    /// whole group (the layout of [`octet_kernels::gather::u6`]); always quantized (the entry's
    /// `quant`, per tensor or per row). Added in format 1.1.
    U6,
    /// Unsigned 7-bit values, eight in seven bytes, shape `[rows, dim]`, each row padded to a
    /// whole group (the layout of [`octet_kernels::gather::u7`]); always quantized, like `u6`.
    /// Added in format 1.3.
    U7,
}

/// Every dtype name this reader knows, for error messages.
pub const KNOWN_DTYPES: &str = "f32, f16, bf16, i8, i32, u8, i8_packed, f32_packed, u6, u7";

impl Dtype {
    /// All dtypes, in spec order.
    pub const ALL: [Dtype; 10] = [
        Dtype::F32,
        Dtype::F16,
        Dtype::Bf16,
        Dtype::I8,
        Dtype::I32,
        Dtype::U8,
        Dtype::I8Packed,
        Dtype::F32Packed,
        Dtype::U6,
        Dtype::U7,
    ];

    /// The name used in the JSON tensor table.
    pub fn as_str(self) -> &'static str {
        match self {
            Dtype::F32 => "f32",
            Dtype::F16 => "f16",
            Dtype::Bf16 => "bf16",
            Dtype::I8 => "i8",
            Dtype::I32 => "i32",
            Dtype::U8 => "u8",
            Dtype::I8Packed => "i8_packed",
            Dtype::F32Packed => "f32_packed",
            Dtype::U6 => "u6",
            Dtype::U7 => "u7",
        }
    }

    /// Parses a JSON dtype name; `None` for names this reader does not know.
    pub fn parse(name: &str) -> Option<Dtype> {
        Dtype::ALL.into_iter().find(|d| d.as_str() == name)
    }

    /// Bytes per stored element: the unit the data is viewed in (`u6` and `u7` data are byte
    /// arrays).
    pub fn element_size(self) -> u64 {
        match self {
            Dtype::F32 | Dtype::I32 | Dtype::F32Packed => 4,
            Dtype::F16 | Dtype::Bf16 => 2,
            Dtype::I8 | Dtype::U8 | Dtype::I8Packed | Dtype::U6 | Dtype::U7 => 1,
        }
    }

    /// Whether the byte length is `product(shape) * element_size` (not a packed layout).
    pub fn is_plain(self) -> bool {
        !matches!(self, Dtype::I8Packed | Dtype::F32Packed | Dtype::U6 | Dtype::U7)
    }
}

impl fmt::Display for Dtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An `i8`, `u6` or `u7` quantization parameter: one value for the whole tensor, or one per
/// channel along the quantization axis (borrowed from the file by the reader, from the caller by
/// the writer).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum QuantParam<'a, T> {
    PerTensor(T),
    PerChannel(&'a [T]),
}

/// Rounds `x` up to a multiple of `to` (`to > 0`); `None` on overflow.
pub(crate) fn round_up(x: u64, to: u64) -> Option<u64> {
    debug_assert!(to > 0);
    x.checked_add(to - 1).map(|v| v / to * to)
}

/// The octet-kernels int8 packed layout of an `i8_packed` tensor of logical shape `[n, k]` with the
/// file's `k_group` (`None`: one activation scale per row). The sizes (`n_pad * k_pad` weight
/// bytes, `n_pad` col_scales, `groups * n_pad` col_sums) come from
/// [`octet_kernels::int8::PackedI8Layout::new`], so the file and the kernels cannot disagree; its
/// rules apply (n, k >= 1; a k_group is a positive multiple of 32). `Err` says why not.
pub(crate) fn packed_i8_layout(n: u64, k: u64, k_group: Option<u64>) -> Result<PackedI8Layout, String> {
    let too_big = || format!("[{n}, {k}] is too large for this platform");
    let n = usize::try_from(n).map_err(|_| too_big())?;
    let k = usize::try_from(k).map_err(|_| too_big())?;
    let k_group = match k_group {
        None => None,
        Some(g) => Some(usize::try_from(g).map_err(|_| format!("k_group {g} is too large"))?),
    };
    PackedI8Layout::new(n, k, k_group).map_err(|e| e.to_string())
}

/// The file's `k_group` for a kernel layout: `None` when the per-row layout of the same `n, k` is
/// identical (so one layout has one spelling), else `Some(layout.k_group)`.
pub(crate) fn file_k_group(layout: &PackedI8Layout) -> Option<usize> {
    match PackedI8Layout::new(layout.n, layout.k, None) {
        Ok(per_row) if per_row == *layout => None,
        _ => Some(layout.k_group),
    }
}

/// The octet-kernels f32 packed layout of an `f32_packed` tensor of logical shape `[n, k]`:
/// `n_pad * k` floats with `n_pad` = n rounded up to a multiple of 16 (see
/// [`octet_kernels::f32::PackedF32Layout`]). Checks that every size fits before building it,
/// since that constructor does not.
pub(crate) fn packed_f32_layout(n: u64, k: u64) -> Result<PackedF32Layout, String> {
    let too_big = || format!("[{n}, {k}] is too large for this platform");
    let n_pad = round_up(n, octet_kernels::f32::NR as u64).ok_or_else(too_big)?;
    let bytes = n_pad
        .checked_mul(k)
        .and_then(|v| v.checked_mul(4))
        .ok_or_else(too_big)?;
    usize::try_from(bytes).map_err(|_| too_big())?;
    usize::try_from(n_pad).map_err(|_| too_big())?;
    // n <= n_pad, which fits.
    let layout = PackedF32Layout::new(n as usize, usize::try_from(k).map_err(|_| too_big())?);
    debug_assert_eq!(layout.n_pad as u64, n_pad);
    Ok(layout)
}

/// Byte length of a `u6` tensor of logical shape `[rows, dim]`: `rows * 3 * ceil(dim / 4)`,
/// computed by [`octet_kernels::gather::u6_table_bytes`] so the file and the kernels cannot
/// disagree. `Err` if it does not fit this platform.
pub(crate) fn u6_len(rows: u64, dim: u64) -> Result<u64, String> {
    let too_big = || format!("[{rows}, {dim}] is too large for this platform");
    let rows = usize::try_from(rows).map_err(|_| too_big())?;
    let dim = usize::try_from(dim).map_err(|_| too_big())?;
    // The values must be addressable too (the gather computes rows * dim).
    rows.checked_mul(dim).ok_or_else(too_big)?;
    let bytes = octet_kernels::gather::u6_table_bytes(rows, dim).ok_or_else(too_big)?;
    Ok(bytes as u64)
}

/// Byte length of a `u7` tensor of logical shape `[rows, dim]`: `rows * 7 * ceil(dim / 8)`,
/// computed by [`octet_kernels::gather::u7_table_bytes`] so the file and the kernels cannot
/// disagree. `Err` if it does not fit this platform.
pub(crate) fn u7_len(rows: u64, dim: u64) -> Result<u64, String> {
    let too_big = || format!("[{rows}, {dim}] is too large for this platform");
    let rows = usize::try_from(rows).map_err(|_| too_big())?;
    let dim = usize::try_from(dim).map_err(|_| too_big())?;
    // The values must be addressable too (the gather computes rows * dim).
    rows.checked_mul(dim).ok_or_else(too_big)?;
    let bytes = octet_kernels::gather::u7_table_bytes(rows, dim).ok_or_else(too_big)?;
    Ok(bytes as u64)
}
