//! TFLite import of a masked, fixed-length BERT: all-MiniLM-L6-v2 with the three int32 [1, 128]
//! inputs MediaPipe's text embedder and Model Maker feed (`input_word_ids`, `input_mask`,
//! `input_type_ids`), the mask turned into an additive score bias and a masked mean inside the
//! graph, the segment ids gathered into the token-type table. Float32 and dynamic-range int8,
//! each with and without MediaPipe's BERT text metadata, built by
//! `scripts/fetch-tflite-masked-minilm.sh` (never skipped: built if missing).
//!
//! octet runs each text unpadded. The reference (`tests/fixtures/tflite_masked/reference.json`,
//! `scripts/reference/make_tflite_masked_minilm.py reference`) is the LiteRT interpreter on the
//! same texts padded to 128 with their mask, builtin kernels and XNNPACK, for texts of 5 to 128
//! tokens; sentence-transformers' embeddings are there for the texts the 128-token cut leaves
//! whole.

use octet::Embedder;
use octet_tests::*;
use octet_tools::convert::recipe::Recipe;
use octet_tools::convert::tflite::{convert, TfliteInputs};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

const SEQ: usize = 128;

#[derive(Deserialize)]
struct ModelRef {
    file: String,
    /// The build the LiteRT reference ran on.
    sha256: String,
    /// The same script's build on other CPUs (TensorFlow's converter writes different bytes
    /// there), held to the same reference.
    #[serde(default)]
    other_builds_sha256: Vec<String>,
    embeddings: Vec<Vec<f32>>,
    xnnpack_embeddings: Vec<Vec<f32>>,
}

#[derive(Deserialize)]
struct Text {
    id: String,
    text: String,
    token_ids: Vec<u32>,
    st_embedding: Option<Vec<f32>>,
}

#[derive(Deserialize)]
struct Fixture {
    texts: Vec<Text>,
    models: BTreeMap<String, ModelRef>,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let path = repo_root().join("tests/fixtures/tflite_masked/reference.json");
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
            .unwrap_or_else(|e| panic!("bad fixture {}: {e}", path.display()))
    })
}

fn masked_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| fetch("fetch-tflite-masked-minilm.sh"))
}

/// The file of `kind` (`f32`, `int8`), converted with MiniLM's `tokenizer.json`, or (`metadata`)
/// the same weights with MediaPipe metadata converted with no option at all.
fn converted(kind: &str, metadata: bool) -> PathBuf {
    let file = &fixture().models[kind].file;
    let input = if metadata {
        masked_dir().join(file.replace(".tflite", "-metadata.tflite"))
    } else {
        masked_dir().join(file)
    };
    let out = scratch_dir().join(format!("tflite-masked-{kind}-{metadata}.octet"));
    let tokenizer = minilm_source().join("tokenizer.json");
    let inputs = TfliteInputs {
        tokenizer: (!metadata).then_some(tokenizer.as_path()),
        mapping: None,
        exact: false,
    };
    // The default recipe of `octet convert`: a prequantized file's int8 tensors stay int8.
    let recipe = Recipe::parse("f32", vec![], None).unwrap();
    convert(&input, &out, &recipe, &inputs).unwrap_or_else(|e| panic!("convert {}: {e:#}", input.display()));
    out
}

fn embedder(kind: &str, metadata: bool) -> &'static Embedder {
    static CELLS: [OnceLock<Embedder>; 4] = [const { OnceLock::new() }; 4];
    let i = usize::from(kind == "int8") * 2 + usize::from(metadata);
    CELLS[i].get_or_init(|| Embedder::open(converted(kind, metadata)).expect("open the converted model"))
}

fn texts() -> Vec<&'static str> {
    fixture().texts.iter().map(|t| t.text.as_str()).collect()
}

/// (octet's vectors, sentence-transformers') on the texts that have the latter.
fn with_st(got: &[Vec<f32>]) -> (Vec<Vec<f32>>, Vec<Vec<f32>>) {
    fixture()
        .texts
        .iter()
        .zip(got)
        .filter_map(|(t, g)| t.st_embedding.clone().map(|st| (g.clone(), st)))
        .unzip()
}

