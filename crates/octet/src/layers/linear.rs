//! [`Linear`]: y = x W^T + b on the int8 or f32 matmul of octet-kernels, with the bias,
//! activation and residual add fused into the kernel's epilogue.
//!
//! The weight is int8 or f32 in the kernels' packed panel layouts, used in place from the map,
//! or f16 (the `f16` recipe), which is widened to f32 and packed once, when the layer is bound,
//! into an owned buffer. Such a model computes exactly as an f32 model; the saving is on disk.

use super::stored::Stored;
use crate::error::{Error, Result};
use crate::format::{Dtype, ModelFile};
use octet_kernels::{f32 as kf32, int8, kernels, vector, Activation, Epilogue};
use std::sync::Arc;

/// The weights of a linear layer in one of the two packed layouts of octet-kernels.
#[derive(Clone)]
enum LinearWeight {
    F32 {
        layout: kf32::PackedF32Layout,
        data: Stored<f32>,
    },
    I8 {
        layout: int8::PackedI8Layout,
        data: Stored<i8>,
        scales: Stored<f32>,
        sums: Stored<i32>,
    },
    /// f32 panels packed at bind time from an f16 `[n, k]` tensor.
    F32Owned {
        layout: kf32::PackedF32Layout,
        data: Vec<f32>,
    },
}

/// y = x W^T + b for a weight W of shape [n, k].
#[derive(Clone)]
pub struct Linear {
    weight: LinearWeight,
    bias: Option<Stored<f32>>,
    /// Quantize activation rows asymmetrically, as TFLite's hybrid FULLY_CONNECTED does.
    /// Only for int8 weights with one k-group (per-token scales).
    asymmetric_rows: bool,
    /// Output features.
    pub n: usize,
    /// Input features.
    pub k: usize,
}

impl Linear {
    /// Binds `{name}.weight` ([n, k], int8 or f32 packed, or plain f16) and, if `bias`, `{name}.bias` ([n]).
    pub fn load(file: &Arc<ModelFile>, arch: &str, name: &str, n: usize, k: usize, bias: bool) -> Result<Linear> {
        let bias_name = format!("{name}.bias");
        Linear::load_named(
            file,
            arch,
            &format!("{name}.weight"),
            bias.then_some(bias_name.as_str()),
            n,
            k,
        )
    }

    /// Binds the weight `weight_name` ([n, k]) and the bias `bias_name` ([n]), if any.
    pub fn load_named(
        file: &Arc<ModelFile>,
        arch: &str,
        weight_name: &str,
        bias_name: Option<&str>,
        n: usize,
        k: usize,
    ) -> Result<Linear> {
        let view = file.tensor(weight_name)?;
        let weight = match view.dtype {
            Dtype::I8Packed => {
                let (_, data, scales, sums) = file.packed_i8_parts(weight_name, n, k)?;
                let layout = int8::PackedI8Layout::new(n, k, view.k_group())?;
                // Checks the lengths once here, so forward's from_parts cannot fail.
                int8::PackedI8::from_parts(layout, data, scales, sums)?;
                LinearWeight::I8 {
                    layout,
                    data: Stored::of(file, data)?,
                    scales: Stored::of(file, scales)?,
                    sums: Stored::of(file, sums)?,
                }
            }
            Dtype::F32Packed => {
                let data = file.packed_f32_parts(weight_name, n, k)?;
                let layout = kf32::PackedF32Layout::new(n, k);
                kf32::PackedF32::from_parts(layout, data)?;
                LinearWeight::F32 {
                    layout,
                    data: Stored::of(file, data)?,
                }
            }
            Dtype::F16 => {
                let half = file.f16(weight_name, &[n, k])?;
                let wide: Vec<f32> = half.iter().map(|v| v.to_f32()).collect();
                let layout = kf32::PackedF32Layout::new(n, k);
                let mut packed = vec![0f32; layout.len()];
                kf32::pack_nk(&wide, n, k, k, &mut packed)?;
                kf32::PackedF32::from_parts(layout, &packed)?;
                LinearWeight::F32Owned { layout, data: packed }
            }
            other => {
                return Err(Error::model(
                    arch,
                    format!("{weight_name} has dtype {other}; a linear weight must be i8_packed, f32_packed or f16"),
                ))
            }
        };
        let bias = match bias_name {
            Some(b) => Some(Stored::of(file, file.f32(b, &[n])?)?),
            None => None,
        };
        Ok(Linear {
            weight,
            bias,
            asymmetric_rows: false,
            n,
            k,
        })
    }

    /// Makes an int8 layer quantize each activation row asymmetrically, as TFLite's hybrid
    /// FULLY_CONNECTED does (`asymmetric_quantize_inputs`): scale = (max - min) / 255 over the
    /// row's range widened to include 0, an int8 zero point, then the integer product corrected
    /// by zero point x column sum (see [`asymmetric_row`]). For layers imported from TFLite, so
    /// that octet computes what the interpreter computes. No effect on f32 or k-grouped layers.
    pub fn with_asymmetric_rows(mut self, on: bool) -> Self {
        self.asymmetric_rows = on && matches!(&self.weight, LinearWeight::I8 { layout, .. } if layout.groups == 1);
        self
    }

