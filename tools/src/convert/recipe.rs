//! Quantization recipes: which precision each kind of tensor is stored in.
//!
//! | recipe | linear weights | embedding tables | everything else |
//! |---|---|---|---|
//! | `f32` | f32 packed | f32 | f32 |
//! | `f16` | f16 `[n, k]`, packed to f32 at load | f16 | f32 |
//! | `int8-embeddings` | f32 packed | token table int8, per-row scale and zero point | f32 |
//! | `int8` | int8 per output channel, packed | token table 7-bit (`u7`, BERT), 8-bit (Gemma 3) or 6-bit (`u6`, T5) per row, position table int8 per row | f32 |
//!
//! `f16` is a storage format only: the engine computes in f32. Linear weights are stored as
//! plain f16 `[n, k]` and converted to f32 packed panels once when the model is opened (owned
//! buffers: resident memory is that of the f32 model, the file is half its size); tables are
//! gathered from f16 directly. Norm weights, biases and other vectors stay f32: they are a few
//! kilobytes, and every token reads them. On all-MiniLM-L6-v2 the f16 file is 50.4% of the f32
//! file with a min cosine vs f32 above 0.99999 (the README's report table).
//!
//! Token tables of the `int8` recipe are stored in 6 bits (the `u6` dtype: four values in three
//! bytes, per-row scale and zero point, q in 0..=63); `--table-bits 8` keeps them int8, and
//! `--table-bits 6` makes `int8-embeddings` use 6 bits too. An embedding lookup is not a
//! matrix multiply, so the table's width is free: the gather unpacks. On all-MiniLM-L6-v2 this
//! brings the file from 23,777,920 bytes (26.2% of the 90,868,376-byte safetensors) to
//! 20,847,808 (22.9%), under the 25% target. Measured against f32 over the 82 fixture texts:
//! 8-bit table, mean cosine 0.99799, min 0.99132; 6-bit, 0.99774 / 0.98918. gensim figures
//! (f32: Lee 0.6564, wordsim353 0.7289, simlex999 0.4462): 8-bit 0.6549 / 0.7305 / 0.4494;
//! 6-bit 0.6559 / 0.7351 / 0.4469. The row range is each row's min..max (widened to include
//! 0): clipping it, with the best clip chosen per row, lowers the table's squared error by only
//! 3%. Scales stay f32 and zero points i32 (the `i8` companions): f16 scales would save 61 KB,
//! 0.07% of the safetensors, which the target does not need. `int8-embeddings` keeps 8 bits,
//! as the browser's model did, and position tables stay int8: they are small. Token tables of
//! the other architectures (Gemma 3, T5) get 6 bits under `int8` as well; the figures above
//! are MiniLM's only.
//!
//! `--table-bits 7` stores token tables in 7 bits under either quantized recipe (the `u7`
//! dtype: eight values in seven bytes, per-row scale and zero point, q in 0..=127): 7/8 of
//! int8's table bytes, half of 6 bits' step. It is BERT's default under `int8` (the converter
//! turns the recipe's 6-bit default into 7 for BERT and into 8 for Gemma 3; an explicit
//! `--table-bits` wins). MiniLM's `int8` file is then 22,081,344 bytes (24.3% of the
//! safetensors; 6 bits: 20,616,256, 8 bits: 23,546,368). Against fp32 sentence-transformers
//! over the 400 Lee sentences (mean / p1 / min cosine; GPTQ on the 1,290 built-in texts, channel
//! order, centered groups): 7 bits 0.999632 / 0.999384 / 0.999279, 6 bits 0.999538 / 0.999234 /
//! 0.999111, 8 bits 0.999662 / 0.999462 / 0.999074 (llama.cpp Q8_0: 0.999631 mean, 0.999118
//! min).
//!
//! Activations of int8 layers are quantized on the fly with one scale per token, except for
//! layers whose input comes straight from a norm (BERT's QKV and FFN-up projections): those get
//! one scale per [`AFTER_NORM_K_GROUP`] input features, because norm outputs carry a few outlier
//! channels that make a per-token scale too coarse. Measured on all-MiniLM-L6-v2 against f32
//! over the 82 fixture texts (with 8-bit token tables): per token everywhere, mean cosine 0.9954, min 0.9788; groups of
//! 64 on QKV alone, 0.9972 / 0.9867; on QKV and FFN-up, 0.9980 / 0.9913; on every layer,
//! 0.9985 / 0.9932. An architecture may set its own groups by layer instead (Gemma:
//! `gemma3::LAYER_K_GROUPS`; BERT: `bert::LAYER_K_GROUPS`, groups of 128 on QKV, FFN-up and FFN
//! down, the first two quantized centered on each group's range by the engine). `--k-group G`
//! sets one group size for every int8 layer.
//!
//! Int8 weights are rounded to nearest within each output channel's scale, or, where the
//! recipe's [`Calibration`] gives texts (BERT and Gemma 3 by default), by GPTQ on the inputs the f32 model
//! sees on them (`calibrate`, `gptq`). On all-MiniLM-L6-v2 against fp32 sentence-transformers
//! over the 400 Lee sentences (mean / p1 / min cosine), the `int8` recipe:
//!
//! | weights | QKV / FFN-up activations | table | mean | p1 | min |
//! |---|---|---|---|---|---|
//! | round-to-nearest | symmetric, groups of 64 | 6-bit | 0.998871 | 0.997750 | 0.997385 |
//! | GPTQ | symmetric, groups of 64 | 6-bit | 0.999209 | 0.998734 | 0.998240 |
//! | round-to-nearest | centered, groups of 128 | 6-bit | 0.999008 | 0.998230 | 0.998006 |
//! | GPTQ (the previous default) | centered, groups of 128 | 6-bit | 0.999375 | 0.998890 | 0.998402 |
//! | GPTQ | centered, groups of 128 | 8-bit (`--table-bits 8`) | 0.999513 | 0.999230 | 0.998761 |
//! | GPTQ | centered, groups of 64 | 8-bit | 0.999616 | 0.999343 | 0.999107 |
//! | GPTQ | centered 128, FFN down centered too | 6-bit | 0.999435 | 0.999021 | 0.998802 |
//! | GPTQ, channel order | as above | 6-bit | 0.999529 | 0.999153 | 0.998947 |
//! | GPTQ, channel order | as above | 7-bit | 0.999620 | 0.999334 | 0.999027 |
//! | GPTQ on 1,290 texts, channel order (the default) | as above | 7-bit | 0.999632 | 0.999384 | 0.999279 |
//!
//! The rows up to the sixth calibrate on the first 300 built-in texts.
//! (llama.cpp's Q8_0 on the same sentences: 0.999631 / 0.999118, `benches/RESULTS.md`.) A
//! simulation in PyTorch (scripts not kept; fp32 attention and tables) put the share of each
//! error: per-channel int8 weights alone (fp32 activations) 0.999469, with GPTQ 0.999775; the
//! symmetric activation groups cost about 0.0004 more.
//!
//! `--keep PATTERN` (repeatable, `*` matches any run of characters) keeps matching tensors in
//! f32 under any recipe, e.g. `--keep 'layers.0.*' --keep 'dense.*'`.