#[test]
fn the_files_are_the_fixture_files_and_the_window_is_the_fixed_length() {
    let lens: Vec<usize> = fixture().texts.iter().map(|t| t.token_ids.len()).collect();
    assert!(lens.iter().all(|&n| (5..=SEQ).contains(&n)), "{lens:?}");
    assert!(lens.iter().filter(|&&n| n == SEQ).count() >= 5 && lens.iter().filter(|&&n| n < 32).count() >= 20);
    for kind in ["f32", "int8"] {
        for metadata in [false, true] {
            let meta = embedder(kind, metadata).file().meta();
            if !metadata {
                let model = &fixture().models[kind];
                let sha = &meta.provenance.sources[0].sha256;
                assert!(
                    *sha == model.sha256 || model.other_builds_sha256.contains(sha),
                    "{kind}: {sha} is not a build the fixture knows"
                );
            }
            assert_eq!(meta.max_seq_len, SEQ, "{kind} metadata={metadata}");
        }
    }
}

/// The engine's tokenizer (MiniLM's tokenizer.json, or the vocab from the metadata) gives the
/// ids the interpreter was fed, cut at 128 tokens.
#[test]
fn both_tokenizers_give_the_fixture_ids() {
    for metadata in [false, true] {
        let tokens = embedder("int8", metadata)
            .tokenize(&texts(), None, octet::Truncation::Truncate)
            .unwrap();
        for (t, got) in fixture().texts.iter().zip(&tokens) {
            assert_eq!(got.ids, t.token_ids, "{} (metadata={metadata})", t.id);
        }
    }
}

#[test]
fn f32_import_matches_the_interpreter() {
    let got = embedder("f32", false).embed(&texts()).unwrap();
    let (mean, min, diff) = compare_embeddings(
        "masked TFLite f32 import vs LiteRT (builtin kernels, padded + masked input)",
        &got,
        &fixture().models["f32"].embeddings,
    );
    assert!(
        min >= 0.99999 && diff <= 1e-4,
        "mean {mean}, min {min}, max abs diff {diff}"
    );
    compare_embeddings(
        "masked TFLite f32 import vs LiteRT (XNNPACK)",
        &got,
        &fixture().models["f32"].xnnpack_embeddings,
    );
    let (ours, st) = with_st(&got);
    assert!(ours.len() >= 50);
    let (_, min, _) = compare_embeddings("masked TFLite f32 import vs sentence-transformers fp32", &ours, &st);
    assert!(min >= 0.99999, "min cosine {min}");
}

#[test]
fn int8_import_matches_the_interpreter() {
    let got = embedder("int8", false).embed(&texts()).unwrap();
    let (mean, min, _) = compare_embeddings(
        "masked TFLite int8 import vs LiteRT (builtin kernels, padded + masked input)",
        &got,
        &fixture().models["int8"].embeddings,
    );
    let (xmean, xmin, _) = compare_embeddings(
        "masked TFLite int8 import vs LiteRT (XNNPACK)",
        &got,
        &fixture().models["int8"].xnnpack_embeddings,
    );
    compare_embeddings(
        "(LiteRT XNNPACK vs LiteRT builtin kernels, for scale)",
        &fixture().models["int8"].xnnpack_embeddings,
        &fixture().models["int8"].embeddings,
    );
    // The target is mean 0.9999, min 0.999 against the builtin kernels; the fast path's
    // bounds hold the level measured (mean 0.99949, min 0.99387; see tests/tflite.rs on why
    // float-level flips of activation codes keep every engine but a bit-exact replay there);
    // `--tflite-exact` meets the target (int8_exact_import_matches_the_interpreter).
    assert!(mean >= 0.9985 && min >= 0.99, "mean {mean}, min {min}");
    assert!(xmean >= 0.9985 && xmin >= 0.99, "XNNPACK: mean {xmean}, min {xmin}");
    let (ours, st) = with_st(&got);
    let (mean, min, _) = compare_embeddings("masked TFLite int8 import vs sentence-transformers fp32", &ours, &st);
    assert!(mean >= 0.995 && min >= 0.98, "mean {mean}, min {min}");
}

/// The int8 file converted with `--tflite-exact`: LayerNorm, attention and GELU computed as
/// LiteRT's builtin kernels compute them, so every activation row gets the interpreter's codes.
fn exact_int8() -> &'static Embedder {
    static CELL: OnceLock<Embedder> = OnceLock::new();
    CELL.get_or_init(|| {
        let input = masked_dir().join(&fixture().models["int8"].file);
        let out = scratch_dir().join("tflite-masked-int8-exact.octet");
        let tokenizer = minilm_source().join("tokenizer.json");
        let inputs = TfliteInputs {
            tokenizer: Some(tokenizer.as_path()),
            mapping: None,
            exact: true,
        };
        let recipe = Recipe::parse("f32", vec![], None).unwrap();
        convert(&input, &out, &recipe, &inputs).unwrap_or_else(|e| panic!("convert {}: {e:#}", input.display()));
        Embedder::open(out).expect("open the exact conversion")
    })
}

