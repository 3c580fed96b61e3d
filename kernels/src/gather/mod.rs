//! Placeholder: the gather kernel family (being written).

use crate::Isa;

/// The gather implementation for one instruction-set level.
pub struct GatherKernel {
    /// Kernel name, with its geometry, e.g. `x86_64-...-avx512`.
    pub name: &'static str,
}

static SCALAR: GatherKernel = GatherKernel { name: "gather-scalar" };

/// The best gather implementation at or below `isa`.
pub fn for_isa(_isa: Isa) -> &'static GatherKernel {
    &SCALAR
}
