//! The stored BPE tokenizer (skeleton JSON plus binary vocabulary and merges, see
//! `octet::tokenize::stored`) against the `tokenizers` crate on the source `tokenizer.json`:
//! EmbeddingGemma's tokenizer is stored in parts and must give the same ids for every text
//! (the fixture texts with and without their prompts, the gensim words and Lee documents, and
//! a few thousand generated strings full of unicode, whitespace runs, emoji, code and added
//! tokens); MiniLM's WordPiece tokenizer stays whole. Real models, fetched if not cached:
//! never skipped.

use octet::format::{ModelFile, ModelMeta, ModelWriter};
use octet::tokenize::stored::LoadPath;
use octet::tokenize::TextTokenizer;
use octet::Truncation;
use octet_kernels::test_rng::TestRng;
use octet_tests::*;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use tokenizers::Tokenizer;

/// Wide enough that no text is truncated, so the ids compare in full.
const NO_WINDOW: usize = 1 << 24;

/// A model file holding only the tokenizer of `source`, stored as the converter stores it.
fn tokenizer_file(source: &Path) -> Arc<ModelFile> {
    let json = std::fs::read(source.join("tokenizer.json")).expect("tokenizer.json");
    let meta: ModelMeta = serde_json::from_value(serde_json::json!({
        "architecture": "gemma3", "config": {}, "tokenizer": "tokenizer.json",
        "pooling": {"mode": "mean", "normalize": true}, "max_seq_len": 2048,
        "quantization": {"recipe": "f32"}, "provenance": {"converter": "tests/tokenizer_fast.rs", "sources": []}
    }))
    .expect("a minimal meta");
    let mut writer = ModelWriter::new(meta);
    octet_tools::convert::tokenizer::add(&mut writer, "tokenizer.json", &json).expect("store the tokenizer");
    Arc::new(ModelFile::from_bytes(writer.to_bytes().expect("write")).expect("read back"))
}

/// EmbeddingGemma's tokenizer stored in a model file, built once per test process (the
/// converter's check loads the whole tokenizer.json, about 2 s).
fn gemma_file() -> &'static Arc<ModelFile> {
    static FILE: OnceLock<Arc<ModelFile>> = OnceLock::new();
    FILE.get_or_init(|| tokenizer_file(embeddinggemma_source()))
}

/// The source's `tokenizer.json` loaded by the `tokenizers` crate, without truncation or padding.
fn reference(source: &Path) -> Tokenizer {
    let mut tokenizer =
        Tokenizer::from_file(source.join("tokenizer.json")).expect("tokenizers loads the source tokenizer.json");
    tokenizer.with_truncation(None).expect("no truncation");
    tokenizer.with_padding(None);
    tokenizer
}

/// Compares the ids of every text; panics naming the first text that differs.
fn assert_same_ids(what: &str, reference: &Tokenizer, fast: &TextTokenizer, texts: &[String]) {
    for (i, text) in texts.iter().enumerate() {
        let expected = reference
            .encode_fast(text.as_str(), true)
            .expect("reference encodes")
            .get_ids()
            .to_vec();
        let got = fast
            .encode(i, text, Truncation::Truncate)
            .expect("stored tokenizer encodes");
        assert!(!got.truncated, "{what} {i} was truncated");
        assert_eq!(got.ids, expected, "{what} {i}: {text:?}");
    }
    eprintln!("{what}: {} texts, same ids", texts.len());
}

/// The fixture texts, each alone and after its prompt.
fn fixture_texts(name: &str) -> Vec<String> {
    let fixture = load_fixture(name);
    let mut texts = Vec::new();
    for t in &fixture.texts {
        texts.push(t.text.clone());
        if let Some(prompt) = &t.prompt {
            texts.push(format!("{prompt}{}", t.text));
        }
    }
    texts
}

/// The gensim words (wordsim353, simlex999) and the Lee corpus documents, one text each.
fn gensim_texts() -> Vec<String> {
    let dir = gensim_data();
    let mut texts = Vec::new();
    for file in ["wordsim353.tsv", "simlex999.txt"] {
        let content = std::fs::read_to_string(dir.join(file)).expect("word pairs");
        for line in content.lines().filter(|l| !l.starts_with('#')) {
            texts.extend(line.split('\t').take(2).map(str::to_string));
        }
    }
    for file in ["lee.cor", "lee_background.cor"] {
        // ISO-8859-1: every byte is the code point of the same value.
        let bytes = std::fs::read(dir.join(file)).expect("Lee corpus");
        let text: String = bytes.iter().map(|&b| b as char).collect();
        texts.extend(text.split('\n').map(str::to_string));
    }
    texts
}

