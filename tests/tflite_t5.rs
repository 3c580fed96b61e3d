//! TFLite import of T5 encoders shaped like the browser's embedding model: a [32128, d] int8
//! token table, one int32 input [1, 64] padded with 0, the mask, pooling and normalisation
//! inside the model. Two seeded random encoders (gated GELU with a Dense after pooling, and
//! ReLU with an attention width unlike d_model), each in float32 and dynamic-range int8, are
//! built by TensorFlow's converter (`scripts/fetch-tflite-t5.sh`, which runs
//! `scripts/reference/make_tflite_t5.py`). octet converts them and must match:
//! - the LiteRT interpreter on the same files (`tests/fixtures/tflite_t5/reference.json`,
//!   builtin kernels, the inputs padded to 64), and
//! - transformers' `T5EncoderModel` with sentence-transformers' pooling on the same weights
//!   (the same fixture, `transformers` section).
//!
//! The texts run through octet's whole pipeline (its tokenizer gives the fixture's ids); id
//! sequences drawn over the whole table run through `Embedder::embed_ids` (encoder, pooling, Dense).
//! Never skipped: the files are built if missing.

use octet::tokenize::TextTokenizer;
use octet::{Embedder, Truncation};
use octet_tests::*;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

const VARIANTS: [&str; 2] = ["gated", "relu"];
const KINDS: [&str; 2] = ["f32", "int8"];

#[derive(Deserialize)]
struct Text {
    id: String,
    text: String,
    token_ids: Vec<u32>,
}

#[derive(Deserialize)]
struct RandomInput {
    token_ids: Vec<u32>,
}

#[derive(Deserialize)]
struct ModelRef {
    file: String,
    sha256: String,
    embeddings: Vec<Vec<f32>>,
    xnnpack_vs_builtin: Summary,
}

#[derive(Deserialize)]
struct Summary {
    mean_cosine: f64,
    min_cosine: f64,
}

#[derive(Deserialize)]
struct Transformers {
    embeddings: BTreeMap<String, Vec<Vec<f32>>>,
}

#[derive(Deserialize)]
struct Fixture {
    texts: Vec<Text>,
    random_inputs: Vec<RandomInput>,
    models: BTreeMap<String, ModelRef>,
    transformers: Transformers,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let path = repo_root().join("tests/fixtures/tflite_t5/reference.json");
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap_or_else(|e| {
            panic!(
                "bad fixture {} (it needs the transformers section too): {e}",
                path.display()
            )
        })
    })
}

fn t5_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| fetch("fetch-tflite-t5.sh"))
}

fn tflite_file(variant: &str, kind: &str) -> PathBuf {
    t5_dir().join(&fixture().models[&format!("{variant}-{kind}")].file)
}

/// The imported model of `variant` and `kind`, converted once.
fn embedder(variant: &str, kind: &str) -> &'static Embedder {
    static CELLS: OnceLock<BTreeMap<String, OnceLock<Embedder>>> = OnceLock::new();
    let cells = CELLS.get_or_init(|| {
        VARIANTS
            .iter()
            .flat_map(|v| KINDS.iter().map(move |k| (format!("{v}-{k}"), OnceLock::new())))
            .collect()
    });
    cells[&format!("{variant}-{kind}")].get_or_init(|| {
        let input = tflite_file(variant, kind);
        let out = scratch_dir().join(format!("tflite-t5-{variant}-{kind}.octet"));
        let recipe = octet_tools::convert::recipe::Recipe::parse("f32", vec![], None).unwrap();
        let tokenizer = t5_dir().join(format!("t5-{variant}-hf/tokenizer.json"));
        let inputs = octet_tools::convert::tflite::TfliteInputs {
            tokenizer: Some(&tokenizer),
            mapping: None,
            exact: false,
        };
        octet_tools::convert::tflite::convert(&input, &out, &recipe, &inputs)
            .unwrap_or_else(|e| panic!("convert {}: {e:#}", input.display()));
        Embedder::open(&out).expect("open the converted TFLite T5")
    })
}

/// octet's embeddings of every fixture input: the texts through the whole pipeline, then the
/// random id sequences through encoder, mean pooling, Dense and normalisation.
fn octet_embeddings(e: &Embedder) -> Vec<Vec<f32>> {
    let texts: Vec<&str> = fixture().texts.iter().map(|t| t.text.as_str()).collect();
    let mut out = e.embed(&texts).unwrap();
    let ids: Vec<&[u32]> = fixture().random_inputs.iter().map(|r| r.token_ids.as_slice()).collect();
    out.extend(e.embed_ids(&ids, None, Some(true)).unwrap());
    out
}

