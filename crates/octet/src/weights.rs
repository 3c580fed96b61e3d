//! Typed, validated views of the weights in a [`ModelFile`]: linear layers (int8 or f32
//! packed panels, or plain f16), embedding tables (int8 or 6-bit with scales, f16 or f32) and
//! norm vectors.
//!
//! Each `load` checks the dtype and the exact shape the architecture expects, so a file that
//! does not fit its architecture gets [`Error::Model`] naming the tensor, never a panic later.
//! All views borrow from the memory map: no copy, no repacking, except f16 linear weights (the
//! `f16` recipe), which are widened to f32 and packed once at load into owned buffers. Such a
//! model computes exactly as an f32 model and holds the same resident memory for its linear
//! weights (the f16 pages of the map are read once and can be dropped by the OS); the saving
//! is on disk and in download size.

use crate::error::{Error, Result};
use crate::format::{Dtype, I8Quant, ModelFile, QuantParam};
use octet_kernels::gather::{self, PerRowOrTensor, Table};
use octet_kernels::{f32 as kf32, int8, kernels, vector, Activation, Epilogue};

/// The weights of a linear layer in one of the two packed layouts of octet-kernels.
#[derive(Clone)]
enum LinearWeight<'m> {
    F32(kf32::PackedF32<'m>),
    I8(int8::PackedI8<'m>),
    /// f32 panels packed at load from an f16 `[n, k]` tensor (`n_pad * k` floats).
    F32Owned(kf32::PackedF32Layout, Vec<f32>),
}

/// y = x W^T + b for a weight W of shape [n, k].
#[derive(Clone)]
pub struct Linear<'m> {
    weight: LinearWeight<'m>,
    bias: Option<&'m [f32]>,
    /// For int8 weights: the per-column scales and sums (one k-group), kept for
    /// [`Linear::with_asymmetric_rows`].
    columns: Option<(&'m [f32], &'m [i32])>,
    /// Quantize activation rows asymmetrically, as TFLite's hybrid FULLY_CONNECTED does.
    asymmetric_rows: bool,
    /// Output features.
    pub n: usize,
    /// Input features.
    pub k: usize,
}

