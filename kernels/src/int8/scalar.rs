//! Portable int8 kernel on the packed layout: one row x one 16-column panel at a time, exact
//! i32 sums, float steps exactly as in [`super::reference`].

use super::centered::dequantize_centered;
use super::pack::{K_QUAD, NR};
use super::reference::dequantize;
use super::Block;

/// One row per tile: the packed tile of a row is the row itself.
pub(crate) const MR: usize = 1;

pub(crate) fn block(b: &Block<'_>, out: &mut [&mut [f32]]) {
    let l = b.w.layout;
    let quads_per_group = l.k_group / K_QUAD;
    let mut dots = vec![[0i32; NR]; l.groups];
    let mut col_dots = vec![0i32; l.groups];
    for (i, out_row) in out.iter_mut().enumerate() {
        let r = b.row0 + i;
        let a = b.a_tile(r, MR);
        let sa = &b.scales[r * l.groups..(r + 1) * l.groups];
        let offsets = b.offsets.map(|o| &o[r * l.groups..(r + 1) * l.groups]);
        for p in 0..b.panels {
            let panel = b.panel0 + p;
            let wp = &b.w.data[panel * l.panel_stride()..][..l.panel_stride()];
            for (g, acc) in dots.iter_mut().enumerate() {
                *acc = [0; NR];
                for q in g * quads_per_group..(g + 1) * quads_per_group {
                    let a4 = &a[q * K_QUAD..][..K_QUAD];
                    let wq = &wp[q * NR * K_QUAD..][..NR * K_QUAD];
                    for (c, s) in acc.iter_mut().enumerate() {
                        let w4 = &wq[c * K_QUAD..][..K_QUAD];
                        *s += (0..K_QUAD).map(|j| a4[j] as i8 as i32 * w4[j] as i32).sum::<i32>();
                    }
                }
            }
            let col0 = panel * NR;
            let out_cols = &mut out_row[p * NR..];
            for c in 0..NR.min(l.n - col0) {
                for (d, g) in col_dots.iter_mut().zip(&dots) {
                    *d = g[c];
                }
                let sw = b.w.col_scales[col0 + c];
                let acc = match offsets {
                    None => dequantize(&col_dots, sa, sw),
                    Some(o) => dequantize_centered(&col_dots, sa, o, |g| b.w.col_sums[g * l.n_pad + col0 + c], sw),
                };
                out_cols[c] = b.epilogue.apply(col0 + c, acc, out_cols[c]);
            }
        }
    }
}
