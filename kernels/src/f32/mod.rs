//! Placeholder: the f32 kernel family (being written).

use crate::Isa;

/// The f32 implementation for one instruction-set level.
pub struct F32Kernel {
    /// Kernel name, with its geometry, e.g. `x86_64-...-avx512`.
    pub name: &'static str,
}

static SCALAR: F32Kernel = F32Kernel { name: "f32-scalar" };

/// The best f32 implementation at or below `isa`.
pub fn for_isa(_isa: Isa) -> &'static F32Kernel {
    &SCALAR
}
