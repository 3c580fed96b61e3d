//! Quantization recipes: which precision each kind of tensor is stored in.
//!
//! | recipe | linear weights | embedding tables | everything else |
//! |---|---|---|---|
//! | `f32` | f32 packed | f32 | f32 |
//! | `int8-embeddings` | f32 packed | int8, per-row scale and zero point | f32 |
//! | `int8` | int8 per output channel, packed | int8 per row | f32 |
//!
//! `--keep PATTERN` (repeatable, `*` matches any run of characters) keeps matching tensors in
//! f32 under any recipe, e.g. `--keep 'layers.0.*' --keep 'dense.*'`.

use anyhow::{bail, Result};

/// The storage precision chosen for a tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precision {
    F32,
    I8,
}

/// A named recipe plus exceptions.
#[derive(Clone, Debug)]
pub struct Recipe {
    /// The recipe name as given (`f32`, `int8-embeddings`, `int8`).
    pub name: String,
    /// Precision of linear-layer weights.
    pub linear: Precision,
    /// Precision of token-embedding tables.
    pub table: Precision,
    /// Tensor-name patterns kept in f32.
    pub keep: Vec<String>,
    /// Activation-scale group along k for int8 linear layers (None: one scale per token).
    pub k_group: Option<usize>,
}

/// The recipe names `--quant` accepts.
pub const RECIPES: [&str; 3] = ["f32", "int8-embeddings", "int8"];

impl Recipe {
    /// Parses a recipe name.
    pub fn parse(name: &str, keep: Vec<String>, k_group: Option<usize>) -> Result<Recipe> {
        let (linear, table) = match name {
            "f32" => (Precision::F32, Precision::F32),
            "int8-embeddings" => (Precision::F32, Precision::I8),
            "int8" => (Precision::I8, Precision::I8),
            other => bail!("unknown recipe '{other}'; choose one of: {}", RECIPES.join(", ")),
        };
        Ok(Recipe { name: name.to_string(), linear, table, keep, k_group })
    }

    fn kept(&self, tensor: &str) -> bool {
        self.keep.iter().any(|p| glob_match(p, tensor))
    }

    /// Precision for the linear layer `name`.
    pub fn linear_precision(&self, name: &str) -> Precision {
        if self.kept(name) {
            Precision::F32
        } else {
            self.linear
        }
    }

    /// Precision for the embedding table `name`.
    pub fn table_precision(&self, name: &str) -> Precision {
        if self.kept(name) {
            Precision::F32
        } else {
            self.table
        }
    }
}

/// Matches `text` against `pattern`, where `*` matches any run of characters.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || text.len() < first.len() + last.len() || !text.ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(at) => rest = &rest[at + middle.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match("layers.0.*", "layers.0.ffn.up"));
        assert!(!glob_match("layers.0.*", "layers.10.ffn.up"));
        assert!(glob_match("*.ffn.*", "layers.3.ffn.down"));
        assert!(glob_match("dense.*", "dense.0"));
        assert!(glob_match("exact", "exact") && !glob_match("exact", "exactly"));
        assert!(glob_match("a*b*c", "axxbyyc") && !glob_match("a*b*c", "acb"));
    }

    #[test]
    fn recipes() {
        let r = Recipe::parse("int8", vec!["layers.0.*".into()], None).unwrap();
        assert_eq!(r.linear_precision("layers.0.ffn.up"), Precision::F32);
        assert_eq!(r.linear_precision("layers.1.ffn.up"), Precision::I8);
        assert!(Recipe::parse("int4", vec![], None).is_err());
    }
}