impl<'m> Linear<'m> {
    /// Loads `{name}.weight` ([n, k], int8 or f32 packed, or plain f16) and, if `bias`, `{name}.bias` ([n]).
    pub fn load(file: &'m ModelFile, arch: &str, name: &str, n: usize, k: usize, bias: bool) -> Result<Linear<'m>> {
        let bias_name = format!("{name}.bias");
        Linear::load_named(file, arch, &format!("{name}.weight"), bias.then_some(bias_name.as_str()), n, k)
    }

    /// Loads the weight `weight_name` ([n, k]) and the bias `bias_name` ([n]), if any.
    pub fn load_named(file: &'m ModelFile, arch: &str, weight_name: &str, bias_name: Option<&str>, n: usize, k: usize) -> Result<Linear<'m>> {
        let view = file.tensor(weight_name)?;
        let mut columns = None;
        let weight = match view.dtype {
            Dtype::I8Packed => {
                let (_, data, scales, sums) = file.packed_i8_parts(weight_name, n, k)?;
                let layout = int8::PackedI8Layout::new(n, k, view.k_group())?;
                if layout.groups == 1 && scales.len() >= n && sums.len() >= n {
                    columns = Some((scales, sums));
                }
                LinearWeight::I8(int8::PackedI8::from_parts(layout, data, scales, sums)?)
            }
            Dtype::F32Packed => {
                let data = file.packed_f32_parts(weight_name, n, k)?;
                LinearWeight::F32(kf32::PackedF32::from_parts(kf32::PackedF32Layout::new(n, k), data)?)
            }
            Dtype::F16 => {
                let half = file.f16(weight_name, &[n, k])?;
                let wide: Vec<f32> = half.iter().map(|v| v.to_f32()).collect();
                let layout = kf32::PackedF32Layout::new(n, k);
                let mut packed = vec![0f32; layout.len()];
                kf32::pack_nk(&wide, n, k, k, &mut packed)?;
                // Checks the length once here, so forward's from_parts cannot fail.
                kf32::PackedF32::from_parts(layout, &packed)?;
                LinearWeight::F32Owned(layout, packed)
            }
            other => {
                return Err(Error::model(
                    arch,
                    format!("{weight_name} has dtype {other}; a linear weight must be i8_packed, f32_packed or f16"),
                ))
            }
        };
        let bias = match bias_name {
            Some(b) => Some(file.f32(b, &[n])?),
            None => None,
        };
        Ok(Linear { weight, bias, columns, asymmetric_rows: false, n, k })
    }

    /// Makes an int8 layer quantize each activation row asymmetrically, as TFLite's hybrid
    /// FULLY_CONNECTED does (`asymmetric_quantize_inputs`): scale = (max - min) / 255 over the
    /// row's range widened to include 0, an int8 zero point, then the integer product corrected
    /// by zero point x column sum (see [`asymmetric_row`]). For layers imported from TFLite, so
    /// that octet computes what the interpreter computes. No effect on f32 or k-grouped layers.
    pub fn with_asymmetric_rows(mut self, on: bool) -> Self {
        self.asymmetric_rows = on && self.columns.is_some();
        self
    }

    /// `out[m, n] (=|+=) activation(x[m, k] W^T + b)`; `accumulate` adds into `out` (a fused
    /// residual add). Uses rayon's current pool.
    pub fn forward(&self, x: &[f32], m: usize, out: &mut [f32], activation: Activation, accumulate: bool) -> Result<()> {
        let epilogue = Epilogue { bias: self.bias, activation, accumulate };
        let k = kernels();
        if let (true, LinearWeight::I8(w), Some(columns)) = (self.asymmetric_rows, &self.weight, self.columns) {
            return self.forward_asymmetric(w, columns, x, m, out, &epilogue);
        }
        match &self.weight {
            LinearWeight::I8(w) => int8::matmul(k.int8, x, self.k, m, w, &epilogue, out, self.n)?,
            LinearWeight::F32(w) => kf32::matmul(k.f32, x, self.k, m, w, &epilogue, out, self.n)?,
            LinearWeight::F32Owned(layout, data) => {
                let w = kf32::PackedF32::from_parts(*layout, data)?;
                kf32::matmul(k.f32, x, self.k, m, &w, &epilogue, out, self.n)?
            }
        }
        Ok(())
    }
}

impl Linear<'_> {
    /// [`Linear::forward`] with asymmetric activation rows: the integer products come from the
    /// int8 kernel on the rows' codes, then each output gets
    /// `scale_row x scale_col x (sum - zero_point_row x colsum_col)` and the epilogue.
    fn forward_asymmetric(&self, w: &int8::PackedI8, (col_scales, col_sums): (&[f32], &[i32]), x: &[f32], m: usize, out: &mut [f32], epilogue: &Epilogue) -> Result<()> {
        let (n, k) = (self.n, self.k);
        if m == 0 {
            return Ok(());
        }
        if x.len() < m * k || out.len() < m * n {
            return Err(Error::Option(format!("linear: {} inputs and {} outputs for {m} rows of {k} -> {n}", x.len(), out.len())));
        }
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
        let rows = int8::QuantizedRows::from_parts(&layout, m, codes, vec![1f32; m])?;
        let mut sums = vec![0f32; m * n];
        int8::matmul_quantized(kernels().int8, &rows, w, &Epilogue::NONE, &mut sums, n)?;
        if any_low {
            let rows = int8::QuantizedRows::from_parts(&layout, m, low, vec![1f32; m])?;
            let accumulate = Epilogue { bias: None, activation: octet_kernels::Activation::None, accumulate: true };
            int8::matmul_quantized(kernels().int8, &rows, w, &accumulate, &mut sums, n)?;
        }
        // sums = products x scale_col; the zero-point term is z x colsum x scale_col.
        let zero_terms: Vec<f32> = (0..n).map(|c| col_sums[c] as f32 * col_scales[c]).collect();
        let bias = epilogue.bias;
        for r in 0..m {
            let (z, s) = (zero_points[r] as f32, scales[r]);
            let row = &mut sums[r * n..(r + 1) * n];
            for (c, v) in row.iter_mut().enumerate() {
                *v = s * (*v - z * zero_terms[c]) + bias.map_or(0.0, |b| b[c]);
            }
        }
        match (epilogue.activation, epilogue.accumulate) {
            (octet_kernels::Activation::None, true) => {
                for (o, v) in out[..m * n].iter_mut().zip(&sums) {
                    *o += v;
                }
            }
            (octet_kernels::Activation::None, false) => out[..m * n].copy_from_slice(&sums),
            // The vectorized GELU, as the fused epilogues use.
            (octet_kernels::Activation::Gelu(form), false) => {
                out[..m * n].copy_from_slice(&sums);
                vector::gelu(kernels().vector, form, &mut out[..m * n]);
            }
            (activation, accumulate) => {
                let rest = Epilogue { bias: None, activation, accumulate };
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
/// the end with the smaller error, nudged into [-128, 127] and rounded, then
/// q = clamp(round(zero_point + x / scale), -128, 127) with ties away from zero. Computed in
/// f64 where TFLite does. Returns (scale, zero_point); a constant-zero row gets (0, 0).
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
    let zero = if qmin.abs() + (lo / scale).abs() < qmax.abs() + (hi / scale).abs() { from_min } else { from_max };
    let zero_point = if zero <= qmin {
        -128
    } else if zero >= qmax {
        127
    } else {
        zero.round() as i32
    };
    let scale = scale as f32;
    let inv = 1.0f32 / scale;
    for (d, &v) in q.iter_mut().zip(x) {
        // Ties away from zero, as std::round: exact in f64 (an f32 plus 0.5 needs no rounding),
        // and a plain truncating conversion instead of a libm call per element.
        let t = (zero_point as f32 + v * inv) as f64;
        let r = if t >= 0.0 { (t + 0.5) as i64 } else { (t - 0.5) as i64 };
        *d = r.clamp(-128, 127) as i8;
    }
    (scale, zero_point)
}

/// A token-embedding (or position / type) table of shape [rows, dim].
pub struct Embedding<'m> {
    table: Table<'m>,
    /// Rows in the table.
    pub rows: usize,
    /// Width of each row.
    pub dim: usize,
    /// Stored rows per logical row: a table may be stored as [rows x blocks, dim / blocks], so
    /// that a quantized table gets one scale and zero point per block of a row instead of one
    /// per row (the converter does this for EmbeddingGemma, whose rows have outliers).
    blocks: usize,
}

impl<'m> Embedding<'m> {
    /// Loads `name` as an f32, f16, int8 or u6 (both with scale and zero point) table of
    /// [rows, dim].
    /// The table may also be stored as [rows x b, dim / b] for a whole number of blocks b.
    pub fn load(file: &'m ModelFile, arch: &str, name: &str, logical_rows: usize, logical_dim: usize) -> Result<Embedding<'m>> {
        let view = file.tensor(name)?;
        let blocks = match view.shape[..] {
            [r, d] if logical_rows > 0 && r > logical_rows && r % logical_rows == 0 && d * (r / logical_rows) == logical_dim => r / logical_rows,
            _ => 1,
        };
        let (rows, dim) = (logical_rows * blocks, logical_dim / blocks);
        let table = match view.dtype {
            Dtype::F32 => Table::F32(file.f32(name, &[rows, dim])?),
            Dtype::F16 => Table::F16(file.f16(name, &[rows, dim])?),
            Dtype::I8 => {
                let tensor = file.i8(name, &[rows, dim])?;
                let quant = tensor.quant.ok_or_else(|| Error::model(arch, format!("int8 table {name} has no scale and zero point")))?;
                let (scale, zero_point) = per_row_params(arch, name, "int8", quant)?;
                Table::I8 { data: tensor.data, scale, zero_point }
            }
            Dtype::U6 => {
                let tensor = file.u6(name, rows, dim)?;
                let (scale, zero_point) = per_row_params(arch, name, "u6", tensor.quant)?;
                Table::U6 { data: tensor.data, scale, zero_point }
            }
            other => return Err(Error::model(arch, format!("{name} has dtype {other}; an embedding table must be f32, f16, i8 or u6"))),
        };
        Ok(Embedding { table, rows: logical_rows, dim: logical_dim, blocks })
    }

    /// Writes `multiplier x row(ids[i])` into row i of `out` (`add`: adds instead).
    pub fn gather(&self, ids: &[u32], multiplier: f32, out: &mut [f32], add: bool) -> Result<()> {
        let k = kernels().gather;
        let b = self.blocks;
        // Block j of row id is stored row id x b + j; the stored rows of one id are adjacent,
        // so gathering them in order writes the logical row. Ids past the table stay past it.
        let expanded: Vec<u32>;
        let ids = if b == 1 {
            ids
        } else {
            let b32 = b as u32;
            expanded = ids.iter().flat_map(|&id| (0..b32).map(move |j| id.saturating_mul(b32).saturating_add(j))).collect();
            &expanded
        };
        let (rows, dim) = (self.rows * b, self.dim / b);
        if add {
            gather::gather_add(k, &self.table, rows, dim, ids, multiplier, out)?;
        } else {
            gather::gather(k, &self.table, rows, dim, ids, multiplier, out)?;
        }
        Ok(())
    }
}

/// The gather's scale and zero point of a quantized table: per tensor, or per row (axis 0).
fn per_row_params<'m>(arch: &str, name: &str, kind: &str, quant: I8Quant<'m>) -> Result<(PerRowOrTensor<'m, f32>, PerRowOrTensor<'m, i32>)> {
    if (matches!(quant.scale, QuantParam::PerChannel(_)) || matches!(quant.zero_point, QuantParam::PerChannel(_))) && quant.axis != Some(0) {
        return Err(Error::model(arch, format!("{kind} table {name} must be quantized per row (axis 0) or per tensor")));
    }
    let scale = match quant.scale {
        QuantParam::PerTensor(s) => PerRowOrTensor::Tensor(s),
        QuantParam::PerChannel(s) => PerRowOrTensor::Row(s),
    };
    let zero_point = match quant.zero_point {
        QuantParam::PerTensor(z) => PerRowOrTensor::Tensor(z),
        QuantParam::PerChannel(z) => PerRowOrTensor::Row(z),
    };
    Ok((scale, zero_point))
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
        assert_eq!(q, [-1, 127, -128, -96]); // 1.0 -> -128 + 127.5 = -0.5, away from zero
        // A zero row.
        assert_eq!(asymmetric_row(&[0.0; 4], &mut q), (0.0, 0));
        assert_eq!(q, [0; 4]);
    }
}
