//! Symmetric int8 quantization: per-channel for weights (offline, in the converter) and per
//! row and k-group for activations (on the fly, before every matrix multiply).
//!
//! Activations, per row and group of `k_group` consecutive k (see [`super::pack`]):
//!
//! ```text
//! maxabs = max |x| over the group            (NaN inputs are skipped)
//! scale  = maxabs / 127
//! q      = round_half_even(x * (127 / maxabs)) clamped to [-127, 127]
//! ```
//!
//! An all-zero group (or one whose maxabs is subnormal or not finite) gets scale 0 and q = 0.
//! Every SIMD quantizer evaluates exactly these IEEE operations (`127 / maxabs` is one
//! division, scalar or lane-wise; it, the product and the rounding are correctly rounded), so
//! all ISAs produce identical bytes and scales for finite inputs.
//! Non-finite inputs give unspecified (but memory-safe) results. Padding (k to `k_pad`) is
//! zero. Values never reach -128, which keeps `vpmaddwd`, `vmull`+`vmlal` and the sign tricks
//! exact.

use super::pack::PackedI8Layout;
use crate::{check_len, KernelError};

/// Largest quantized magnitude.
pub const Q_MAX: f32 = 127.0;

/// Quantizes `w[n][k]` per output channel (row of `w`): scale = maxabs(row) / 127 and
/// q = round_half_even(w / scale) in [-127, 127]. An all-zero row gets scale 1.0 (its q are
/// all 0, so any scale is exact; 1.0 keeps a later `1 / scale` finite).
pub fn quantize_weights_per_channel(w: &[f32], n: usize, k: usize) -> (Vec<i8>, Vec<f32>) {
    let len = n.checked_mul(k).expect("n * k overflows").min(w.len());
    let mut q = vec![0i8; n * k];
    let mut scales = vec![1f32; n];
    for (c, scale) in scales.iter_mut().enumerate() {
        let lo = (c * k).min(len);
        let hi = ((c + 1) * k).min(len);
        let s = quantize_group(&w[lo..hi], &mut q[lo..hi]);
        if s > 0.0 {
            *scale = s;
        }
    }
    (q, scales)
}

/// Quantizes one group in place into `q` (same length as `x`) and returns its scale; the
/// scalar definition of the module docs.
#[inline]
pub fn quantize_group(x: &[f32], q: &mut [i8]) -> f32 {
    debug_assert_eq!(x.len(), q.len());
    let maxabs = x.iter().fold(0f32, |m, v| m.max(v.abs()));
    let Some((inv, scale)) = group_factors(maxabs) else {
        q.fill(0);
        return 0.0;
    };
    for (d, &v) in q.iter_mut().zip(x) {
        *d = (v * inv).round_ties_even().clamp(-Q_MAX, Q_MAX) as i8;
    }
    scale
}

/// `(127 / maxabs, maxabs / 127)` for a group, or `None` when the group quantizes to all
/// zeros with scale 0: maxabs zero, so small that `127 / maxabs` overflows, or not finite.
/// Shared by every ISA so that they agree on these cases.
#[inline]
pub(crate) fn group_factors(maxabs: f32) -> Option<(f32, f32)> {
    let inv = Q_MAX / maxabs;
    (maxabs.is_finite() && inv.is_finite()).then_some((inv, maxabs / Q_MAX))
}

/// Scalar row quantizer: `x` holds the k real values, `q` the `k_pad` outputs, `scales` one
/// per group.
pub fn quantize_row_scalar(x: &[f32], k_group: usize, q: &mut [i8], scales: &mut [f32]) {
    debug_assert!(q.len() >= x.len() && q.len().is_multiple_of(k_group) && scales.len() == q.len() / k_group);
    q[x.len()..].fill(0);
    for (g, scale) in scales.iter_mut().enumerate() {
        let lo = (g * k_group).min(x.len());
        let hi = ((g + 1) * k_group).min(x.len());
        *scale = quantize_group(&x[lo..hi], &mut q[lo..hi]);
    }
}

/// Quantized activation rows in canonical form: `m` rows of `k_pad` int8 values in
/// [-127, 127] (zero beyond k), and `groups` f32 scales per row; for centered rows
/// ([`super::centered`]) also `groups` offsets per row (none for symmetric rows).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct QuantizedRows {
    pub(crate) m: usize,
    pub(crate) k: usize,
    pub(crate) k_pad: usize,
    pub(crate) k_group: usize,
    pub(crate) groups: usize,
    pub(crate) values: Vec<i8>,
    pub(crate) scales: Vec<f32>,
    /// `m x groups` group offsets of centered rows; empty for symmetric rows.
    pub(crate) offsets: Vec<f32>,
}

impl QuantizedRows {
    /// Wraps already-quantized rows for weights of `layout`: `values` is `m x k_pad` (values
    /// in [-127, 127]; entries at k or beyond are ignored), `scales` is `m x groups`.
    pub fn from_parts(
        layout: &PackedI8Layout,
        m: usize,
        mut values: Vec<i8>,
        scales: Vec<f32>,
    ) -> Result<Self, KernelError> {
        check_len("quantized activations", values.len(), m * layout.k_pad)?;
        check_len("activation scales", scales.len(), m * layout.groups)?;
        values.truncate(m * layout.k_pad);
        if values.contains(&i8::MIN) {
            return Err(KernelError::Invalid(
                "quantized activations must lie in [-127, 127]".into(),
            ));
        }
        for row in values.chunks_exact_mut(layout.k_pad) {
            row[layout.k..].fill(0);
        }
        let mut scales = scales;
        scales.truncate(m * layout.groups);
        Ok(QuantizedRows {
            m,
            k: layout.k,
            k_pad: layout.k_pad,
            k_group: layout.k_group,
            groups: layout.groups,
            values,
            scales,
            offsets: Vec::new(),
        })
    }

