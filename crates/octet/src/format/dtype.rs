//! Tensor element types ([`Dtype`]), the int8 quantization parameters ([`QuantParam`]) and the sizes
//! of the octet-kernels packed weight layouts ([`PackedI8Layout`], [`PackedF32Layout`]).
//!
//! A tensor's `shape` is always its *logical* shape. For plain dtypes its byte length is
//! `product(shape) * element size`. For the packed dtypes the shape is `[n, k]` (n output
//! features, k input features) and the byte length is that of the padded panel layout below.

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
}

/// Every dtype name this reader knows, for error messages.
pub const KNOWN_DTYPES: &str = "f32, f16, bf16, i8, i32, u8, i8_packed, f32_packed";

impl Dtype {
    /// All dtypes, in spec order.
    pub const ALL: [Dtype; 8] = [
        Dtype::F32,
        Dtype::F16,
        Dtype::Bf16,
        Dtype::I8,
        Dtype::I32,
        Dtype::U8,
        Dtype::I8Packed,
        Dtype::F32Packed,
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
        }
    }

    /// Parses a JSON dtype name; `None` for names this reader does not know.
    pub fn parse(name: &str) -> Option<Dtype> {
        Dtype::ALL.into_iter().find(|d| d.as_str() == name)
    }

    /// Bytes per stored element.
    pub fn element_size(self) -> u64 {
        match self {
            Dtype::F32 | Dtype::I32 | Dtype::F32Packed => 4,
            Dtype::F16 | Dtype::Bf16 => 2,
            Dtype::I8 | Dtype::U8 | Dtype::I8Packed => 1,
        }
    }
}

impl fmt::Display for Dtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An int8 quantization parameter: one value for the whole tensor, or one per channel along the
/// quantization axis (borrowed from the file by the reader, from the caller by the writer).
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

/// Output features per int8 panel (`n` is padded to a multiple of this).
pub const I8_PANEL_N: u64 = 16;
/// `k` is padded to a multiple of this when the whole `k` is one group (the dot-product depth
/// the int8 kernels consume per step).
pub const I8_K_STEP: u64 = 8;
/// Output features per f32 panel (`n` is padded to a multiple of this).
pub const F32_PANEL_N: u64 = 16;

/// Sizes of an octet-kernels int8 packed weight: `n_pad * k_pad` i8 weights, `n_pad` f32 column
/// scales and `groups * n_pad` i32 column sums.
///
/// `n_pad = round_up(n, 16)`; `k_pad = round_up(k, 8)` when `k_group` is `None` (one group spanning
/// the whole `k`), else `round_up(k, k_group)`; `groups = k_pad / k_group` (1 when `None`).
///
/// TODO: once `octet_kernels::int8::PackedI8Layout` exists, compute these with it instead of
/// repeating the arithmetic here (the two must agree).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackedI8Layout {
    pub n: usize,
    pub k: usize,
    pub k_group: Option<usize>,
    pub n_pad: usize,
    pub k_pad: usize,
    pub groups: usize,
}

impl PackedI8Layout {
    /// The layout for `n` x `k` with optional `k_group`; `None` if a size overflows or `k_group`
    /// is zero.
    pub fn new(n: u64, k: u64, k_group: Option<u64>) -> Option<PackedI8Layout> {
        let n_pad = round_up(n, I8_PANEL_N)?;
        let (k_pad, groups) = match k_group {
            None => (round_up(k, I8_K_STEP)?, 1),
            Some(0) => return None,
            Some(g) => {
                let k_pad = round_up(k, g)?;
                (k_pad, k_pad / g)
            }
        };
        // Every byte count must fit in u64 and every element count in usize.
        usize::try_from(n_pad.checked_mul(k_pad)?).ok()?;
        usize::try_from(groups.checked_mul(n_pad)?.checked_mul(4)?).ok()?;
        Some(PackedI8Layout {
            n: usize::try_from(n).ok()?,
            k: usize::try_from(k).ok()?,
            k_group: match k_group {
                None => None,
                Some(g) => Some(usize::try_from(g).ok()?),
            },
            n_pad: usize::try_from(n_pad).ok()?,
            k_pad: usize::try_from(k_pad).ok()?,
            groups: usize::try_from(groups).ok()?,
        })
    }

    /// Bytes (= elements) of the packed weights.
    pub fn weight_len(&self) -> usize {
        self.n_pad * self.k_pad
    }

    /// Elements of the `<name>.col_scales` companion (f32).
    pub fn col_scales_len(&self) -> usize {
        self.n_pad
    }

    /// Elements of the `<name>.col_sums` companion (i32), stored as shape `[groups, n_pad]`.
    pub fn col_sums_len(&self) -> usize {
        self.groups * self.n_pad
    }
}

/// Sizes of an octet-kernels f32 packed weight: `n_pad * k` floats with `n_pad = round_up(n, 16)`.
///
/// TODO: once `octet_kernels::f32::PackedF32Layout` exists, compute these with it instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackedF32Layout {
    pub n: usize,
    pub k: usize,
    pub n_pad: usize,
}

impl PackedF32Layout {
    /// The layout for `n` x `k`; `None` if a size overflows.
    pub fn new(n: u64, k: u64) -> Option<PackedF32Layout> {
        let n_pad = round_up(n, F32_PANEL_N)?;
        usize::try_from(n_pad.checked_mul(k)?.checked_mul(4)?).ok()?;
        Some(PackedF32Layout {
            n: usize::try_from(n).ok()?,
            k: usize::try_from(k).ok()?,
            n_pad: usize::try_from(n_pad).ok()?,
        })
    }

    /// Elements (f32) of the packed weights.
    pub fn weight_len(&self) -> usize {
        self.n_pad * self.k
    }
}