#[test]
fn imported_files_are_the_fixture_files_and_recognised_as_t5() {
    for variant in VARIANTS {
        for kind in KINDS {
            let e = embedder(variant, kind);
            let meta = e.file().meta();
            assert_eq!(
                meta.provenance.sources[0].sha256,
                fixture().models[&format!("{variant}-{kind}")].sha256,
                "{variant} {kind}: the built .tflite differs from the fixture's"
            );
            assert_eq!(meta.architecture.as_str(), "t5");
            assert_eq!(e.window(), 64, "the window is the input length");
            assert_eq!(meta.config["vocab_size"], 32128);
            assert_eq!(meta.config["tflite_pad_id"], 0);
            assert_eq!(
                meta.config["asymmetric_activations"],
                kind == "int8",
                "{variant} {kind}: hybrid int8 layers quantize their input with a zero point"
            );
            let (ffn, dense) = if variant == "gated" {
                ("gated-gelu", 1)
            } else {
                ("relu", 0)
            };
            assert_eq!(meta.config["feed_forward_proj"], ffn);
            assert_eq!(meta.dense.len(), dense);
            let word = e.file().tensor("embeddings.word").unwrap();
            assert_eq!(
                word.dtype.as_str(),
                if kind == "int8" { "i8" } else { "f32" },
                "{variant} {kind}: the token table keeps the file's type"
            );
        }
    }
}

/// The bucket table recovered from the folded [heads, 64, 64] bias equals the seeded
/// `relative_attention_bias` weights in every bucket a distance below 64 reaches.
#[test]
fn the_position_bias_table_is_recovered_from_the_folded_constant() {
    use octet_tflite::{t5, TfliteModel};
    for variant in VARIANTS {
        let model = TfliteModel::open(&tflite_file(variant, "int8")).unwrap();
        let g = t5::recognise(&model).unwrap();
        let values = model.f32_values(&model.tensors[g.position_bias]).unwrap();
        let found = t5::bucket_table(&values, g.heads, g.sequence).unwrap();
        let config: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(t5_dir().join(format!("t5-{variant}-hf/config.json"))).unwrap(),
        )
        .unwrap();
        let (buckets, max_distance) = (
            config["relative_attention_num_buckets"].as_u64().unwrap() as usize,
            config["relative_attention_max_distance"].as_u64().unwrap() as usize,
        );
        assert_eq!(
            (found.num_buckets, found.max_distance),
            (buckets, max_distance),
            "{variant}: the bucketing of the seeded model"
        );
        let bytes = std::fs::read(t5_dir().join(format!("t5-{variant}-hf/model.safetensors"))).unwrap();
        let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let view = file
            .tensor("encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight")
            .unwrap();
        let weights: Vec<f32> = view
            .data()
            .chunks_exact(2)
            .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect();
        let reached: std::collections::BTreeSet<usize> = (-63i64..=63)
            .map(|r| octet::model::t5::relative_position_bucket(r, buckets, max_distance))
            .collect();
        for b in 0..buckets {
            for h in 0..g.heads {
                let want = if reached.contains(&b) {
                    weights[b * g.heads + h]
                } else {
                    0.0
                };
                assert_eq!(found.table[b * g.heads + h], want, "{variant}: bucket {b}, head {h}");
            }
        }
    }
}

#[test]
fn tokenizer_gives_the_ids_the_interpreter_was_fed() {
    let e = embedder("gated", "int8");
    let tokenizer = TextTokenizer::from_file(e.file(), e.window()).unwrap();
    let mut truncated = 0;
    for (i, t) in fixture().texts.iter().enumerate() {
        let tokens = tokenizer.encode(i, &t.text, Truncation::Truncate).unwrap();
        assert_eq!(tokens.ids, t.token_ids, "{}: token ids of {:?}", t.id, t.text);
        truncated += tokens.truncated as usize;
    }
    assert!(
        truncated > 0 && truncated < fixture().texts.len(),
        "{truncated} of {} texts truncated: the set should have both",
        fixture().texts.len()
    );
}

