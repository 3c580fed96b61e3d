//! The fused epilogue shared by the int8 and f32 matrix multiplies.
//!
//! A matrix-multiply kernel produces, for output element (row r, column c), a value `acc`
//! (for int8: the exact i32 sum times row scale times column scale; for f32: the dot product).
//! While the tile is still in registers it then computes
//!
//! ```text
//! y = activation(acc + bias[c])        // bias optional, activation optional
//! out[r, c] = y            (accumulate == false)
//! out[r, c] = out[r, c] + y (accumulate == true: residual add into the output)
//! ```
//!
//! [`Epilogue::apply`] is the scalar definition every SIMD epilogue must match.

use crate::activation::{self, GeluForm};

/// The nonlinearity applied in the epilogue.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Activation {
    /// Identity.
    #[default]
    None,
    /// GELU in the given form.
    Gelu(GeluForm),
    /// max(x, 0), as in the original T5 FFN.
    Relu,
}

impl Activation {
    /// Scalar definition of the activation.
    #[inline]
    pub fn apply(self, x: f32) -> f32 {
        match self {
            Activation::None => x,
            Activation::Gelu(form) => activation::gelu(form, x),
            Activation::Relu => x.max(0.0),
        }
    }
}

/// What happens to each output element after the dot product; see the module docs.
#[derive(Clone, Copy, Debug, Default)]
pub struct Epilogue<'a> {
    /// One bias per output column, or none.
    pub bias: Option<&'a [f32]>,
    /// The activation applied after the bias.
    pub activation: Activation,
    /// Add into the existing output (a fused residual add) instead of overwriting it.
    pub accumulate: bool,
}

impl<'a> Epilogue<'a> {
    /// Plain store, no bias, no activation.
    pub const NONE: Epilogue<'static> = Epilogue {
        bias: None,
        activation: Activation::None,
        accumulate: false,
    };

    /// Scalar definition: the final value stored at column `col`, given the raw value and the
    /// value already in the output.
    #[inline]
    pub fn apply(&self, col: usize, acc: f32, previous: f32) -> f32 {
        let with_bias = match self.bias {
            Some(b) => acc + b[col],
            None => acc,
        };
        let y = self.activation.apply(with_bias);
        if self.accumulate {
            previous + y
        } else {
            y
        }
    }

    /// Checks that the bias, if any, covers `n` columns.
    pub fn check(&self, n: usize) -> Result<(), crate::KernelError> {
        match self.bias {
            Some(b) => crate::check_len("bias", b.len(), n),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalar_definition() {
        let bias = [1.0, -2.0];
        let e = Epilogue {
            bias: Some(&bias),
            activation: Activation::Relu,
            accumulate: true,
        };
        assert_eq!(e.apply(0, 1.0, 10.0), 12.0);
        assert_eq!(e.apply(1, 1.0, 10.0), 10.0);
        assert_eq!(Epilogue::NONE.apply(0, 3.0, 99.0), 3.0);
        assert!(e.check(2).is_ok() && e.check(3).is_err());
    }
}
