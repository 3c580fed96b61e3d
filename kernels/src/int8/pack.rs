//! The packed int8 weight layout: written once by the converter into the model file, used in
//! place from a memory map by every ISA (the bytes are the same on x86_64 and aarch64).
//!
//! # Source
//! Weights arrive as `w[n][k]` int8 (PyTorch `Linear` layout: output channel x input channel)
//! with one f32 scale per output channel (column of the product).
//!
//! # Tile shape
//! Output columns are grouped into *panels* of [`NR`] = 16 columns (one AVX-512 register of
//! i32 accumulators, four NEON registers). Within a panel, k runs in *k-quads* of 4: one
//! k-quad of one panel is 64 contiguous bytes, 4 bytes (k, k+1, k+2, k+3) for each of the 16
//! columns in order. The byte offset of `w[c][k]` is
//!
//! ```text
//! (c / 16) * (k_pad * 16) + (k / 4) * 64 + (c % 16) * 4 + (k % 4)
//! ```
//!
//! so one k-quad of a panel is exactly the operand of `vpdpbusd zmm` (16 lanes x 4 bytes), two
//! `vpmovsxbw` halves for AVX2, four `sdot` operands for NEON, and two k-quads zipped give
//! the `smmla` column pairs. Kernels that work on 32 columns just use two adjacent panels.
//!
//! # k grouping
//! `k_group` is the number of k values that share one activation scale.
//! - Per token (the default, `k_group == None`): one scale per activation row; `k` is padded
//!   to `k_pad`, a multiple of [`PER_ROW_K_ALIGN`] = 8 (the `smmla` depth), and
//!   `k_group == k_pad`, `groups == 1`.
//! - Grouped (`Some(g)`, g a positive multiple of [`GROUP_ALIGN`] = 32, like llama.cpp Q8_0):
//!   `k_pad` is `k` rounded up to a multiple of g and `groups = k_pad / g`.
//!
//! # Padding
//! `n` is padded to `n_pad`, a multiple of 16, with zero weights, scale 0 and column sum 0;
//! `k` is padded to `k_pad` with zero weights. Padding never changes a result.
//!
//! # Column scales and sums
//! `col_scales: [n_pad] f32` holds the per-column weight scale. `col_sums: [groups][n_pad] i32`
//! holds, for group g and column c, the sum of `w[c][k]` over the k of group g. The AVX-512
//! VNNI kernel feeds activations as unsigned bytes `q + 128` and subtracts `128 * col_sum`;
//! the other kernels ignore the sums.
//!
//! # Alignment
//! Kernels use unaligned loads, so any alignment is correct; the model file aligns every array
//! to 64 bytes so that each 64-byte k-quad sits in one cache line.
//!
//! # Values
//! Any int8 weight is allowed, including -128 (TFLite files may contain it); every kernel is
//! exact for the full range. [`quantize_weights_per_channel`](super::quantize_weights_per_channel)
//! produces values in [-127, 127].

use crate::{check_len, KernelError};

/// Output columns per panel: 16 i32 lanes of one 512-bit register.
pub const NR: usize = 16;
/// k values per k-quad: the 4-byte dot product of `vpdpbusd` / `sdot`.
pub const K_QUAD: usize = 4;
/// `k_pad` alignment in per-token mode: 8, the depth of one `smmla`.
pub const PER_ROW_K_ALIGN: usize = 8;
/// A group size must be a multiple of this (the Q8_0 block size).
pub const GROUP_ALIGN: usize = 32;

/// Geometry of one packed weight matrix; see the module docs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PackedI8Layout {
    /// Output columns (rows of the source `w[n][k]`).
    pub n: usize,
    /// Input depth.
    pub k: usize,
    /// k values sharing one activation scale; equals `k_pad` in per-token mode.
    pub k_group: usize,
    /// `n` rounded up to a multiple of [`NR`].
    pub n_pad: usize,
    /// `k` rounded up to a multiple of 8 (per token) or of `k_group`.
    pub k_pad: usize,
    /// `k_pad / k_group`.
    pub groups: usize,
}