    /// `out[m, n] (=|+=) activation(x[m, k] W^T + b)`; `accumulate` adds into `out` (a fused
    /// residual add). Uses rayon's current pool.
    pub fn forward(
        &self,
        x: &[f32],
        m: usize,
        out: &mut [f32],
        activation: Activation,
        accumulate: bool,
    ) -> Result<()> {
        let epilogue = Epilogue {
            bias: self.bias.as_ref().map(Stored::get),
            activation,
            accumulate,
        };
        let k = kernels();
        match &self.weight {
            LinearWeight::I8 {
                layout,
                data,
                scales,
                sums,
            } => {
                let w = int8::PackedI8::from_parts(*layout, data.get(), scales.get(), sums.get())?;
                if self.asymmetric_rows {
                    return self.forward_asymmetric(&w, x, m, out, &epilogue);
                }
                int8::matmul(k.int8, x, self.k, m, &w, &epilogue, out, self.n)?
            }
            LinearWeight::F32 { layout, data } => {
                let w = kf32::PackedF32::from_parts(*layout, data.get())?;
                kf32::matmul(k.f32, x, self.k, m, &w, &epilogue, out, self.n)?
            }
            LinearWeight::F32Owned { layout, data } => {
                let w = kf32::PackedF32::from_parts(*layout, data)?;
                kf32::matmul(k.f32, x, self.k, m, &w, &epilogue, out, self.n)?
            }
        }
        Ok(())
    }

    /// [`Linear::forward`] with asymmetric activation rows: the integer products come from the
    /// int8 kernel on the rows' codes, then each output gets
    /// `scale_row x scale_col x (sum - zero_point_row x colsum_col)` and the epilogue.
    fn forward_asymmetric(
        &self,
        w: &int8::PackedI8,
        x: &[f32],
        m: usize,
        out: &mut [f32],
        epilogue: &Epilogue,
    ) -> Result<()> {
        let (n, k) = (self.n, self.k);
        if m == 0 {
            return Ok(());
        }
        if x.len() < m * k || out.len() < m * n {
            return Err(Error::Internal(format!(
                "linear: {} inputs and {} outputs for {m} rows of {k} -> {n}",
                x.len(),
                out.len()
            )));
        }
        let (col_scales, col_sums) = (w.col_scales(), w.col_sums());
        let layout = int8::PackedI8Layout::new(n, k, None)?;
        let mut codes = vec![0i8; m * layout.k_pad];
        let mut scales = vec![0f32; m];
        let mut zero_points = vec![0i32; m];
        // Rows are independent: quantize them on rayon's current pool, as the kernels run.
        {
            use rayon::prelude::*;
            codes
                .par_chunks_mut(layout.k_pad)
                .zip(x[..m * k].par_chunks(k))
                .zip(scales.par_iter_mut().zip(zero_points.par_iter_mut()))
                .for_each(|((q, row), (s, z))| (*s, *z) = asymmetric_row(row, &mut q[..k]));
        }
        // The kernels take codes in [-127, 127] (-128 breaks their exactness tricks), and the
        // low end of a row's range is -128 (often many codes: GELU outputs crowd there). So
        // q = clamp(q, -127, 127) + e with e in {-1, 0}, and the two products add up exactly;
        // the second runs only when some code is -128 (it doubles the layer's int8 work).
        let low: Vec<i8> = codes.iter().map(|&c| if c == i8::MIN { -1 } else { 0 }).collect();
        let any_low = low.contains(&-1);
        for c in codes.iter_mut() {
            *c = (*c).max(-127);
        }
        // Unit column scales make the kernel return each integer product as f32, exact below
        // 2^24 in magnitude (k x 128 x 127 reaches that only for k > 1032 with every product at
        // its extreme; real rows stay orders of magnitude below).
        let unit_scales = vec![1f32; layout.scales_len()];
        let w = int8::PackedI8::from_parts(*w.layout(), w.data(), &unit_scales, col_sums)?;
        let rows = int8::QuantizedRows::from_parts(&layout, m, codes, vec![1f32; m])?;
        let mut sums = vec![0f32; m * n];
        int8::matmul_quantized(kernels().int8, &rows, &w, &Epilogue::NONE, &mut sums, n)?;
        if any_low {
            let rows = int8::QuantizedRows::from_parts(&layout, m, low, vec![1f32; m])?;
            let accumulate = Epilogue {
                bias: None,
                activation: Activation::None,
                accumulate: true,
            };
            int8::matmul_quantized(kernels().int8, &rows, &w, &accumulate, &mut sums, n)?;
        }
        // TFLite's order of float operations: the integer product less zero point x column sum
        // (in integers), to float, times (row scale x column scale), plus the bias.
        let bias = epilogue.bias;
        for r in 0..m {
            let (z, s) = (zero_points[r], scales[r]);
            let row = &mut sums[r * n..(r + 1) * n];
            for (c, v) in row.iter_mut().enumerate() {
                let product = *v as i64 - i64::from(z) * i64::from(col_sums[c]);
                let scaled = product as f32 * (s * col_scales[c]);
                *v = bias.map_or(scaled, |b| b[c] + scaled);
            }
        }
        match (epilogue.activation, epilogue.accumulate) {
            (Activation::None, true) => {
                for (o, v) in out[..m * n].iter_mut().zip(&sums) {
                    *o += v;
                }
            }
            (Activation::None, false) => out[..m * n].copy_from_slice(&sums),
            // The vectorized GELU, as the fused epilogues use.
            (Activation::Gelu(form), false) => {
                out[..m * n].copy_from_slice(&sums);
                vector::gelu(kernels().vector, form, &mut out[..m * n]);
            }
            (activation, accumulate) => {
                let rest = Epilogue {
                    bias: None,
                    activation,
                    accumulate,
                };
                for (i, v) in sums.iter().enumerate() {
                    out[i] = rest.apply(i % n, *v, out[i]);
                }
            }
        }
        Ok(())
    }
}

