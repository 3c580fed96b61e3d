//! Shared helpers for the criterion benchmarks in this folder (`kernels.rs`, `end_to_end.rs`).
//!
//! - [`peak`]: the single-instruction throughput peaks (`vpdpbusd`, `vfmadd231ps` on zmm),
//!   measured in the same run so that kernel figures can be given as a share of them.
//! - [`samples`]: criterion's samples collected through `iter_custom`, reduced to a median.
//! - [`table`]: markdown tables for the end-of-run summaries.
//! - [`host`]: the CPU model and the SIMD flags that matter here, from `/proc/cpuinfo`.
//! - [`prose`]: real English text cut to an exact token count.
#![deny(unsafe_op_in_unsafe_fn)]

pub mod host;
pub mod peak;
pub mod prose;
pub mod samples;
pub mod table;

/// The repository root (this crate lives in `benches/`).
pub fn repo_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("benches/ has a parent")
        .to_path_buf()
}