use super::calibrate::Calibration;
use super::TableKind;
use anyhow::{bail, Result};

/// The storage precision chosen for a tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precision {
    F32,
    /// IEEE half precision, stored only: computed in f32.
    F16,
    I8,
    /// 6 bits per value, per-row scale and zero point (embedding tables only: the `u6` dtype).
    U6,
    /// 7 bits per value, per-row scale and zero point (embedding tables only: the `u7` dtype).
    U7,
}

/// A named recipe plus exceptions.
#[derive(Clone, Debug)]
pub struct Recipe {
    /// The recipe name as given (`f32`, `f16`, `int8-embeddings`, `int8`).
    pub name: String,
    /// Precision of linear-layer weights.
    pub linear: Precision,
    /// Precision of token-embedding tables (`I8`, `U7` or `U6` when quantized, see
    /// [`Recipe::with_table_bits`]).
    pub table: Precision,
    /// Whether `--table-bits` chose `table` (an architecture may change only a default).
    pub table_given: bool,
    /// Tensor-name patterns kept in f32.
    pub keep: Vec<String>,
    /// Activation-scale group along k for every int8 linear layer, overriding the default
    /// (None: the default, see the module docs).
    pub k_group: Option<usize>,
    /// An architecture's own groups by layer, used when `k_group` is None: (pattern of layer
    /// names as `--keep` takes them, group or None for one scale per token). Layers no entry matches take the
    /// default. Empty for every architecture but Gemma (`gemma3::LAYER_K_GROUPS`).
    pub layer_k_groups: &'static [(&'static str, Option<usize>)],
    /// The texts that calibrate int8 weights ([`super::gptq`]), or none (`--calibration`).
    pub calibration: Calibration,
}