/// Quantizes one activation row as TFLite's `AsymmetricQuantizeFloats` (the hybrid kernels'
/// reference): range = [min(0, min x), max(0, max x)], scale = range / 255, the zero point from
/// the end with the smaller error (in f64), nudged into [-128, 127] and rounded, then
/// q = clamp(zero_point + round(x / scale), -128, 127) with ties away from zero, x / scale
/// being x times the f32 reciprocal of the f32 scale. Returns (scale, zero_point); a
/// constant-zero row gets (0, 0).
pub fn asymmetric_row(x: &[f32], q: &mut [i8]) -> (f32, i32) {
    debug_assert_eq!(x.len(), q.len());
    let lo = x.iter().fold(0f32, |m, &v| m.min(v)) as f64;
    let hi = x.iter().fold(0f32, |m, &v| m.max(v)) as f64;
    if lo == hi || !(lo.is_finite() && hi.is_finite()) {
        q.fill(0);
        return (0.0, 0);
    }
    let (qmin, qmax) = (-128f64, 127f64);
    let scale = (hi - lo) / (qmax - qmin);
    let from_min = qmin - lo / scale;
    let from_max = qmax - hi / scale;
    let zero = if qmin.abs() + (lo / scale).abs() < qmax.abs() + (hi / scale).abs() {
        from_min
    } else {
        from_max
    };
    let zero_point = if zero <= qmin {
        -128
    } else if zero >= qmax {
        127
    } else {
        zero.round() as i32
    };
    // The scale is computed in f32 from the f32 range (the zero point above in f64), and each
    // code is the rounded x / scale plus the zero point: rounding before the zero point is
    // added, ties away from zero, as the interpreter does (measured on its tensors; rounding
    // zero_point + x / scale instead differs on exact halves).
    let scale = (x.iter().fold(0f32, |m, &v| m.max(v)) - x.iter().fold(0f32, |m, &v| m.min(v))) / 255.0;
    let inv = 1.0f32 / scale;
    for (d, &v) in q.iter_mut().zip(x) {
        // Ties away from zero, as std::round: exact in f64 (an f32 plus 0.5 needs no rounding),
        // and a plain truncating conversion instead of a libm call per element.
        let t = (v * inv) as f64;
        let r = if t >= 0.0 { (t + 0.5) as i64 } else { (t - 0.5) as i64 };
        *d = (r + i64::from(zero_point)).clamp(-128, 127) as i8;
    }
    (scale, zero_point)
}

#[cfg(test)]
mod asymmetric_tests {
    use super::asymmetric_row;

    #[test]
    fn asymmetric_rows_follow_tflite() {
        // range [-1, 3]: scale 4/255, zero point round(-128 + 63.75) = -64 (the min end has the
        // smaller error), codes round(-64 + x * 63.75) with ties away from zero.
        let mut q = [0i8; 4];
        let (s, z) = asymmetric_row(&[-1.0, 0.0, 3.0, 0.5], &mut q);
        assert_eq!((s, z), (4.0f32 / 255.0, -64));
        assert_eq!(q, [-128, -64, 127, -32]);
        // All positive: the range is widened to 0, which maps to -128 exactly.
        let (s, z) = asymmetric_row(&[1.0, 2.0, 0.0, 0.25], &mut q);
        assert_eq!((s, z), (2.0f32 / 255.0, -128));
        assert_eq!(q, [-1, 127, -128, -96]); // 1.0 / (2 / 255) is 127.49999 in f32
                                             // The zero point is added after rounding: range 255/128 gives scale 2^-7 and zero point
                                             // -1, and 2^-8 -> round(0.5) - 1 = 0 (rounding -1 + 0.5 would give -1).
        let (s, z) = asymmetric_row(&[-127.0 / 128.0, 1.0, 1.0 / 256.0, 0.0], &mut q);
        assert_eq!((s, z), (1.0 / 128.0, -1));
        assert_eq!(q, [-128, 127, 0, -1]);
        // A zero row.
        assert_eq!(asymmetric_row(&[0.0; 4], &mut q), (0.0, 0));
        assert_eq!(q, [0; 4]);
    }
}
