//! TFLite import: all-MiniLM-L6-v2 as TensorFlow's converter writes it (float32 and
//! dynamic-range int8, built by `scripts/fetch-tflite-minilm.sh`), converted by `octet convert`
//! and compared with the LiteRT interpreter's embeddings of the same files
//! (`tests/fixtures/tflite/reference.json`, LiteRT's builtin kernels) and with sentence-transformers fp32
//! (`tests/fixtures/minilm/reference.json`). Never skipped: the files are built if missing.

use octet::Embedder;
use octet_tests::*;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

#[derive(Deserialize)]
struct TfliteModelRef {
    file: String,
    sha256: String,
    embeddings: Vec<Vec<f32>>,
    xnnpack_vs_builtin: CosineSummary,
}

#[derive(Deserialize)]
struct CosineSummary {
    mean_cosine: f64,
    min_cosine: f64,
}

#[derive(Deserialize)]
struct TfliteText {
    id: String,
    token_ids: Vec<u32>,
}

#[derive(Deserialize)]
struct TfliteFixture {
    texts: Vec<TfliteText>,
    models: BTreeMap<String, TfliteModelRef>,
}

fn fixture() -> &'static TfliteFixture {
    static F: OnceLock<TfliteFixture> = OnceLock::new();
    F.get_or_init(|| {
        let path = repo_root().join("tests/fixtures/tflite/reference.json");
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
            .unwrap_or_else(|e| panic!("bad fixture {}: {e}", path.display()))
    })
}

fn tflite_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| fetch("fetch-tflite-minilm.sh"))
}

/// Converts the TFLite file of `kind` (`f32`, `int8`) with `recipe`, optionally through a mapping file.
fn convert_tflite(kind: &str, recipe: &str, mapping: Option<&Path>) -> PathBuf {
    convert_tflite_with(kind, recipe, mapping, false)
}

/// [`convert_tflite`], with `--tflite-exact` when `exact`.
fn convert_tflite_with(kind: &str, recipe: &str, mapping: Option<&Path>, exact: bool) -> PathBuf {
    let input = tflite_dir().join(&fixture().models[kind].file);
    let out = scratch_dir().join(format!("tflite-{kind}-{recipe}-{}-{exact}.octet", mapping.is_some()));
    let recipe = octet_tools::convert::recipe::Recipe::parse(recipe, vec![], None).unwrap();
    let tokenizer = minilm_source().join("tokenizer.json");
    let inputs = octet_tools::convert::tflite::TfliteInputs {
        tokenizer: Some(&tokenizer),
        mapping,
        exact,
    };
    octet_tools::convert::tflite::convert(&input, &out, &recipe, &inputs)
        .unwrap_or_else(|e| panic!("convert {}: {e:#}", input.display()));
    out
}

fn embedder(kind: &str) -> &'static Embedder {
    static F32: OnceLock<Embedder> = OnceLock::new();
    static INT8: OnceLock<Embedder> = OnceLock::new();
    let cell = if kind == "f32" { &F32 } else { &INT8 };
    // The f32 recipe: float tensors stay f32, the file's int8 tensors stay int8.
    cell.get_or_init(|| Embedder::open(convert_tflite(kind, "f32", None)).expect("open the converted TFLite model"))
}

/// The fixture texts (the MiniLM fixture's, with the token ids the interpreter was fed).
fn texts() -> Vec<String> {
    let minilm = load_fixture("minilm");
    let by_id: BTreeMap<&str, &FixtureText> = minilm.texts.iter().map(|t| (t.id.as_str(), t)).collect();
    fixture()
        .texts
        .iter()
        .map(|t| {
            let m = by_id[t.id.as_str()];
            assert_eq!(
                m.token_ids, t.token_ids,
                "{}: the TFLite fixture was made from other token ids",
                t.id
            );
            m.text.clone()
        })
        .collect()
}

fn sentence_transformers() -> Vec<Vec<f32>> {
    load_fixture("minilm").texts.into_iter().map(|t| t.embedding).collect()
}

#[test]
fn imported_files_are_the_fixture_files() {
    for kind in ["f32", "int8"] {
        let e = embedder(kind);
        let meta = e.file().meta();
        let source = &meta.provenance.sources[0];
        assert_eq!(
            source.sha256,
            fixture().models[kind].sha256,
            "{kind}: the built .tflite differs from the one the fixture was made with"
        );
        assert_eq!(meta.max_seq_len, 256, "window from sentence_bert_config.json");
        assert_eq!(
            meta.config["folded_norms"], true,
            "the converter folds LayerNorm gamma/beta into the projections"
        );
    }
}