/// Pieces the generated strings are built from: added and special tokens (whole, partial,
/// touching words), whitespace runs, scripts, emoji sequences, code, rare characters that fall
/// back to bytes.
const PIECES: &[&str] = &[
    "<start_of_turn>",
    "<end_of_turn>",
    "<unused12>",
    "<unused6241>",
    "<image_soft_token>",
    "<bos>",
    "<eos>",
    "<pad>",
    "<mask>",
    "<unk>",
    "<start_of_image>",
    "<end_of_image>",
    "<start_of_",
    "turn>",
    "<unused",
    "<",
    ">",
    "</s>",
    " ",
    "  ",
    "   ",
    "\t",
    "\t\t",
    "\n",
    "\n\n",
    "\r\n",
    "\u{a0}",
    "\u{3000}",
    "\u{200b}",
    "\u{2581}",
    "\u{2581}\u{2581}",
    "the",
    "The",
    " the",
    "hello",
    " world",
    "tokenization",
    "Straße",
    "naïve",
    "café",
    "CAFÉ",
    "e\u{301}",
    "ﬁ",
    "日本語のテキスト",
    "中文分词",
    "한국어",
    "Ελληνικά",
    "русский язык",
    "العربية",
    "עברית",
    "हिन्दी",
    "தமிழ்",
    "ไทย",
    "😀",
    "👩‍👩‍👧‍👦",
    "🏳️‍🌈",
    "👍🏽",
    "🇫🇷",
    "❤️",
    "\u{fe0f}",
    "∑∫√∞",
    "½",
    "①",
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢",
    "𓀀",
    "\u{10ffff}",
    "\u{e000}",
    "fn main() { println!(\"{}\", x); }",
    "def f(x):\n    return x**2",
    "if (a && b || !c) {}",
    "x->y",
    "a::b",
    "<div class=\"a\">",
    "SELECT * FROM t;",
    "#include <stdio.h>",
    "https://example.com/a?b=c&d=e",
    "foo_bar_baz",
    "camelCaseName",
    "0",
    "12345",
    "3.14159",
    "1e-9",
    "-42",
    "$100",
    "100%",
    "...",
    "!!!",
    "???",
    "—",
    "–",
    "«»",
    "“”",
];

/// `count` strings: pieces joined at random, random code points, and runs of random
/// vocabulary entries (with the SentencePiece space mark turned back into spaces).
fn generated_texts(count: usize, vocab: &[String]) -> Vec<String> {
    let mut rng = TestRng(0x9e37_79b9_7f4a_7c15);
    let mut texts = Vec::with_capacity(count);
    for i in 0..count {
        let mut text = String::new();
        let parts = 1 + rng.below(12);
        for _ in 0..parts {
            match (i % 3, rng.below(4)) {
                (0, _) | (_, 0) => text.push_str(PIECES[rng.below(PIECES.len())]),
                (1, _) => {
                    let c = loop {
                        if let Some(c) = char::from_u32(rng.below(0x3_0000) as u32) {
                            break c;
                        }
                    };
                    text.push(c);
                }
                _ => text.push_str(&vocab[rng.below(vocab.len())].replace('\u{2581}', " ")),
            }
        }
        texts.push(text);
    }
    texts
}

#[test]
fn embeddinggemma_stored_tokenizer_gives_the_same_ids() {
    let source = embeddinggemma_source();
    let file = gemma_file();
    for name in ["tokenizer.vocab", "tokenizer.vocab.offsets", "tokenizer.merges"] {
        assert!(
            file.contains(name),
            "EmbeddingGemma's BPE tokenizer is stored in parts: no {name}"
        );
    }
    assert!(
        file.blob("tokenizer.json").unwrap().len() < 2 << 20,
        "the skeleton stays small"
    );
    let fast = TextTokenizer::from_file(file, NO_WINDOW).expect("load the stored tokenizer");
    assert_eq!(
        fast.load_path(),
        LoadPath::Mapped,
        "the mapped BPE, not the builders or the fallback"
    );
    let reference = reference(source);
    assert_eq!(fast.vocab_size(false), reference.get_vocab_size(false));
    assert_eq!(fast.vocab_size(true), reference.get_vocab_size(true));

    // The whole tokenizer, as the tokenizers crate serializes it, is the same.
    let whole = TextTokenizer::from_json(&std::fs::read(source.join("tokenizer.json")).unwrap(), NO_WINDOW).unwrap();
    assert!(
        fast.canonical_json().unwrap() == whole.canonical_json().unwrap(),
        "canonical JSON differs"
    );

    assert_same_ids("fixture text", &reference, &fast, &fixture_texts("embeddinggemma"));
    assert_same_ids("gensim text", &reference, &fast, &gensim_texts());
    let mut vocab: Vec<(String, u32)> = reference.get_vocab(false).into_iter().collect();
    vocab.sort_by_key(|&(_, id)| id);
    let vocab: Vec<String> = vocab.into_iter().map(|(s, _)| s).collect();
    let generated = generated_texts(4000, &vocab);
    assert_same_ids("generated text", &reference, &fast, &generated);

    // The added tokens keep their ids, including the one past the embedding table.
    let ids = fast
        .encode(
            0,
            "<start_of_turn>user<unused12><image_soft_token>",
            Truncation::Truncate,
        )
        .unwrap()
        .ids;
    assert!(ids.contains(&262_144), "<image_soft_token> is id 262144: {ids:?}");
}

