//! [`Linear`]: y = x W^T + b on the int8 or f32 matmul of octet-kernels, with the bias,
//! activation and residual add fused into the kernel's epilogue.
//!
//! The weight is int8 or f32 in the kernels' packed panel layouts, used in place from the map,
//! or f16 (the `f16` recipe), which is widened to f32 and packed once, when the layer is bound,
//! into an owned buffer. Such a model computes exactly as an f32 model; the saving is on disk.

use super::stored::Stored;
use crate::error::{Error, Result};
use crate::format::{Dtype, ModelFile};
use octet_kernels::{f32 as kf32, int8, kernels, Activation, Epilogue};
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

/// What [`Linear::forward_to`] hands to the next layer: rows already quantized for it, or
/// (`None`) f32 rows in the caller's buffer.
#[must_use = "pass it to the next layer's forward_from"]
pub struct Handoff(Option<int8::QuantizedRows>);

thread_local! {
    /// The quantized rows between two chained layers, reused across calls on this thread.
    static HANDOFF_ROWS: std::cell::Cell<int8::QuantizedRows> = std::cell::Cell::new(int8::QuantizedRows::default());
}

/// y = x W^T + b for a weight W of shape [n, k].
#[derive(Clone)]
pub struct Linear {
    weight: LinearWeight,
    bias: Option<Stored<f32>>,
    /// Quantize activation rows asymmetrically, as TFLite's hybrid FULLY_CONNECTED does.
    /// Only for int8 weights with one k-group (per-token scales).
    asymmetric_rows: bool,
    /// The weights are a TFLite file's own int8 tensors (recipe `tflite-int8`), replayed as
    /// the interpreter computes them.
    tflite_int8: bool,
    /// Quantize each activation group around the middle of its range
    /// (`octet_kernels::int8::centered`). Only for int8 weights of octet's recipes with
    /// several k-groups.
    centered_rows: bool,
    /// The weight's tensor name and its file's identity, for [`super::observe`].
    name: Arc<str>,
    file_id: usize,
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
            centered_rows: false,
            tflite_int8: file.meta().quantization.is_tflite_int8(),
            name: weight_name.into(),
            file_id: super::observe::file_id(file),
            n,
            k,
        })
    }

    /// Makes an int8 layer quantize each activation row asymmetrically, as TFLite's hybrid
    /// FULLY_CONNECTED does (`asymmetric_quantize_inputs`): scale = (max - min) / 255 over the
    /// row's range widened to include 0, an int8 zero point, then the integer product corrected
    /// by zero point x column sum (the kernel [`int8::asymmetric`]). For layers imported from TFLite, so
    /// that octet computes what the interpreter computes. No effect on f32 or k-grouped layers.
    pub fn with_asymmetric_rows(mut self, on: bool) -> Self {
        self.asymmetric_rows = on && matches!(&self.weight, LinearWeight::I8 { layout, .. } if layout.groups == 1);
        self
    }

    /// Makes an int8 layer quantize each activation group around the middle of its range
    /// instead of around 0 (`octet_kernels::int8::centered`), for inputs that sit off-centre
    /// (a norm's output). No effect on f32 layers, layers with one k-group, a TFLite file's
    /// own int8 layers or asymmetric rows.
    pub fn with_centered_rows(mut self, on: bool) -> Self {
        self.centered_rows = on
            && !self.tflite_int8
            && !self.asymmetric_rows
            && matches!(&self.weight, LinearWeight::I8 { layout, .. } if layout.groups > 1);
        self
    }

    /// Whether attention fed by this projection may round to bf16: its weights are int8 from
    /// one of octet's recipes, whose error is far above bf16's, not a TFLite file's own int8
    /// tensors (replayed as the interpreter runs them, with f32 attention). See
    /// [`crate::layers::attention::AttentionShape::bf16`].
    pub fn allows_bf16_attention(&self) -> bool {
        matches!(self.weight, LinearWeight::I8 { .. }) && !self.tflite_int8 && !self.asymmetric_rows
    }

    /// The first half of two layers in a row (an FFN's up and down projections):
    /// `activation(x[m, k] W^T + b)`, handed to `next` by [`Linear::forward_from`]. Where both
    /// are int8 layers of octet's recipes and `next` takes activations in groups, the outputs are
    /// quantized for `next` by each task of this product while they are in cache
    /// (`octet_kernels::int8::matmul_to_quantized`), with the same bytes as quantizing the f32
    /// rows; otherwise they go to `inner` ([m, n] f32) as [`Linear::forward`] writes them.
    pub fn forward_to(
        &self,
        next: &Linear,
        x: &[f32],
        m: usize,
        activation: Activation,
        inner: &mut [f32],
    ) -> Result<Handoff> {
        let epilogue = self.epilogue(activation, false);
        if let (Some(w), Some(next_w)) = (self.chainable(), next.chainable()) {
            if next_w.layout().groups > 1 && next.k == self.n {
                let mut rows = HANDOFF_ROWS.with(|c| c.take());
                let done = int8::matmul_to_quantized(
                    kernels().int8,
                    x,
                    self.k,
                    m,
                    self.centered_rows,
                    &w,
                    &epilogue,
                    next_w.layout(),
                    next.centered_rows,
                    &mut rows,
                );
                return match done {
                    Ok(()) => Ok(Handoff(Some(rows))),
                    Err(e) => {
                        HANDOFF_ROWS.with(|c| c.set(rows));
                        Err(e.into())
                    }
                };
            }
        }
        self.forward(x, m, inner, activation, false)?;
        Ok(Handoff(None))
    }

    /// The second half of [`Linear::forward_to`]: `out[m, n] (=|+=) activation(y W^T + b)` on
    /// the handed-off rows y (the quantized rows, or `inner`).
    pub fn forward_from(
        &self,
        handoff: Handoff,
        inner: &[f32],
        m: usize,
        out: &mut [f32],
        activation: Activation,
        accumulate: bool,
    ) -> Result<()> {
        let Handoff(Some(rows)) = handoff else {
            return self.forward(inner, m, out, activation, accumulate);
        };
        let epilogue = self.epilogue(activation, accumulate);
        let done = match self.chainable() {
            Some(w) => int8::matmul_quantized(kernels().int8, &rows, &w, &epilogue, out, self.n).map_err(Into::into),
            None => Err(Error::Internal(
                "quantized rows handed to a layer without int8 weights".into(),
            )),
        };
        HANDOFF_ROWS.with(|c| c.set(rows));
        done
    }

    /// The epilogue of this layer's matmul: its bias, then `activation`, then the residual add.
    fn epilogue(&self, activation: Activation, accumulate: bool) -> Epilogue<'_> {
        Epilogue {
            bias: self.bias.as_ref().map(Stored::get),
            activation,
            accumulate,
        }
    }

    /// The packed int8 weights of a layer that takes octet's symmetric activation rows.
    fn chainable(&self) -> Option<int8::PackedI8<'_>> {
        match &self.weight {
            LinearWeight::I8 {
                layout,
                data,
                scales,
                sums,
            } if !self.asymmetric_rows => {
                int8::PackedI8::from_parts(*layout, data.get(), scales.get(), sums.get()).ok()
            }
            _ => None,
        }
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
        super::observe::linear_input(self.file_id, &self.name, &x[..(m * self.k).min(x.len())], self.k);
        let epilogue = self.epilogue(activation, accumulate);
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
                    let quantizer = k.int8_asymmetric;
                    int8::asymmetric::matmul(k.int8, quantizer, k.vector, x, self.k, m, &w, &epilogue, out, self.n)?;
                    return Ok(());
                }
                if self.centered_rows {
                    int8::matmul_centered(k.int8, x, self.k, m, &w, &epilogue, out, self.n)?
                } else {
                    int8::matmul(k.int8, x, self.k, m, &w, &epilogue, out, self.n)?
                }
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
}
