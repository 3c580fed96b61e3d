//! t5 checkpoints to octet's tensor names. Not implemented yet.

use super::source::SourceFolder;
use super::Planned;
use anyhow::{bail, Result};

/// Plans every tensor of the encoder.
pub fn plan(_src: &SourceFolder, _window: usize) -> Result<Vec<Planned>> {
    bail!("converting t5 checkpoints is not implemented yet")
}
