//! TFLite import of a masked litert-torch export: the tiny seeded BERT of `tests/litert_torch.rs`
//! wrapped to take `(input_ids, attention_mask)`, both int32 [1, 16], with a Hugging Face-style
//! masked mean and L2 normalisation, exported by litert-torch in float32 and quantized from that
//! file with `ai_edge_quantizer`'s dynamic-range int8 recipe (`dynamic_wi8_afp32`)
//! (`tests/fixtures/litert_torch/tiny-masked-n16-*.tflite`, `masked.json`, made by
//! `scripts/reference/make_litert_torch_fixtures.py masked`).
//!
//! The reference is the LiteRT interpreter (builtin kernels) on texts of 5, 9 and 16 tokens
//! padded to 16 with `[PAD]` and mask 0. octet runs each text unpadded: its vector must be the
//! interpreter's padded and masked one. The files are committed, so nothing is fetched and
//! nothing is skipped.

use octet::Embedder;
use octet_tests::*;
use octet_tflite::{bert, TfliteModel};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::OnceLock;

/// The fixed input length of the masked files.
const SEQ: usize = 16;

#[derive(Deserialize)]
struct MaskedText {
    id: String,
    token_ids: Vec<u32>,
    pytorch_padded: Vec<f32>,
}

#[derive(Deserialize)]
struct MaskedFile {
    file: String,
    sha256: String,
    sequence_length: usize,
    litert: Vec<Vec<f32>>,
}

#[derive(Deserialize)]
struct MaskedReference {
    texts: Vec<MaskedText>,
    files: BTreeMap<String, MaskedFile>,
}

/// The unpadded texts of `reference.json` (strings and PyTorch's unpadded vectors).
#[derive(Deserialize)]
struct TinyText {
    id: String,
    text: String,
    token_ids: Vec<u32>,
    pytorch: Vec<f32>,
}

#[derive(Deserialize)]
struct TinyReference {
    texts: Vec<TinyText>,
}

fn dir() -> PathBuf {
    repo_root().join("tests/fixtures/litert_torch")
}

fn read_json<T: serde::de::DeserializeOwned>(name: &str) -> T {
    let path = dir().join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("bad fixture {}: {e}", path.display()))
}

fn masked() -> &'static MaskedReference {
    static R: OnceLock<MaskedReference> = OnceLock::new();
    R.get_or_init(|| read_json("masked.json"))
}

fn tiny() -> &'static TinyReference {
    static R: OnceLock<TinyReference> = OnceLock::new();
    R.get_or_init(|| read_json("reference.json"))
}

/// Converts the fixture file `key` (`masked-n16-f32`, `masked-n16-int8`) as `octet convert
/// FILE --tokenizer tokenizer.json [--tflite-exact]` does, with the f32 recipe (float tensors
/// stay f32, the file's int8 tensors stay int8).
fn convert_file(key: &str, exact: bool) -> PathBuf {
    let input = dir().join(&masked().files[key].file);
    let suffix = if exact { "-exact" } else { "" };
    let out = scratch_dir().join(format!("litert-torch-{key}{suffix}.octet"));
    let recipe = octet_tools::convert::recipe::Recipe::parse("f32", vec![], None).unwrap();
    let tokenizer = dir().join("tokenizer.json");
    let inputs = octet_tools::convert::tflite::TfliteInputs {
        tokenizer: Some(&tokenizer),
        mapping: None,
        exact,
    };
    octet_tools::convert::tflite::convert(&input, &out, &recipe, &inputs)
        .unwrap_or_else(|e| panic!("convert {}: {e:#}", input.display()));
    out
}

/// One embedding per text.
type Rows = Vec<Vec<f32>>;

/// Embeds every text, unpadded, with file `key` converted; returns (octet, LiteRT on the padded
/// and masked input, PyTorch on the unpadded input).
fn embeddings(key: &str, exact: bool) -> (Rows, Rows, Rows) {
    let f = &masked().files[key];
    let e = Embedder::open(convert_file(key, exact)).expect("open the converted model");
    let meta = e.file().meta();
    assert_eq!(
        meta.provenance.sources[0].sha256, f.sha256,
        "{key}: the file differs from the fixture's"
    );
    assert_eq!(meta.max_seq_len, SEQ, "{key}: window = the fixed length");
    assert_eq!(meta.config["tflite_exact"], exact, "{key}");
    assert_eq!(
        meta.config["tflite_fixed_length"], SEQ,
        "{key}: padded length of the interpreter's run"
    );
    let texts: Vec<&str> = tiny().texts.iter().map(|t| t.text.as_str()).collect();
    let got = e.embed(&texts).unwrap();
    let pytorch = tiny().texts.iter().map(|t| t.pytorch.clone()).collect();
    (got, f.litert.clone(), pytorch)
}

/// The fixture pads the same texts as `reference.json`, shorter than the fixed length too.
#[test]
fn fixture_pads_texts_shorter_than_the_input() {
    let (m, t) = (masked(), tiny());
    assert_eq!(m.texts.len(), t.texts.len());
    for (a, b) in m.texts.iter().zip(&t.texts) {
        assert_eq!((&a.id, &a.token_ids), (&b.id, &b.token_ids));
        assert_eq!(a.pytorch_padded.len(), 32);
    }
    let short = m.texts.iter().filter(|t| t.token_ids.len() < SEQ).count();
    assert!(short >= 12, "{short} texts shorter than {SEQ}");
    for (key, f) in &m.files {
        assert_eq!(f.sequence_length, SEQ, "{key}");
        assert_eq!(f.litert.len(), m.texts.len(), "{key}");
    }
    // PyTorch's masked model on the padded input is its unpadded model: the reference's premise.
    let padded: Rows = m.texts.iter().map(|t| t.pytorch_padded.clone()).collect();
    let unpadded: Rows = t.texts.iter().map(|t| t.pytorch.clone()).collect();
    let (_, min, _) = compare_embeddings("PyTorch padded + masked vs unpadded", &padded, &unpadded);
    assert!(min >= 0.999999, "min cosine {min}");
}

