//! A MediaPipe-style text-embedder file converted WITHOUT `--tokenizer`: the tokenizer comes
//! from the file's TFLite Support metadata (`octet_tflite::metadata`).
//!
//! The file is the int8 TFLite MiniLM (`scripts/fetch-tflite-minilm.sh`) with metadata written
//! by mediapipe 0.10.21's own classes (`metadata_info.BertTokenizerMd`, `MetadataPopulator`):
//! a BERT tokenizer unit naming `vocab.txt`, and MiniLM's `vocab.txt` in the zip archive after
//! the flatbuffer. `scripts/fetch-mediapipe-minilm.sh` builds it and checks its sha256; a
//! missing file is built, and a failed build fails the tests (never a skip).
//!
//! Checked here: the tokenizer octet extracts gives the same ids as MiniLM's `tokenizer.json`
//! (the fixture's `token_ids`) on all fixture texts, through the engine's own tokenizer; and
//! the file converted from its metadata embeds exactly as the same file converted with
//! `--tokenizer`, and matches the LiteRT interpreter's fixture.
//!
//! MediaPipe's TextEmbedder itself cannot run this file, so there is no MediaPipe embedding
//! fixture: its text preprocessor supports BERT models only with three fixed-length inputs
//! (ids, mask, segment_ids); a model with one int32 input is taken for a regex-tokenizer model
//! and fails with "No tokenizer metadata found" (the regex tokenizer unit it looks for on the
//! input tensor). `make_mediapipe_minilm.py embedder` shows that error. The MiniLM here takes
//! one unpadded `input_ids` [1, n], which is what octet's importer recognises.

use octet::tokenize::TextTokenizer;
use octet::{Embedder, Truncation};
use octet_tests::*;
use octet_tools::convert::recipe::Recipe;
use octet_tools::convert::tflite::{convert, TfliteInputs};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

const FILE: &str = "minilm-int8-metadata.tflite";
/// sentence-transformers' window for MiniLM (its `sentence_bert_config.json`).
const ST_WINDOW: usize = 256;

fn mediapipe_file() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let path = fetch("fetch-mediapipe-minilm.sh").join(FILE);
        assert!(
            path.is_file(),
            "{} is missing: run scripts/fetch-mediapipe-minilm.sh",
            path.display()
        );
        path
    })
}

/// The MediaPipe file converted with `tokenizer` (None: from its metadata), recipe f32 (the
/// file's int8 tensors stay int8).
fn converted(tokenizer: Option<&Path>, name: &str) -> PathBuf {
    let out = scratch_dir().join(format!("mediapipe-{name}.octet"));
    let recipe = Recipe::parse("f32", vec![], None).unwrap();
    let inputs = TfliteInputs {
        tokenizer,
        mapping: None,
        exact: false,
    };
    convert(mediapipe_file(), &out, &recipe, &inputs).unwrap_or_else(|e| panic!("convert {name}: {e:#}"));
    out
}

fn from_metadata() -> &'static Embedder {
    static E: OnceLock<Embedder> = OnceLock::new();
    E.get_or_init(|| Embedder::open(converted(None, "metadata")).expect("open the metadata import"))
}

fn from_tokenizer_json() -> &'static Embedder {
    static E: OnceLock<Embedder> = OnceLock::new();
    E.get_or_init(|| {
        let json = minilm_source().join("tokenizer.json");
        Embedder::open(converted(Some(&json), "tokenizer-json")).expect("open the --tokenizer import")
    })
}

#[test]
fn the_metadata_tokenizer_is_stored_and_named() {
    let meta = from_metadata().file().meta();
    let tokenizer = &meta.provenance.sources[1];
    assert_eq!(tokenizer.file, format!("{FILE}:vocab.txt"));
    // The input length is dynamic and the metadata has no window: the position table's.
    assert_eq!(meta.max_seq_len, 512);
    // The user's --tokenizer wins over the metadata.
    let meta = from_tokenizer_json().file().meta();
    assert_eq!(meta.provenance.sources[1].file, "tokenizer.json");
    assert_eq!(meta.max_seq_len, ST_WINDOW);
}

