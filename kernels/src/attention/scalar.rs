//! Scalar reference tiles for the attention family: the two products of the parent module's
//! docs written as plain loops (sequential f32 sums, no fused multiply-adds). They are the
//! test oracle for every SIMD path.

// Tile functions take each slice with its stride and extent explicitly, as the f32 GEMM
// tiles do, rather than bundling them.
#![allow(clippy::too_many_arguments)]

pub(super) fn scores(
    q: &[f32],
    q_stride: usize,
    rows: usize,
    keys_t: &[f32],
    k_stride: usize,
    cols: usize,
    head_dim: usize,
    scale: f32,
    scores: &mut [f32],
    s_stride: usize,
) {
    for r in 0..rows {
        let q_row = &q[r * q_stride..][..head_dim];
        let s_row = &mut scores[r * s_stride..][..cols];
        s_row.fill(0.0);
        for (d, &qd) in q_row.iter().enumerate() {
            let k_row = &keys_t[d * k_stride..][..cols];
            for (s, &k) in s_row.iter_mut().zip(k_row) {
                *s += qd * k;
            }
        }
        for s in s_row.iter_mut() {
            *s *= scale;
        }
    }
}

pub(super) fn probs_values(
    p: &[f32],
    p_stride: usize,
    v: &[f32],
    v_stride: usize,
    keys: usize,
    head_dim: usize,
    out: &mut [&mut [f32]],
    col: usize,
) {
    for (r, out_row) in out.iter_mut().enumerate() {
        let o = &mut out_row[col..col + head_dim];
        o.fill(0.0);
        for (j, &pj) in p[r * p_stride..][..keys].iter().enumerate() {
            let v_row = &v[j * v_stride..][..head_dim];
            for (x, &vd) in o.iter_mut().zip(v_row) {
                *x += pj * vd;
            }
        }
    }
}