fn round_up(x: usize, to: usize) -> Option<usize> {
    x.checked_add(to - 1).map(|v| v / to * to)
}

impl PackedI8Layout {
    /// The layout for an `n x k` weight matrix; `k_group` is `None` for one activation scale
    /// per row, or a positive multiple of 32.
    pub fn new(n: usize, k: usize, k_group: Option<usize>) -> Result<Self, KernelError> {
        if n == 0 || k == 0 {
            return Err(KernelError::Invalid(format!(
                "int8 weights must be non-empty, got n={n} k={k}"
            )));
        }
        let too_big = || KernelError::Invalid(format!("int8 weights of n={n} k={k} are too large"));
        let (k_pad, k_group) = match k_group {
            None => {
                let k_pad = round_up(k, PER_ROW_K_ALIGN).ok_or_else(too_big)?;
                (k_pad, k_pad)
            }
            Some(g) if g > 0 && g % GROUP_ALIGN == 0 => (round_up(k, g).ok_or_else(too_big)?, g),
            Some(g) => {
                return Err(KernelError::Invalid(format!(
                    "k_group must be a positive multiple of {GROUP_ALIGN}, got {g}"
                )))
            }
        };
        let n_pad = round_up(n, NR).ok_or_else(too_big)?;
        // Every length and offset below fits in usize (and in an i32 accumulator: k_pad * 128 * 128).
        n_pad.checked_mul(k_pad).ok_or_else(too_big)?;
        if k_pad > (i32::MAX as usize) / (128 * 128) {
            return Err(too_big());
        }
        Ok(PackedI8Layout {
            n,
            k,
            k_group,
            n_pad,
            k_pad,
            groups: k_pad / k_group,
        })
    }

    /// Bytes of packed weight data.
    pub fn data_len(&self) -> usize {
        self.n_pad * self.k_pad
    }

    /// Number of f32 column scales.
    pub fn scales_len(&self) -> usize {
        self.n_pad
    }

    /// Number of i32 column sums.
    pub fn sums_len(&self) -> usize {
        self.groups * self.n_pad
    }

    /// Number of 16-column panels.
    pub fn panels(&self) -> usize {
        self.n_pad / NR
    }

    /// Bytes from one panel to the next.
    pub fn panel_stride(&self) -> usize {
        self.k_pad * NR
    }

    /// Byte offset of `w[c][k]` in the packed data.
    #[inline]
    pub fn offset(&self, c: usize, k: usize) -> usize {
        (c / NR) * self.panel_stride() + (k / K_QUAD) * (NR * K_QUAD) + (c % NR) * K_QUAD + (k % K_QUAD)
    }
}

/// Packed weights that own their storage (what the converter builds and writes).
#[derive(Clone, Debug)]
pub struct PackedI8Owned {
    /// Geometry.
    pub layout: PackedI8Layout,
    /// `layout.data_len()` packed bytes.
    pub data: Vec<i8>,
    /// `layout.scales_len()` column scales.
    pub col_scales: Vec<f32>,
    /// `layout.sums_len()` column sums, group-major.
    pub col_sums: Vec<i32>,
}

impl PackedI8Owned {
    /// A borrowed view for the kernels.
    pub fn view(&self) -> PackedI8<'_> {
        PackedI8 {
            layout: self.layout,
            data: &self.data,
            col_scales: &self.col_scales,
            col_sums: &self.col_sums,
        }
    }
}