/// The engine's tokenizer, loaded from the converted file, against the fixture's ids (those of
/// MiniLM's tokenizer.json through sentence-transformers, cut at 256 tokens).
#[test]
fn the_extracted_tokenizer_gives_the_minilm_ids() {
    let fixture = load_fixture("minilm");
    let tokenizer = TextTokenizer::from_file(from_metadata().file(), ST_WINDOW).expect("load the stored tokenizer");
    let mut same = 0;
    for (i, t) in fixture.texts.iter().enumerate() {
        let got = tokenizer.encode(i, &t.text, Truncation::Truncate).unwrap();
        if got.ids == t.token_ids {
            same += 1;
        } else {
            eprintln!("{}: ids differ\n  got  {:?}\n  want {:?}", t.id, got.ids, t.token_ids);
        }
    }
    eprintln!(
        "extracted tokenizer: {same} of {} fixture texts give the fixture's ids",
        fixture.texts.len()
    );
    assert_eq!(same, fixture.texts.len());
}

/// Texts within sentence-transformers' window embed bit for bit as with `--tokenizer` (same
/// weights, same ids); longer ones differ only because the metadata import's window is 512.
#[test]
fn the_metadata_import_embeds_as_the_tokenizer_json_import() {
    let fixture = load_fixture("minilm");
    let texts: Vec<&str> = fixture.texts.iter().map(|t| t.text.as_str()).collect();
    let a = from_metadata().embed(&texts).unwrap();
    let b = from_tokenizer_json().embed(&texts).unwrap();
    let (mut within, mut worst) = (0, 0f32);
    let mut min_cos_long = 1f64;
    for (t, (x, y)) in fixture.texts.iter().zip(a.iter().zip(&b)) {
        if !t.truncated {
            within += 1;
            worst = worst.max(max_abs_diff(x, y));
        } else {
            min_cos_long = min_cos_long.min(cosine(x, y));
        }
    }
    eprintln!(
        "metadata vs --tokenizer import: {within} texts within {ST_WINDOW} tokens, max abs diff {worst:e}; \
         {} longer texts (window 512 vs 256), min cosine {min_cos_long:.4}",
        texts.len() - within
    );
    assert!(within >= 64, "only {within} fixture texts fit the window");
    assert_eq!(worst, 0.0, "the two imports differ on texts within the window");
}

/// The metadata import against the LiteRT interpreter's embeddings of the same weights
/// (`tests/fixtures/tflite/reference.json`, file `minilm-int8.tflite`), on the texts within the
/// window, with the bounds of `tests/tflite.rs`.
#[test]
fn the_metadata_import_matches_the_interpreter() {
    let path = repo_root().join("tests/fixtures/tflite/reference.json");
    let reference: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let want: Vec<Vec<f32>> = serde_json::from_value(reference["models"]["int8"]["embeddings"].clone()).unwrap();
    let ids: Vec<String> = serde_json::from_value(
        reference["texts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["id"].clone())
            .collect(),
    )
    .unwrap();
    let fixture = load_fixture("minilm");
    let (mut got, mut expected) = (Vec::new(), Vec::new());
    for (id, w) in ids.iter().zip(want) {
        let t = fixture.texts.iter().find(|t| &t.id == id).expect("fixture text");
        if !t.truncated {
            got.push(from_metadata().embed(&[t.text.as_str()]).unwrap().remove(0));
            expected.push(w);
        }
    }
    let cos: Vec<f64> = got.iter().zip(&expected).map(|(a, b)| cosine(a, b)).collect();
    let mean = cos.iter().sum::<f64>() / cos.len() as f64;
    let min = cos.iter().cloned().fold(1.0, f64::min);
    eprintln!(
        "metadata import vs LiteRT interpreter over {} texts: mean cosine {mean:.6}, min {min:.6}",
        cos.len()
    );
    assert!(mean >= 0.9985 && min >= 0.99, "mean {mean}, min {min}");
}