#[test]
fn f32_import_matches_the_interpreter_and_transformers() {
    for variant in VARIANTS {
        let got = octet_embeddings(embedder(variant, "f32"));
        let lite = &fixture().models[&format!("{variant}-f32")].embeddings;
        // Same f32 operations in another order (and octet's f32 exp/tanh): ~1e-6 per value.
        let (_, min, diff) = compare_embeddings(&format!("T5 {variant} TFLite f32 import vs LiteRT"), &got, lite);
        assert!(
            min >= 0.99999 && diff <= 1e-4,
            "{variant}: min cosine {min}, max abs diff {diff}"
        );
        let reference = &fixture().transformers.embeddings[variant];
        let (_, min, diff) = compare_embeddings(
            &format!("T5 {variant} TFLite f32 import vs transformers"),
            &got,
            reference,
        );
        assert!(
            min >= 0.99999 && diff <= 1e-4,
            "{variant}: min cosine {min}, max abs diff {diff}"
        );
    }
}

#[test]
fn int8_import_matches_the_interpreter_and_stays_close_to_transformers() {
    for variant in VARIANTS {
        let got = octet_embeddings(embedder(variant, "int8"));
        assert!(got.len() >= 64);
        let model = &fixture().models[&format!("{variant}-int8")];
        let (mean, min, _) = compare_embeddings(
            &format!("T5 {variant} TFLite int8 import vs LiteRT"),
            &got,
            &model.embeddings,
        );
        eprintln!(
            "  (LiteRT's XNNPACK delegate vs its builtin kernels: mean {:.6}, min {:.6})",
            model.xnnpack_vs_builtin.mean_cosine, model.xnnpack_vs_builtin.min_cosine
        );
        // Measured (gated / relu): mean 0.999955 / 0.999994, min 0.999834 / 0.999965; LiteRT's
        // own XNNPACK run is as far from its builtin kernels. Unlike MiniLM (tests/tflite.rs),
        // these two-layer models do not amplify one-ulp differences into flipped codes.
        assert!(
            mean >= 0.9999 && min >= 0.999,
            "{variant}: mean cosine {mean}, min {min}"
        );
        let reference = &fixture().transformers.embeddings[variant];
        let (mean, min, _) = compare_embeddings(
            &format!("T5 {variant} TFLite int8 import vs transformers"),
            &got,
            reference,
        );
        assert!(mean >= 0.995 && min >= 0.98, "{variant}: mean cosine {mean}, min {min}");
    }
}

/// A T5 file whose TFLite metadata carries a SentencePiece model (`scripts/fetch-tflite-t5-spm.sh`:
/// tests/fixtures/sentencepiece/unigram.model packed in by MediaPipe's classes) converts with no
/// `--tokenizer`, and the stored tokenizer gives the `sentencepiece` library's ids (plus `</s>`)
/// on the fixture's strings that fit the 64-token window. The only difference allowed is the
/// equal-score tie described in tests/fixtures/sentencepiece/README.md (same pieces, other order).
#[test]
fn a_sentencepiece_tokenizer_in_the_metadata_is_converted() {
    let input = fetch("fetch-tflite-t5-spm.sh").join("t5-relu-int8-spm.tflite");
    let out = scratch_dir().join("tflite-t5-spm.octet");
    let recipe = octet_tools::convert::recipe::Recipe::parse("f32", vec![], None).unwrap();
    let inputs = octet_tools::convert::tflite::TfliteInputs {
        tokenizer: None,
        mapping: None,
        exact: false,
    };
    octet_tools::convert::tflite::convert(&input, &out, &recipe, &inputs)
        .unwrap_or_else(|e| panic!("convert {}: {e:#}", input.display()));
    let e = Embedder::open(&out).unwrap();
    assert_eq!(
        e.file().meta().provenance.sources[1].file,
        "t5-relu-int8-spm.tflite:unigram.model"
    );
    let tokenizer = TextTokenizer::from_file(e.file(), e.window()).unwrap();
    let path = repo_root().join("tests/fixtures/sentencepiece/ids.json");
    let doc: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let (mut compared, mut ties) = (0, 0);
    for (i, s) in doc["strings"].as_array().unwrap().iter().enumerate() {
        let want: Vec<u32> = s["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        if want.len() > e.window() {
            continue;
        }
        let got = tokenizer
            .encode(i, s["text"].as_str().unwrap(), Truncation::Error)
            .unwrap()
            .ids;
        compared += 1;
        if got != want {
            let (mut a, mut b) = (got.clone(), want.clone());
            a.sort_unstable();
            b.sort_unstable();
            assert_eq!(a, b, "{:?}\n  got  {got:?}\n  want {want:?}", s["text"]);
            ties += 1;
        }
    }
    eprintln!("SentencePiece from T5 metadata: {compared} strings within the window, {ties} equal-score ties");
    assert!(compared >= 700 && ties <= 5, "{compared} compared, {ties} ties");
    let v = e.embed(&["The cat sat on the mat."]).unwrap();
    assert_eq!(v[0].len(), 64);
}