/// Packs `w[n][k]` (row-major, int8) with per-column `col_scales[n]` into the layout of the
/// module docs.
pub fn pack_weights(
    w: &[i8],
    n: usize,
    k: usize,
    col_scales: &[f32],
    k_group: Option<usize>,
) -> Result<PackedI8Owned, KernelError> {
    let layout = PackedI8Layout::new(n, k, k_group)?;
    check_len("int8 weights", w.len(), n * k)?;
    check_len("int8 column scales", col_scales.len(), n)?;
    let mut data = vec![0i8; layout.data_len()];
    let mut sums = vec![0i32; layout.sums_len()];
    for c in 0..n {
        let row = &w[c * k..(c + 1) * k];
        for (kk, &v) in row.iter().enumerate() {
            data[layout.offset(c, kk)] = v;
            sums[(kk / layout.k_group) * layout.n_pad + c] += v as i32;
        }
    }
    let mut scales = vec![0f32; layout.n_pad];
    scales[..n].copy_from_slice(&col_scales[..n]);
    Ok(PackedI8Owned {
        layout,
        data,
        col_scales: scales,
        col_sums: sums,
    })
}

/// Recovers `w[n][k]` from packed data (for tests and tools).
pub fn unpack_weights(w: &PackedI8<'_>) -> Vec<i8> {
    let l = w.layout;
    let mut out = vec![0i8; l.n * l.k];
    for c in 0..l.n {
        for kk in 0..l.k {
            out[c * l.k + kk] = w.data[l.offset(c, kk)];
        }
    }
    out
}

/// Packed weights borrowed from elsewhere, e.g. a memory-mapped model file.
#[derive(Clone, Copy, Debug)]
pub struct PackedI8<'a> {
    pub(crate) layout: PackedI8Layout,
    pub(crate) data: &'a [i8],
    pub(crate) col_scales: &'a [f32],
    pub(crate) col_sums: &'a [i32],
}

impl<'a> PackedI8<'a> {
    /// Wraps the three arrays of a packed matrix, checking their lengths (longer slices are cut
    /// to length). The contents are trusted: wrong column sums give wrong results on the VNNI
    /// path (never unsafety); [`PackedI8::verify_sums`] checks them.
    pub fn from_parts(
        layout: PackedI8Layout,
        data: &'a [i8],
        col_scales: &'a [f32],
        col_sums: &'a [i32],
    ) -> Result<Self, KernelError> {
        let per_row = PackedI8Layout::new(layout.n, layout.k, None).ok();
        let grouped = PackedI8Layout::new(layout.n, layout.k, Some(layout.k_group)).ok();
        if per_row != Some(layout) && grouped != Some(layout) {
            return Err(KernelError::Invalid(format!(
                "inconsistent packed int8 layout {layout:?}"
            )));
        }
        check_len("packed int8 data", data.len(), layout.data_len())?;
        check_len("packed int8 column scales", col_scales.len(), layout.scales_len())?;
        check_len("packed int8 column sums", col_sums.len(), layout.sums_len())?;
        Ok(PackedI8 {
            layout,
            data: &data[..layout.data_len()],
            col_scales: &col_scales[..layout.scales_len()],
            col_sums: &col_sums[..layout.sums_len()],
        })
    }

    /// The geometry.
    pub fn layout(&self) -> &PackedI8Layout {
        &self.layout
    }

    /// The packed bytes.
    pub fn data(&self) -> &'a [i8] {
        self.data
    }

    /// The column scales (`n_pad`).
    pub fn col_scales(&self) -> &'a [f32] {
        self.col_scales
    }

    /// The column sums (`groups x n_pad`).
    pub fn col_sums(&self) -> &'a [i32] {
        self.col_sums
    }

    /// Recomputes the column sums from the data and compares (O(n k); for loaders that do not
    /// trust their input).
    pub fn verify_sums(&self) -> Result<(), KernelError> {
        let l = self.layout;
        let mut sums = vec![0i32; l.sums_len()];
        for c in 0..l.n_pad {
            for kk in 0..l.k_pad {
                sums[(kk / l.k_group) * l.n_pad + c] += self.data[l.offset(c, kk)] as i32;
            }
        }
        match sums.iter().zip(self.col_sums).position(|(a, b)| a != b) {
            None => Ok(()),
            Some(i) => Err(KernelError::Invalid(format!(
                "packed int8 column sum {i} is {}, expected {}",
                self.col_sums[i], sums[i]
            ))),
        }
    }
}
