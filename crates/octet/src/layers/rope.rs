//! Rotary position embeddings (RoPE, Su et al. 2021, <https://arxiv.org/abs/2104.09864>) in the
//! "rotate half" form that Hugging Face's Llama and Gemma code uses: the head vector's first
//! half holds the x coordinates and its second half the y coordinates of `head_dim / 2` planes,
//! and plane i at position p turns by the angle p x theta^(-2i / head_dim).
//!
//! The angles are computed as the reference computes them, so long positions agree: the
//! inverse frequencies are rounded to f32, the angle is the f32 product `position x inv_freq`,
//! and its cosine and sine are rounded to f32 from an exact evaluation.

/// Cosines and sines for positions `0..positions` of one `theta` and `head_dim`.
pub struct RopeTable {
    half: usize,
    positions: usize,
    cos: Vec<f32>,
    sin: Vec<f32>,
}

impl RopeTable {
    /// Builds the table for `positions` positions. `head_dim` must be even.
    pub fn new(theta: f32, head_dim: usize, positions: usize) -> RopeTable {
        let half = head_dim / 2;
        let inv_freq: Vec<f32> = (0..half)
            .map(|i| {
                let exponent = (2 * i) as f32 / head_dim as f32;
                1.0 / ((theta as f64).powf(exponent as f64) as f32)
            })
            .collect();
        let mut cos = Vec::with_capacity(positions * half);
        let mut sin = Vec::with_capacity(positions * half);
        for p in 0..positions {
            for &f in &inv_freq {
                let angle = (p as f32 * f) as f64;
                cos.push(angle.cos() as f32);
                sin.push(angle.sin() as f32);
            }
        }
        RopeTable {
            half,
            positions,
            cos,
            sin,
        }
    }

    /// How many positions the table covers.
    pub fn positions(&self) -> usize {
        self.positions
    }

    /// Rotates one head vector (`2 x half` values) to `position`, which must be below
    /// [`RopeTable::positions`].
    pub fn rotate(&self, head: &mut [f32], position: usize) {
        let h = self.half;
        debug_assert_eq!(head.len(), 2 * h);
        let (cos, sin) = (
            &self.cos[position * h..(position + 1) * h],
            &self.sin[position * h..(position + 1) * h],
        );
        let (x, y) = head.split_at_mut(h);
        for i in 0..h {
            let (a, b) = (x[i], y[i]);
            x[i] = a * cos[i] - b * sin[i];
            y[i] = b * cos[i] + a * sin[i];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_keeps_the_norm_and_position_zero_is_identity() {
        let table = RopeTable::new(10_000.0, 8, 40);
        let v: Vec<f32> = (0..8).map(|i| i as f32 - 3.5).collect();
        let mut at0 = v.clone();
        table.rotate(&mut at0, 0);
        assert_eq!(at0, v);
        let mut at37 = v.clone();
        table.rotate(&mut at37, 37);
        let norm = |x: &[f32]| x.iter().map(|a| a * a).sum::<f32>().sqrt();
        // A rotation in f32: the norm is kept to a few ulps.
        assert!((norm(&at37) - norm(&v)).abs() < 1e-5);
    }

    #[test]
    fn matches_the_direct_formula() {
        let (theta, dim, p) = (1_000_000.0f32, 16, 1234);
        let table = RopeTable::new(theta, dim, p + 1);
        let v: Vec<f32> = (0..dim).map(|i| ((i * 37 % 11) as f32 - 5.0) / 3.0).collect();
        let mut got = v.clone();
        table.rotate(&mut got, p);
        for i in 0..dim / 2 {
            let angle = p as f64 / (theta as f64).powf(2.0 * i as f64 / dim as f64);
            let (x, y) = (v[i] as f64, v[i + dim / 2] as f64);
            // f32 angles at position 1234: the product p x inv_freq is rounded to f32, an error of
            // up to ~1e-4 rad, which the reference (PyTorch, f32) shares.
            assert!((got[i] as f64 - (x * angle.cos() - y * angle.sin())).abs() < 1e-3);
            assert!((got[i + dim / 2] as f64 - (y * angle.cos() + x * angle.sin())).abs() < 1e-3);
        }
    }
}