#[test]
fn int8_import_matches_the_interpreter() {
    let texts = texts();
    assert!(texts.len() >= 64);
    let got = embedder("int8").embed(&texts).unwrap();
    // Every FULLY_CONNECTED computes what the interpreter's hybrid kernel computes, bit for bit,
    // given the same input (octet_kernels::int8::asymmetric: the f32 row scale, the rounded
    // x / scale plus the zero point; then bias + f32(dot - zero point x column sum) x (row
    // scale x column scale)). But the model is chaotic at the float level: one-ulp differences
    // in LayerNorm, softmax or GELU flip activation codes, and the flips grow through six
    // layers. LiteRT's own XNNPACK delegate differs from its builtin kernels as much (fixture:
    // mean 0.9996, min 0.9949). Measured here: mean 0.99950, min 0.99387 (before the
    // quantization matched bit for bit: 0.99934, 0.99684). The 0.9999 needs a replay of
    // TFLite's float ops bit for bit: `--tflite-exact`, tested below.
    let (mean, min, _) = compare_embeddings(
        "TFLite int8 import vs LiteRT interpreter",
        &got,
        &fixture().models["int8"].embeddings,
    );
    let xnn = &fixture().models["int8"].xnnpack_vs_builtin;
    eprintln!(
        "  (LiteRT's XNNPACK delegate vs its builtin kernels: mean cosine {:.6}, min {:.6})",
        xnn.mean_cosine, xnn.min_cosine
    );
    // Bounds with room for the ISA: the scalar kernels measured mean 0.99925, min 0.99520.
    assert!(mean >= 0.9985 && min >= 0.99, "min cosine {min} (mean {mean})");
    let (mean, min, _) = compare_embeddings(
        "TFLite int8 import vs sentence-transformers fp32",
        &got,
        &sentence_transformers(),
    );
    assert!(mean >= 0.995 && min >= 0.98, "mean {mean}, min {min}");
}

/// `--tflite-exact`: LayerNorm, attention and GELU as LiteRT's builtin kernels compute them, so
/// every activation row gets the interpreter's codes and the flips above disappear: the issue's
/// target (mean >= 0.9999, min >= 0.999) holds.
#[test]
fn int8_exact_import_matches_the_interpreter() {
    let e = Embedder::open(convert_tflite_with("int8", "f32", None, true)).expect("open the exact conversion");
    assert_eq!(e.file().meta().config["tflite_exact"], true);
    let got = e.embed(&texts()).unwrap();
    let (mean, min, _) = compare_embeddings(
        "TFLite int8 --tflite-exact vs LiteRT interpreter",
        &got,
        &fixture().models["int8"].embeddings,
    );
    assert!(mean >= 0.9999 && min >= 0.999, "mean {mean}, min {min}");
}

#[test]
fn f32_import_matches_the_interpreter() {
    let texts = texts();
    let got = embedder("f32").embed(&texts).unwrap();
    let (_, min, diff) = compare_embeddings(
        "TFLite f32 import vs LiteRT interpreter",
        &got,
        &fixture().models["f32"].embeddings,
    );
    assert!(min >= 0.99999 && diff <= 1e-4, "min cosine {min}, max abs diff {diff}");
    let (_, min, _) = compare_embeddings(
        "TFLite f32 import vs sentence-transformers fp32",
        &got,
        &sentence_transformers(),
    );
    assert!(min >= 0.99999, "min cosine {min}");
}

/// A `--tflite-map` file naming every tensor by index (as written here from the recognised
/// graph) converts to the same model as the graph walk.
#[test]
fn a_mapping_file_gives_the_same_model() {
    use octet_tflite::{bert, TfliteModel};
    let input = tflite_dir().join(&fixture().models["int8"].file);
    let model = TfliteModel::open(&input).unwrap();
    let g = bert::recognise(&model).unwrap();
    let mut tensors = serde_json::Map::new();
    let mut name = |t: usize, engine: String| {
        tensors.insert(t.to_string(), serde_json::Value::String(engine));
    };
    name(g.word, "embeddings.word".into());
    name(g.position.unwrap(), "embeddings.position".into());
    name(g.token_type[0], "embeddings.token_type".into());
    let norm = |name: &mut dyn FnMut(usize, String), n: &bert::NormRef, p: &str| {
        name(n.weight, format!("{p}.weight"));
        name(n.bias, format!("{p}.bias"));
    };
    let linear = |name: &mut dyn FnMut(usize, String), l: &bert::LinearRef, p: &str| {
        name(l.weight, format!("{p}.weight"));
        if let Some(b) = l.bias {
            name(b, format!("{p}.bias"));
        }
    };
    norm(&mut name, &g.embeddings_norm, "embeddings.norm");
    for (i, l) in g.layers.iter().enumerate() {
        let p = format!("layers.{i}");
        for (lin, part) in [
            (&l.query, "attention.query"),
            (&l.key, "attention.key"),
            (&l.value, "attention.value"),
            (&l.output, "attention.output"),
            (&l.up, "ffn.up"),
            (&l.down, "ffn.down"),
        ] {
            linear(&mut name, lin, &format!("{p}.{part}"));
        }
        norm(&mut name, &l.attention_norm, &format!("{p}.attention.norm"));
        norm(&mut name, &l.ffn_norm, &format!("{p}.ffn.norm"));
    }
    let map = serde_json::json!({
        "tensors": tensors,
        "config": {"num_attention_heads": g.heads, "layer_norm_eps": g.eps, "hidden_act": "gelu",
                   "folded_norms": g.folded_norms, "asymmetric_activations": g.asymmetric_inputs, "normalize": true},
    });
    let map_path = scratch_dir().join("tflite-map.json");
    std::fs::write(&map_path, serde_json::to_vec_pretty(&map).unwrap()).unwrap();
    let mapped = Embedder::open(convert_tflite("int8", "f32", Some(&map_path))).unwrap();
    let texts = texts();
    let (a, b) = (
        mapped.embed(&texts[..8]).unwrap(),
        embedder("int8").embed(&texts[..8]).unwrap(),
    );
    assert_eq!(a, b, "the mapped model differs from the recognised one");
}