/// The target, met by the exact replay: mean >= 0.9999 and min >= 0.999 against LiteRT's
/// builtin kernels on the padded, masked input.
#[test]
fn int8_exact_import_matches_the_interpreter() {
    let e = exact_int8();
    assert_eq!(e.file().meta().config["tflite_exact"], true);
    let got = e.embed(&texts()).unwrap();
    let (mean, min, _) = compare_embeddings(
        "masked TFLite int8 --tflite-exact vs LiteRT (builtin kernels, padded + masked input)",
        &got,
        &fixture().models["int8"].embeddings,
    );
    let (xmean, xmin, _) = compare_embeddings(
        "masked TFLite int8 --tflite-exact vs LiteRT (XNNPACK)",
        &got,
        &fixture().models["int8"].xnnpack_embeddings,
    );
    eprintln!("  (XNNPACK: mean {xmean:.6}, min {xmin:.6})");
    assert!(mean >= 0.9999 && min >= 0.999, "mean {mean}, min {min}");
}

/// The files with MediaPipe metadata convert with no option and embed exactly as the same
/// weights converted with `--tokenizer`.
#[test]
fn the_metadata_files_convert_with_no_options_and_embed_the_same() {
    for kind in ["f32", "int8"] {
        let a = embedder(kind, true).embed(&texts()).unwrap();
        let b = embedder(kind, false).embed(&texts()).unwrap();
        let worst = a.iter().zip(&b).map(|(x, y)| max_abs_diff(x, y)).fold(0f32, f32::max);
        assert_eq!(
            worst, 0.0,
            "{kind}: the metadata import differs from the --tokenizer one"
        );
    }
}

/// `octet inspect` names the role of each of the three inputs.
#[test]
fn the_recognised_graph_names_every_input() {
    use octet_tflite::{bert, TfliteModel};
    let model = TfliteModel::open(&masked_dir().join(&fixture().models["int8"].file)).unwrap();
    let g = bert::recognise(&model).unwrap();
    let name = |t: Option<usize>| t.map(|t| model.tensors[t].name.clone()).unwrap_or_default();
    assert!(name(Some(g.inputs.ids)).contains("input_word_ids"));
    assert!(name(g.inputs.mask).contains("input_mask"));
    assert!(name(g.inputs.segments).contains("input_type_ids"));
    assert!(g.pooling.mode == bert::Pooled::Mean && g.pooling.normalize);
    let inv = octet_tools::inventory::read(&masked_dir().join(&fixture().models["int8"].file)).unwrap();
    let notes: Vec<&str> = inv.inputs.iter().map(|p| p.note.as_str()).collect();
    assert!(notes.iter().any(|n| n.starts_with("token ids")), "{notes:?}");
    assert!(notes.iter().any(|n| n.starts_with("attention mask")), "{notes:?}");
    assert!(notes.iter().any(|n| n.starts_with("segment ids")), "{notes:?}");
}

#[derive(Deserialize)]
struct TinyText {
    text: String,
    token_ids: Vec<u32>,
}

#[derive(Deserialize)]
struct TinyModel {
    file: String,
    embeddings: Vec<Vec<f32>>,
}

#[derive(Deserialize)]
struct TinyFixture {
    texts: Vec<TinyText>,
    models: BTreeMap<String, TinyModel>,
}

/// Tiny masked BERTs (committed, random weights, fixed length 32, MediaPipe metadata) pooling
/// by masked mean, by the first token, or not at all (the graph outputs the token vectors and
/// the caller pools): each converts with no option, its inputs' roles are found, and octet's
/// vectors match LiteRT's on the padded, masked input (for `none`, the mean of LiteRT's token
/// vectors over the text, which octet computes unnormalised).
#[test]
fn every_pooling_form_converts_and_matches_the_interpreter() {
    use octet::format::PoolingMode;
    let dir = repo_root().join("tests/fixtures/tflite_masked");
    let fixture: TinyFixture = serde_json::from_str(&std::fs::read_to_string(dir.join("tiny.json")).unwrap()).unwrap();
    for (key, model) in &fixture.models {
        let input = dir.join(&model.file);
        let e = convert_and_match(key, &input, None, &fixture, model);
        let meta = e.file().meta();
        let (mode, normalize) = match key.split('-').next().unwrap() {
            "mean" => (PoolingMode::Mean, true),
            "cls" => (PoolingMode::Cls, true),
            _ => (PoolingMode::Mean, false),
        };
        assert_eq!((meta.pooling.mode, meta.pooling.normalize), (mode, normalize), "{key}");
        assert_eq!(meta.max_seq_len, 32, "{key}");
    }
}