/// Both files are recognised as the tiny BERT with an attention-mask input: litert-torch's
/// SELECT_V2 key mask on the scores in every layer and the masked mean.
#[test]
fn both_files_are_recognised_with_their_mask() {
    for (key, f) in &masked().files {
        let model = TfliteModel::open(&dir().join(&f.file)).unwrap();
        let g = bert::recognise(&model).unwrap_or_else(|e| panic!("{key}: {e}"));
        assert_eq!((g.layers.len(), g.heads), (2, 4), "{key}");
        assert_eq!(
            (g.inputs.ids, g.inputs.mask, g.inputs.segments),
            (model.inputs[0], Some(model.inputs[1]), None),
            "{key}: input roles"
        );
        assert!(g.pooling.mode == bert::Pooled::Mean && g.pooling.normalize, "{key}");
        assert!(g.folded_norms, "{key}");
        assert!(
            (g.query_scale - 1.0).abs() < 1e-6,
            "{key}: eager attention scales the scores"
        );
        let word = &model.tensors[g.word];
        if key.ends_with("int8") {
            // ai_edge_quantizer's dynamic_wi8_afp32: symmetric per-channel int8 weights and an
            // int8 token table, FULLY_CONNECTED layers in their hybrid form.
            let q = word.quant.as_ref().expect("int8 table");
            assert!(q.zero_point.iter().all(|&z| z == 0), "{key}");
            let w = &model.tensors[g.layers[0].query.weight];
            let q = w.quant.as_ref().expect("int8 weight");
            assert_eq!((q.scale.len(), q.axis), (32, 0), "{key}: per-channel weights");
            assert!(q.zero_point.iter().all(|&z| z == 0), "{key}");
        } else {
            assert!(word.quant.is_none(), "{key}");
        }
    }
}

/// Float32: octet's unpadded vector is LiteRT's padded and masked one, and PyTorch's.
#[test]
fn f32_import_matches_litert_on_padded_input() {
    let (got, litert, pytorch) = embeddings("masked-n16-f32", false);
    let (_, min, diff) = compare_embeddings("masked f32: octet vs LiteRT (padded + masked)", &got, &litert);
    assert!(min >= 0.99999 && diff <= 1e-5, "min cosine {min}, max abs diff {diff}");
    let (_, min, diff) = compare_embeddings("masked f32: octet vs PyTorch", &got, &pytorch);
    assert!(min >= 0.99999 && diff <= 1e-5, "min cosine {min}, max abs diff {diff}");
}

/// Dynamic-range int8 from ai_edge_quantizer, default path.
#[test]
fn int8_import_matches_litert_on_padded_input() {
    let (got, litert, pytorch) = embeddings("masked-n16-int8", false);
    let (mean, min, _) = compare_embeddings("masked int8: octet vs LiteRT (padded + masked)", &got, &litert);
    assert!(mean >= 0.9999 && min >= 0.999, "mean cosine {mean}, min {min}");
    let (_, min, _) = compare_embeddings("masked int8: octet vs PyTorch", &got, &pytorch);
    assert!(min >= 0.999, "min cosine {min}");
}

/// The same file with `--tflite-exact`: the float steps as the interpreter's builtin kernels
/// run them on the padded input.
#[test]
fn int8_exact_import_matches_litert_on_padded_input() {
    let (got, litert, pytorch) = embeddings("masked-n16-int8", true);
    let (mean, min, _) = compare_embeddings(
        "masked int8 --tflite-exact: octet vs LiteRT (padded + masked)",
        &got,
        &litert,
    );
    assert!(mean >= 0.9999 && min >= 0.999, "mean cosine {mean}, min {min}");
    let (_, min, _) = compare_embeddings("masked int8 --tflite-exact: octet vs PyTorch", &got, &pytorch);
    assert!(min >= 0.999, "min cosine {min}");
}

/// The walk takes the SELECT_V2 only as a padding mask: 0 on the tokens of the mask input, a
/// large negative number on the padding keys, the keys in order.
#[test]
fn a_select_that_is_not_a_key_mask_is_refused() {
    use octet_tflite::model::op;
    let path = dir().join(&masked().files["masked-n16-f32"].file);
    let open = || TfliteModel::open(&path).unwrap();
    let select = |m: &TfliteModel| m.operators.iter().position(|o| o.code == op::SELECT_V2).unwrap();

    // The large negative number on the tokens and 0 on the padding.
    let mut model = open();
    let i = select(&model);
    model.operators[i].inputs.swap(1, 2);
    let err = bert::recognise(&model).unwrap_err().to_string();
    assert!(err.contains("not a padding mask"), "{err}");

    // The mask gathered by other indices than (0, j) for key j.
    let mut model = open();
    let gather = model.operators.iter().position(|o| o.code == op::GATHER_ND).unwrap();
    let other = model
        .tensors
        .iter()
        .position(|t| t.is_constant() && t.dtype == octet_tflite::TensorType::I32 && t.shape == [3])
        .expect("an int32 [3] constant (a RESHAPE's shape)");
    model.operators[gather].inputs[1] = Some(other);
    let err = bert::recognise(&model).unwrap_err().to_string();
    assert!(err.contains("not a padding mask"), "{err}");

    // The untouched file still recognises.
    assert!(bert::recognise(&open()).is_ok());
}
