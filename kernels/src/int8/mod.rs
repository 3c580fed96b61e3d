//! Placeholder: the int8 kernel family (being written).

use crate::Isa;

/// The int8 implementation for one instruction-set level.
pub struct Int8Kernel {
    /// Kernel name, with its geometry, e.g. `x86_64-...-avx512`.
    pub name: &'static str,
}

static SCALAR: Int8Kernel = Int8Kernel { name: "int8-scalar" };

/// The best int8 implementation at or below `isa`.
pub fn for_isa(_isa: Isa) -> &'static Int8Kernel {
    &SCALAR
}