/// Activation group size for layers that read a norm's output (see the module docs).
pub const AFTER_NORM_K_GROUP: usize = 64;

/// The recipe names `--quant` accepts.
pub const RECIPES: [&str; 4] = ["f32", "f16", "int8-embeddings", "int8"];

impl Recipe {
    /// Parses a recipe name.
    pub fn parse(name: &str, keep: Vec<String>, k_group: Option<usize>) -> Result<Recipe> {
        let (linear, table) = match name {
            "f32" => (Precision::F32, Precision::F32),
            "f16" => (Precision::F16, Precision::F16),
            "int8-embeddings" => (Precision::F32, Precision::I8),
            "int8" => (Precision::I8, Precision::I8),
            other => bail!("unknown recipe '{other}'; choose one of: {}", RECIPES.join(", ")),
        };
        if let Some(g) = k_group {
            if g == 0 || g % 32 != 0 {
                bail!("--k-group must be a positive multiple of 32, got {g}");
            }
        }
        // Quantized recipes default to 6-bit token tables, except `int8-embeddings`, which keeps
        // the browser model's 8-bit table (see the module docs).
        let table = if name == "int8" { Precision::U6 } else { table };
        Ok(Recipe {
            name: name.to_string(),
            linear,
            table,
            keep,
            k_group,
            layer_k_groups: &[],
            calibration: Calibration::Auto,
            table_given: false,
        })
    }

    /// Sets the width of quantized token tables (`--table-bits`): 6 (the `u6` dtype), 7 (the
    /// `u7` dtype) or 8 (`i8`). `None` keeps the recipe's default. Only recipes that quantize
    /// the token table accept it.
    pub fn with_table_bits(mut self, bits: Option<u8>) -> Result<Recipe> {
        let Some(bits) = bits else { return Ok(self) };
        if matches!(self.table, Precision::F32 | Precision::F16) {
            bail!(
                "--table-bits applies to quantized token tables; recipe '{}' keeps them in floating point",
                self.name
            );
        }
        self.table = match bits {
            6 => Precision::U6,
            7 => Precision::U7,
            8 => Precision::I8,
            other => bail!("--table-bits must be 6, 7 or 8, got {other}"),
        };
        self.table_given = true;
        Ok(self)
    }

    /// Sets how int8 weights are rounded (`--calibration`).
    pub fn with_calibration(mut self, calibration: Calibration) -> Recipe {
        self.calibration = calibration;
        self
    }

    fn kept(&self, tensor: &str) -> bool {
        self.keep.iter().any(|p| glob_match(p, tensor))
    }

    /// The activation group size for the int8 layer `name` with `k` inputs: `--k-group`, else
    /// the architecture's group for that layer, else groups of [`AFTER_NORM_K_GROUP`] after a
    /// norm and one scale per token elsewhere. A group of k or more is one scale per token.
    pub fn k_group_for(&self, name: &str, k: usize, after_norm: bool) -> Option<usize> {
        let by_layer = self
            .layer_k_groups
            .iter()
            .find(|(pattern, _)| glob_match(pattern, name));
        let group = match (self.k_group, by_layer) {
            (Some(g), _) => Some(g),
            (None, Some(&(_, g))) => g,
            (None, None) if after_norm => Some(AFTER_NORM_K_GROUP),
            (None, None) => None,
        };
        group.filter(|&g| g < k)
    }

    /// Precision for the linear layer `name`.
    pub fn linear_precision(&self, name: &str) -> Precision {
        if self.kept(name) {
            Precision::F32
        } else {
            self.linear
        }
    }