/// `octet inspect` on both files (the inventory behind it): every tensor read, the int8 file's
/// int8 constants quantized with positive scales, the same [1, ?] input and [1, 384] output.
#[test]
fn inspect_reads_both_files() {
    use octet_tools::inventory::{self, Format, Quantization};
    for kind in ["f32", "int8"] {
        let path = tflite_dir().join(&fixture().models[kind].file);
        let inv = inventory::read(&path).unwrap();
        assert_eq!(inv.format, Format::Tflite);
        assert_eq!(inv.tensors.len(), 111, "{kind}: constant tensors");
        assert_eq!(inv.inputs.len(), 1, "{kind}: one input (token ids)");
        assert_eq!(inv.outputs.len(), 1, "{kind}: one output (the embedding)");
        assert!(
            inv.outputs[0].describe().contains("384"),
            "{kind}: output {}",
            inv.outputs[0].describe()
        );
        assert!(
            inv.operators.iter().any(|(op, n)| op == "GATHER" && *n == 1),
            "{kind}: one GATHER"
        );
        assert!(
            inv.operators.iter().any(|(op, n)| op == "FULLY_CONNECTED" && *n >= 36),
            "{kind}: {:?}",
            inv.operators
        );
        let int8: Vec<_> = inv.tensors.iter().filter(|t| t.dtype == "INT8").collect();
        if kind == "f32" {
            assert!(int8.is_empty());
        } else {
            // 36 encoder weights (6 layers x Q, K, V, O, up, down) and the token table.
            assert_eq!(int8.len(), 37);
            for t in int8 {
                match &t.quantization {
                    Quantization::PerTensor { scale, .. } => assert!(*scale > 0.0, "{}", t.name),
                    Quantization::PerChannel {
                        min_scale, channels, ..
                    } => assert!(*min_scale > 0.0 && *channels > 0, "{}", t.name),
                    Quantization::None => panic!("{} is int8 without quantization", t.name),
                }
            }
        }
        let sum: u64 = inv.totals_by_dtype().iter().map(|t| t.bytes).sum();
        assert_eq!(sum, inv.tensor_bytes());
        assert!(inv.tensor_bytes() <= inv.file_bytes);
    }
}

/// `octet diff` of the f32 and dynamic-range int8 files: what uncovered the browser's change.
/// Same counts, same inputs and outputs, and exactly 37 weight tensors changed, each from
/// FLOAT32 to INT8, saving about three quarters of their bytes.
#[test]
fn diff_of_f32_and_int8_finds_the_quantized_tensors() {
    use octet_tools::inventory::{self, diff};
    let a = inventory::read(&tflite_dir().join(&fixture().models["f32"].file)).unwrap();
    let b = inventory::read(&tflite_dir().join(&fixture().models["int8"].file)).unwrap();
    let d = diff::diff(&a, &b);
    assert_eq!(d.tensors, (111, 111));
    assert!(d.same_inputs && d.same_outputs);
    assert_eq!(d.matched, 111);
    assert!(d.only_in_a.is_empty() && d.only_in_b.is_empty());
    // Besides the 37 weights, TensorFlow numbers its scalar `arith.constant*` tensors anew in
    // each file, so a few same-named scalars differ in dtype: bytes, not weights.
    let (weights, scalars): (Vec<_>, Vec<_>) = d.changed.iter().partition(|c| c.a.bytes > 1024);
    assert_eq!(weights.len(), 37);
    assert!(
        scalars
            .iter()
            .all(|c| c.a.name.starts_with("arith.constant") && c.b.bytes <= 1024),
        "{scalars:?}"
    );
    assert_eq!(d.unchanged + d.changed.len(), 111);
    let mut saved = 0i64;
    for c in &weights {
        assert_eq!(
            (c.a.dtype.as_str(), c.b.dtype.as_str()),
            ("FLOAT32", "INT8"),
            "{}",
            c.a.name
        );
        assert_eq!(c.a.shape, c.b.shape, "{}", c.a.name);
        assert!(
            c.saved() as u64 >= c.a.bytes * 3 / 4 - 4096,
            "{}: saved {} of {}",
            c.a.name,
            c.saved(),
            c.a.bytes
        );
        saved += c.saved();
    }
    let file_change = d.file_bytes.0 as i64 - d.file_bytes.1 as i64;
    assert!(
        (saved - file_change).abs() < 1 << 20,
        "tensors save {saved} B, the file shrank by {file_change} B"
    );
    eprintln!(
        "f32 -> int8 TFLite: 37 tensors changed, {:.3} MB saved",
        saved as f64 / 1e6
    );
}
