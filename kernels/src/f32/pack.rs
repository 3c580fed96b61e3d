//! The packed layout of the f32 right-hand operand `B`, and the packing of row blocks of `A`.
//!
//! # Packed `B` (weights, and attention K / V packed on the fly)
//!
//! `B` is logically `[k][n]` (`out = A · B`). It is stored as `n_pad / 16` **column panels** of
//! [`NR`] = 16 columns each, panel after panel. Inside a panel the layout is **k-major**: for each
//! `kk` in `0..k` the 16 values `B[kk][16p .. 16p + 16]` follow each other. So
//!
//! ```text
//! data[p * 16 * k + kk * 16 + j] = B[kk][16 * p + j]     (= W[16p + j][kk] for a weight W[n][k])
//! n_pad = round_up(n, 16);   len = n_pad * k  f32 elements;   columns n .. n_pad are zeros.
//! ```
//!
//! Why 16: one panel row is 16 floats = 64 bytes = one cache line, and it is exactly one zmm
//! (AVX-512), two ymm (AVX2) or four q registers (NEON), so every ISA reads the same bytes and the
//! converter writes one layout for all machines. Wider kernels (AVX-512 uses two panels per tile)
//! read two panels side by side; `k` needs no padding, any `k >= 0` is valid.
//!
//! Alignment: nothing requires it (kernels use unaligned loads), but a panel is `64 * k` bytes,
//! so when `data` starts on a 64-byte boundary (the model file aligns tensors to 64 bytes) every
//! panel row is exactly one cache line and no load splits a line.
//!
//! # Packed `A` (internal, per row block and k block)
//!
//! The driver copies a block of `A` rows × `kc` columns into micro-panels of `mr` rows: for each
//! `kk`, the `mr` values `A[r0 .. r0 + mr][k0 + kk]` follow each other, so the register tile
//! reads one contiguous stream and broadcasts each value. Missing rows of the last micro-panel
//! are zero.

use crate::KernelError;

/// Columns per panel of packed `B`; see the module docs.
pub const NR: usize = 16;

/// Shape of a packed `B`; see the module docs for the byte layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PackedF32Layout {
    /// Logical columns (output features).
    pub n: usize,
    /// Depth (input features).
    pub k: usize,
    /// `n` rounded up to a multiple of [`NR`].
    pub n_pad: usize,
}

impl PackedF32Layout {
    /// The layout for `n` columns of depth `k`.
    pub fn new(n: usize, k: usize) -> Self {
        PackedF32Layout {
            n,
            k,
            n_pad: n.div_ceil(NR) * NR,
        }
    }

    /// Number of f32 elements of the packed data.
    pub fn len(&self) -> usize {
        self.n_pad * self.k
    }

    /// True when the packed data holds no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of 16-column panels.
    pub fn panels(&self) -> usize {
        self.n_pad / NR
    }

    /// Checks that the fields are consistent (they are public, so a caller can build any).
    pub(crate) fn validate(&self) -> Result<(), KernelError> {
        if self.n_pad != self.n.div_ceil(NR) * NR {
            return Err(KernelError::Invalid(format!(
                "packed f32 layout: n_pad {} is not n {} rounded up to {NR}",
                self.n_pad, self.n
            )));
        }
        Ok(())
    }
}

/// Checks a strided 2-D source: `rows` rows of `cols` values `stride` apart.
pub(crate) fn check_matrix(
    what: &'static str,
    len: usize,
    rows: usize,
    cols: usize,
    stride: usize,
) -> Result<(), KernelError> {
    if stride < cols {
        return Err(KernelError::Invalid(format!(
            "{what}: row stride {stride} is smaller than the row length {cols}"
        )));
    }
    let needed = if rows == 0 || cols == 0 {
        0
    } else {
        (rows - 1) * stride + cols
    };
    crate::check_len(what, len, needed)
}

fn check_out(layout: &PackedF32Layout, out: &[f32]) -> Result<(), KernelError> {
    if out.len() != layout.len() {
        return Err(KernelError::Length {
            what: "packed f32 output",
            expected: layout.len(),
            got: out.len(),
        });
    }
    Ok(())
}