    /// Precision for the embedding table `name`. Position tables follow the linear layers (so
    /// they are int8, never 6-bit: they are small, and every token reads them): `int8-embeddings`
    /// quantizes only the token table, as the browser's model did.
    pub fn table_precision(&self, name: &str, kind: TableKind) -> Precision {
        match (self.kept(name), kind) {
            (true, _) => Precision::F32,
            (false, TableKind::Token) => self.table,
            (false, TableKind::Position) => self.linear,
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
        let f16 = Recipe::parse("f16", vec!["dense.*".into()], None).unwrap();
        assert_eq!(f16.linear_precision("layers.1.ffn.up"), Precision::F16);
        assert_eq!(f16.linear_precision("dense.0"), Precision::F32);
        assert_eq!(f16.table_precision("embeddings.word", TableKind::Token), Precision::F16);
        assert_eq!(
            f16.table_precision("embeddings.position", TableKind::Position),
            Precision::F16
        );
        assert!(f16.with_table_bits(Some(8)).is_err());
    }

    #[test]
    fn k_groups_by_flag_by_layer_and_by_default() {
        let mut r = Recipe::parse("int8", vec![], None).unwrap();
        // The defaults: groups of 64 after a norm (when k is wider), one scale per token elsewhere.
        assert_eq!(
            r.k_group_for("layers.0.attention.qkv", 384, true),
            Some(AFTER_NORM_K_GROUP)
        );
        assert_eq!(r.k_group_for("layers.0.attention.qkv", 64, true), None);
        assert_eq!(r.k_group_for("layers.0.ffn.down", 1536, false), None);
        // An architecture's table wins over the defaults, None included.
        r.layer_k_groups = &[("layers.*.ffn.down", Some(32)), ("layers.*.attention.qkv", None)];
        assert_eq!(r.k_group_for("layers.3.ffn.down", 1152, false), Some(32));
        assert_eq!(r.k_group_for("layers.3.attention.qkv", 768, true), None);
        assert_eq!(
            r.k_group_for("layers.3.ffn.gate_up", 768, true),
            Some(AFTER_NORM_K_GROUP)
        );
        // --k-group wins over both.
        r.k_group = Some(96);
        assert_eq!(r.k_group_for("layers.3.ffn.down", 1152, false), Some(96));
        assert_eq!(r.k_group_for("layers.3.attention.qkv", 768, true), Some(96));
        assert_eq!(r.k_group_for("dense.0", 96, false), None);
    }

    #[test]
    fn table_bits() {
        let int8 = Recipe::parse("int8", vec![], None).unwrap();
        assert_eq!(
            int8.table_precision("embeddings.word_embeddings", TableKind::Token),
            Precision::U6
        );
        assert_eq!(
            int8.table_precision("embeddings.position_embeddings", TableKind::Position),
            Precision::I8
        );
        let eight = int8.clone().with_table_bits(Some(8)).unwrap();
        assert_eq!(
            eight.table_precision("embeddings.word_embeddings", TableKind::Token),
            Precision::I8
        );
        let seven = int8.clone().with_table_bits(Some(7)).unwrap();
        assert_eq!(
            seven.table_precision("embeddings.word_embeddings", TableKind::Token),
            Precision::U7
        );
        // Position tables stay int8 whatever the token table's width.
        assert_eq!(
            seven.table_precision("embeddings.position_embeddings", TableKind::Position),
            Precision::I8
        );
        for bits in [0, 4, 5, 9, 16] {
            let err = int8.clone().with_table_bits(Some(bits)).unwrap_err();
            assert!(err.to_string().contains("6, 7 or 8"), "{bits}: {err}");
        }
        // The default stays 6 bits.
        assert_eq!(int8.clone().with_table_bits(None).unwrap().table, Precision::U6);
        let emb = Recipe::parse("int8-embeddings", vec![], None).unwrap();
        assert_eq!(emb.table, Precision::I8);
        assert_eq!(
            emb.table_precision("embeddings.position_embeddings", TableKind::Position),
            Precision::F32
        );
        assert_eq!(emb.clone().with_table_bits(Some(6)).unwrap().table, Precision::U6);
        assert_eq!(emb.with_table_bits(Some(7)).unwrap().table, Precision::U7);
        assert!(Recipe::parse("f32", vec![], None)
            .unwrap()
            .with_table_bits(Some(6))
            .is_err());
        let kept = Recipe::parse("int8", vec!["embeddings.*".into()], None).unwrap();
        assert_eq!(
            kept.table_precision("embeddings.word_embeddings", TableKind::Token),
            Precision::F32
        );
    }
}
