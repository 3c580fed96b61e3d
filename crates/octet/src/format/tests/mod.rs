//! Tests of the `.octet` format: round trips of every dtype, files on disk, a battery of corrupt
//! files that must each give the right error, and proptests that mutated files never panic.

mod corrupt;
mod fuzz;
mod roundtrip;
mod untrusted;
pub(crate) mod util;