/// Packs a weight `W[n][k]` (row stride `ldw`, PyTorch's `out x in`), i.e. `B = Wᵀ`, into the
/// panel layout. `out.len()` must equal `PackedF32Layout::new(n, k).len()`.
pub fn pack_nk(w: &[f32], n: usize, k: usize, ldw: usize, out: &mut [f32]) -> Result<(), KernelError> {
    let layout = PackedF32Layout::new(n, k);
    check_matrix("W (n x k)", w.len(), n, k, ldw)?;
    check_out(&layout, out)?;
    for (p, panel) in out.chunks_exact_mut(NR * k.max(1)).enumerate().take(layout.panels()) {
        let cols = (n - p * NR).min(NR);
        if cols < NR {
            panel.fill(0.0);
        }
        for j in 0..cols {
            let row = &w[(p * NR + j) * ldw..][..k];
            for (kk, &v) in row.iter().enumerate() {
                panel[kk * NR + j] = v;
            }
        }
    }
    Ok(())
}

/// Packs `B[k][n]` (row stride `ldb`) into the panel layout. `out.len()` must equal
/// `PackedF32Layout::new(n, k).len()`.
pub fn pack_kn(b: &[f32], k: usize, n: usize, ldb: usize, out: &mut [f32]) -> Result<(), KernelError> {
    let layout = PackedF32Layout::new(n, k);
    check_matrix("B (k x n)", b.len(), k, n, ldb)?;
    check_out(&layout, out)?;
    for (p, panel) in out.chunks_exact_mut(NR * k.max(1)).enumerate().take(layout.panels()) {
        let c0 = p * NR;
        let cols = (n - c0).min(NR);
        for (kk, dst) in panel.chunks_exact_mut(NR).enumerate() {
            let src = &b[kk * ldb + c0..][..cols];
            dst[..cols].copy_from_slice(src);
            dst[cols..].fill(0.0);
        }
    }
    Ok(())
}

/// Packs rows `0 .. rows` of `a` (row stride `lda`), columns `k0 .. k0 + kc`, into micro-panels:
/// full panels of `mr` rows, then one panel of `tail_mr` rows (>= the remaining rows) whose
/// missing rows are zero. Panel `i` starts at `out[i * mr * kc]`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn pack_a_block(
    a: &[f32],
    lda: usize,
    rows: usize,
    k0: usize,
    kc: usize,
    mr: usize,
    tail_mr: usize,
    out: &mut [f32],
) {
    let full = rows / mr;
    for i in 0..full {
        pack_a_panel(a, lda, i * mr, mr, mr, k0, kc, &mut out[i * mr * kc..][..mr * kc]);
    }
    let tail = rows - full * mr;
    if tail > 0 {
        debug_assert!(tail <= tail_mr && tail_mr <= mr);
        pack_a_panel(
            a,
            lda,
            full * mr,
            tail,
            tail_mr,
            k0,
            kc,
            &mut out[full * mr * kc..][..tail_mr * kc],
        );
    }
}

/// One micro-panel: `rows` real rows starting at `r0`, laid out `width` rows wide.
#[allow(clippy::too_many_arguments)]
fn pack_a_panel(a: &[f32], lda: usize, r0: usize, rows: usize, width: usize, k0: usize, kc: usize, out: &mut [f32]) {
    debug_assert_eq!(out.len(), width * kc);
    if rows < width {
        out.fill(0.0);
    }
    // Groups of 4 rows × 4 k as 4 × 4 register transposes (a few times faster than element by
    // element, which matters when n is small and packing is a visible share of the work).
    let (rows4, kc4) = (rows / 4 * 4, kc / 4 * 4);
    for r in (0..rows4).step_by(4) {
        let src: [&[f32]; 4] = std::array::from_fn(|i| &a[(r0 + r + i) * lda + k0..][..kc]);
        for kk in (0..kc4).step_by(4) {
            let block = transpose4(std::array::from_fn(|i| src[i][kk..kk + 4].try_into().unwrap()));
            for (j, col) in block.iter().enumerate() {
                out[(kk + j) * width + r..][..4].copy_from_slice(col);
            }
        }
        for kk in kc4..kc {
            for i in 0..4 {
                out[kk * width + r + i] = src[i][kk];
            }
        }
    }
    for r in rows4..rows {
        let src = &a[(r0 + r) * lda + k0..][..kc];
        for (kk, &v) in src.iter().enumerate() {
            out[kk * width + r] = v;
        }
    }
}