#[test]
fn embeddinggemma_stored_tokenizer_truncates_like_the_whole_one() {
    let source = embeddinggemma_source();
    let fast = TextTokenizer::from_file(gemma_file(), 2048).unwrap();
    let whole = TextTokenizer::from_json(&std::fs::read(source.join("tokenizer.json")).unwrap(), 2048).unwrap();
    for (i, text) in fixture_texts("embeddinggemma").iter().enumerate() {
        let (a, b) = (
            fast.encode(i, text, Truncation::Truncate).unwrap(),
            whole.encode(i, text, Truncation::Truncate).unwrap(),
        );
        assert_eq!(a, b, "text {i}");
    }
}

#[test]
fn a_whole_tokenizer_json_still_loads_from_a_file() {
    // Files converted before the stored layout hold the whole tokenizer.json.
    let json = std::fs::read(embeddinggemma_source().join("tokenizer.json")).unwrap();
    let value: serde_json::Value = serde_json::from_slice(&json).unwrap();
    let meta: ModelMeta = serde_json::from_value(serde_json::json!({
        "architecture": "gemma3", "config": {}, "tokenizer": "tokenizer.json",
        "pooling": {"mode": "mean", "normalize": true}, "max_seq_len": 2048,
        "quantization": {"recipe": "f32"}, "provenance": {"converter": "tests/tokenizer_fast.rs", "sources": []}
    }))
    .unwrap();
    let mut writer = ModelWriter::new(meta);
    writer
        .add_blob("tokenizer.json", &serde_json::to_vec(&value).unwrap())
        .unwrap();
    let file = Arc::new(ModelFile::from_bytes(writer.to_bytes().unwrap()).unwrap());
    let whole = TextTokenizer::from_file(&file, NO_WINDOW).unwrap();
    assert_eq!(whole.load_path(), LoadPath::Json);
    let stored = TextTokenizer::from_file(gemma_file(), NO_WINDOW).unwrap();
    for (i, text) in fixture_texts("embeddinggemma").iter().enumerate() {
        assert_eq!(
            whole.encode(i, text, Truncation::Truncate).unwrap(),
            stored.encode(i, text, Truncation::Truncate).unwrap()
        );
    }
}

#[test]
fn a_skeleton_alone_is_refused_with_a_pointer_to_from_file() {
    let err = TextTokenizer::from_json(gemma_file().blob("tokenizer.json").unwrap(), NO_WINDOW)
        .err()
        .expect("a skeleton is not a tokenizer.json");
    assert!(err.to_string().contains("from_file"), "{err}");
}

#[test]
fn minilm_wordpiece_tokenizer_is_stored_in_parts_and_gives_the_same_ids() {
    let source = minilm_source();
    let file = tokenizer_file(source);
    assert!(file.contains("tokenizer.vocab"), "WordPiece is stored in parts");
    assert!(!file.contains("tokenizer.merges"), "WordPiece has no merges");
    let tokenizer = TextTokenizer::from_file(&file, NO_WINDOW).unwrap();
    assert_eq!(tokenizer.load_path(), LoadPath::Stored);
    let whole = TextTokenizer::from_json(&std::fs::read(source.join("tokenizer.json")).unwrap(), NO_WINDOW).unwrap();
    assert!(
        tokenizer.canonical_json().unwrap() == whole.canonical_json().unwrap(),
        "canonical JSON differs"
    );
    let reference = reference(source);
    assert_eq!(tokenizer.vocab_size(true), reference.get_vocab_size(true));
    assert_same_ids("MiniLM fixture text", &reference, &tokenizer, &fixture_texts("minilm"));
    let mut vocab: Vec<(String, u32)> = reference.get_vocab(false).into_iter().collect();
    vocab.sort_by_key(|&(_, id)| id);
    let vocab: Vec<String> = vocab.into_iter().map(|(s, _)| s).collect();
    assert_same_ids(
        "MiniLM generated text",
        &reference,
        &tokenizer,
        &generated_texts(1000, &vocab),
    );
}
