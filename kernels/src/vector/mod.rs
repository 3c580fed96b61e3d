//! Placeholder: the vector kernel family (being written).

use crate::Isa;

/// The vector implementation for one instruction-set level.
pub struct VectorKernel {
    /// Kernel name, with its geometry, e.g. `x86_64-...-avx512`.
    pub name: &'static str,
}

static SCALAR: VectorKernel = VectorKernel { name: "vector-scalar" };

/// The best vector implementation at or below `isa`.
pub fn for_isa(_isa: Isa) -> &'static VectorKernel {
    &SCALAR
}