/// Transposes a 4 × 4 block: `result[j][i] = rows[i][j]`.
#[inline(always)]
fn transpose4(rows: [[f32; 4]; 4]) -> [[f32; 4]; 4] {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::*;
        // SAFETY: SSE is part of the x86_64 baseline; the loads and stores read and write
        // 4-float arrays.
        unsafe {
            let [r0, r1, r2, r3] = rows.map(|r| _mm_loadu_ps(r.as_ptr()));
            let (t0, t1) = (_mm_unpacklo_ps(r0, r1), _mm_unpacklo_ps(r2, r3)); // k0 k1 of rows 01, 23
            let (t2, t3) = (_mm_unpackhi_ps(r0, r1), _mm_unpackhi_ps(r2, r3)); // k2 k3
            let cols = [
                _mm_movelh_ps(t0, t1),
                _mm_movehl_ps(t1, t0),
                _mm_movelh_ps(t2, t3),
                _mm_movehl_ps(t3, t2),
            ];
            let mut out = [[0f32; 4]; 4];
            for (o, c) in out.iter_mut().zip(cols) {
                _mm_storeu_ps(o.as_mut_ptr(), c);
            }
            out
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        std::array::from_fn(|j| std::array::from_fn(|i| rows[i][j]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_sizes() {
        let l = PackedF32Layout::new(17, 3);
        assert_eq!((l.n_pad, l.len(), l.panels()), (32, 96, 2));
        assert!(PackedF32Layout::new(0, 5).is_empty());
        assert!(PackedF32Layout { n: 17, k: 3, n_pad: 16 }.validate().is_err());
    }

    #[test]
    fn nk_and_kn_agree_with_the_documented_formula() {
        let (n, k) = (19, 5);
        let w: Vec<f32> = (0..n * (k + 2)).map(|i| i as f32).collect(); // ldw = k + 2
        let b: Vec<f32> = (0..k * (n + 1)).map(|i| i as f32 * 0.5).collect(); // ldb = n + 1
        let l = PackedF32Layout::new(n, k);
        let (mut pw, mut pb) = (vec![f32::NAN; l.len()], vec![f32::NAN; l.len()]);
        pack_nk(&w, n, k, k + 2, &mut pw).unwrap();
        pack_kn(&b, k, n, n + 1, &mut pb).unwrap();
        for p in 0..l.panels() {
            for kk in 0..k {
                for j in 0..NR {
                    let c = p * NR + j;
                    let (ew, eb) = if c < n {
                        (w[c * (k + 2) + kk], b[kk * (n + 1) + c])
                    } else {
                        (0.0, 0.0)
                    };
                    assert_eq!(pw[p * NR * k + kk * NR + j], ew);
                    assert_eq!(pb[p * NR * k + kk * NR + j], eb);
                }
            }
        }
    }

    #[test]
    fn pack_errors() {
        let mut out = vec![0.0; PackedF32Layout::new(4, 4).len()];
        assert!(matches!(
            pack_nk(&[0.0; 15], 4, 4, 4, &mut out),
            Err(KernelError::Length { .. })
        ));
        assert!(matches!(
            pack_nk(&[0.0; 16], 4, 4, 3, &mut out),
            Err(KernelError::Invalid(_))
        ));
        assert!(matches!(
            pack_kn(&[0.0; 16], 4, 4, 4, &mut out[1..]),
            Err(KernelError::Length { .. })
        ));
        assert!(pack_kn(&[0.0; 16], 4, 4, 4, &mut out).is_ok());
        // Empty shapes are fine.
        assert!(pack_nk(&[], 0, 7, 7, &mut []).is_ok());
        assert!(pack_kn(&[], 0, 7, 7, &mut []).is_ok());
    }

    #[test]
    fn transpose4_transposes() {
        let rows: [[f32; 4]; 4] = std::array::from_fn(|i| std::array::from_fn(|j| (i * 4 + j) as f32));
        let t = transpose4(rows);
        for i in 0..4 {
            for j in 0..4 {
                assert_eq!(t[j][i], rows[i][j]);
            }
        }
    }

    #[test]
    fn a_block_pads_the_tail() {
        // 8-row panel + a 3-row tail packed 4 wide; kc = 9 exercises the 4 × 4 transposes and
        // both remainders.
        let (rows, lda, k0, kc, mr, tail_mr) = (11, 13, 2, 9, 8, 4);
        let a: Vec<f32> = (0..rows * lda).map(|i| i as f32 + 1.0).collect();
        let mut out = vec![f32::NAN; mr * kc + tail_mr * kc];
        pack_a_block(&a, lda, rows, k0, kc, mr, tail_mr, &mut out);
        for kk in 0..kc {
            for r in 0..mr {
                assert_eq!(out[kk * mr + r], a[r * lda + k0 + kk]);
            }
            for r in 0..tail_mr {
                let want = if mr + r < rows {
                    a[(mr + r) * lda + k0 + kk]
                } else {
                    0.0
                };
                assert_eq!(out[mr * kc + kk * tail_mr + r], want);
            }
        }
    }
}