    /// Makes these rows centered ([`super::centered`]) with `offsets`, `m x groups`. Only for
    /// layouts with more than one group.
    pub fn with_offsets(mut self, offsets: Vec<f32>) -> Result<Self, KernelError> {
        if self.groups < 2 {
            return Err(KernelError::Invalid(
                "centered activation rows need a layout with more than one k-group".into(),
            ));
        }
        check_len("activation offsets", offsets.len(), self.m * self.groups)?;
        self.offsets = offsets;
        self.offsets.truncate(self.m * self.groups);
        Ok(self)
    }

    /// Makes these `m` rows for weights of `layout`, centered or not, reusing the buffers; the
    /// values, scales and offsets are left for the caller to write (every row, every group).
    pub(crate) fn reset(&mut self, layout: &PackedI8Layout, m: usize, centered: bool) {
        self.m = m;
        self.k = layout.k;
        self.k_pad = layout.k_pad;
        self.k_group = layout.k_group;
        self.groups = layout.groups;
        self.values.resize(m * layout.k_pad, 0);
        self.scales.resize(m * layout.groups, 0.0);
        self.offsets.resize(if centered { m * layout.groups } else { 0 }, 0.0);
    }

    /// Rows.
    pub fn m(&self) -> usize {
        self.m
    }

    /// Values per row (`k_pad`).
    pub fn k_pad(&self) -> usize {
        self.k_pad
    }

    /// Scales per row.
    pub fn groups(&self) -> usize {
        self.groups
    }

    /// The quantized values of row `r`.
    pub fn row(&self, r: usize) -> &[i8] {
        &self.values[r * self.k_pad..(r + 1) * self.k_pad]
    }

    /// The scales of row `r`, one per group.
    pub fn row_scales(&self, r: usize) -> &[f32] {
        &self.scales[r * self.groups..(r + 1) * self.groups]
    }

    /// The offsets of row `r`, one per group, or `None` for symmetric rows.
    pub fn row_offsets(&self, r: usize) -> Option<&[f32]> {
        (!self.offsets.is_empty()).then(|| &self.offsets[r * self.groups..(r + 1) * self.groups])
    }

    /// True when this was quantized for (or wraps values fitting) `layout`.
    pub(crate) fn matches(&self, layout: &PackedI8Layout) -> bool {
        self.k == layout.k
            && self.k_pad == layout.k_pad
            && self.k_group == layout.k_group
            && self.groups == layout.groups
    }
}

/// Quantizes `m` rows of `a` (row r at `a[r * a_stride..][..k]`) for weights of `layout`
/// with the kernel's vectorized quantizer (identical bytes on every ISA).
pub fn quantize_rows(
    kernel: &super::Int8Kernel,
    a: &[f32],
    a_stride: usize,
    m: usize,
    layout: &PackedI8Layout,
) -> Result<QuantizedRows, KernelError> {
    quantize_rows_coded(kernel, a, a_stride, m, layout, false)
}

/// Like [`quantize_rows`], centered ([`super::centered`]) with the kernel's centered
/// quantizer (identical bytes, scales and offsets on every ISA). Only for layouts with more
/// than one group.
pub fn quantize_rows_centered(
    kernel: &super::Int8Kernel,
    a: &[f32],
    a_stride: usize,
    m: usize,
    layout: &PackedI8Layout,
) -> Result<QuantizedRows, KernelError> {
    quantize_rows_coded(kernel, a, a_stride, m, layout, true)
}

/// [`quantize_rows`] or, when `centered`, [`quantize_rows_centered`].
fn quantize_rows_coded(
    kernel: &super::Int8Kernel,
    a: &[f32],
    a_stride: usize,
    m: usize,
    layout: &PackedI8Layout,
    centered: bool,
) -> Result<QuantizedRows, KernelError> {
    let (k, groups) = (layout.k, layout.groups);
    super::check_rows(a, a_stride, m, k)?;
    let mut q = QuantizedRows::from_parts(layout, m, vec![0; m * layout.k_pad], vec![0.0; m * groups])?;
    if centered {
        q = q.with_offsets(vec![0.0; m * groups])?;
    }
    let offsets = if centered { groups } else { 0 };
    let rows = q
        .values
        .chunks_exact_mut(layout.k_pad)
        .zip(q.scales.chunks_exact_mut(groups));
    let mut offset_rows = q.offsets.chunks_mut(offsets.max(1));
    for (r, (qv, qs)) in rows.enumerate() {
        let x = &a[r * a_stride..r * a_stride + k];
        match offset_rows.next().filter(|_| centered) {
            Some(qo) => (kernel.quantize_row_centered)(x, layout.k_group, qv, qs, qo),
            None => (kernel.quantize_row)(x, layout.k_group, qv, qs),
        }
    }
    Ok(q)
}