/// Converts the tiny fixture file `input` (recipe f32: the file's own int8 tensors are kept),
/// with `tokenizer` when the file has no metadata, and checks octet's token ids and vectors
/// against the fixture's (LiteRT on the padded, masked input): f32 files to 0.99999, int8 files
/// to a mean of 0.9999 and a min of 0.9995. Returns the embedder for further checks.
fn convert_and_match(
    key: &str,
    input: &std::path::Path,
    tokenizer: Option<&std::path::Path>,
    fixture: &TinyFixture,
    model: &TinyModel,
) -> Embedder {
    let out = scratch_dir().join(format!("tflite-masked-tiny-{key}.octet"));
    let inputs = TfliteInputs {
        tokenizer,
        mapping: None,
        exact: false,
    };
    convert(input, &out, &Recipe::parse("f32", vec![], None).unwrap(), &inputs)
        .unwrap_or_else(|e| panic!("convert {}: {e:#}", input.display()));
    let e = Embedder::open(&out).unwrap();
    let texts: Vec<&str> = fixture.texts.iter().map(|t| t.text.as_str()).collect();
    let tokens = e.tokenize(&texts, None, octet::Truncation::Truncate).unwrap();
    for (t, got) in fixture.texts.iter().zip(&tokens) {
        assert_eq!(got.ids, t.token_ids, "{key}: {}", t.text);
    }
    let got = e.embed(&texts).unwrap();
    let (mean, min, _) = compare_embeddings(&format!("tiny masked {key} vs LiteRT"), &got, &model.embeddings);
    let (want_mean, want_min) = if key.ends_with("f32") {
        (0.99999, 0.99999)
    } else {
        (0.9999, 0.9995)
    };
    assert!(mean >= want_mean && min >= want_min, "{key}: mean {mean}, min {min}");
    e
}

/// The tiny mean-pooling model with its token-type rows made as `one_hot(segment ids) @ table`
/// (TF Model Garden / Model Maker BERT with `use_one_hot_embeddings`), no metadata
/// (`tiny-onehot-mean-{f32,int8}.tflite`, `make_tflite_masked_minilm.py tiny-onehot`).
/// TensorFlow's converter rewrites the one-hot product into EMBEDDING_LOOKUP(segment ids,
/// table), which the walk reads as the segment look-up; with `--tokenizer` (the tiny vocab's
/// WordPiece tokenizer) the files convert and match LiteRT on the padded, masked input.
#[test]
fn one_hot_segment_form_converts_and_matches_the_interpreter() {
    use octet_tflite::{bert, model::op, TfliteModel};
    let dir = repo_root().join("tests/fixtures/tflite_masked");
    let fixture: TinyFixture =
        serde_json::from_str(&std::fs::read_to_string(dir.join("tiny-onehot.json")).unwrap()).unwrap();
    let vocab: Vec<String> = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        .iter()
        .map(|s| s.to_string())
        .chain((0..59).map(|i| format!("w{i}")))
        .collect();
    let tokenizer = scratch_dir().join("tflite-masked-tiny-onehot-tokenizer.json");
    let json =
        octet_tflite::wordpiece::tokenizer_json((vocab.join("\n") + "\n").as_bytes(), true, "vocab.txt").unwrap();
    std::fs::write(&tokenizer, json).unwrap();
    assert_eq!(fixture.models.len(), 2);
    for (key, model) in &fixture.models {
        let input = dir.join(&model.file);
        let m = TfliteModel::open(&input).unwrap();
        assert!(
            m.operators.iter().any(|o| o.code == op::EMBEDDING_LOOKUP),
            "{key}: the rewritten one-hot product"
        );
        assert!(!m.operators.iter().any(|o| o.code == op::ONE_HOT), "{key}");
        let g = bert::recognise(&m).unwrap_or_else(|e| panic!("{key}: {e}"));
        let segments = g.inputs.segments.expect("segment ids found");
        assert!(m.tensors[segments].name.contains("input_type_ids"), "{key}");
        assert_eq!(g.token_type.len(), 1, "{key}: the token-type table");
        convert_and_match(key, &input, Some(&tokenizer), &fixture, model);
    }
}
