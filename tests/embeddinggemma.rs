//! EmbeddingGemma-300m, the real model, against sentence-transformers: f32 must match the
//! committed reference embeddings (with the `STS`, `query` and `document` prompts, texts up to
//! the 2048-token window, so the sliding window matters), the Matryoshka outputs must match
//! the reference's truncated vectors, and int8 must stay close to f32.
//! The model (1.15 GB) is fetched by `scripts/fetch-embeddinggemma.sh` if it is not cached:
//! never skipped.

use octet::{EmbedOptions, Embedder, Truncation};
use octet_tests::*;
use std::sync::OnceLock;

fn embedder(recipe: &str) -> &'static Embedder {
    static F32: OnceLock<Embedder> = OnceLock::new();
    static INT8: OnceLock<Embedder> = OnceLock::new();
    let cell = match recipe {
        "f32" => &F32,
        "int8" => &INT8,
        other => panic!("no cached embedder for {other}"),
    };
    cell.get_or_init(|| Embedder::open(convert(embeddinggemma_source(), "embeddinggemma", recipe)).expect("open converted EmbeddingGemma"))
}

/// Embeds every fixture text with its own prompt (or none), in input order.
fn embed_fixture(e: &Embedder, fixture: &Fixture, dims: Option<usize>) -> Vec<Vec<f32>> {
    fixture
        .texts
        .iter()
        .map(|t| {
            let options = EmbedOptions { prompt: Some(t.prompt_name.clone().unwrap_or_default()), dims, ..EmbedOptions::default() };
            e.embed_with(&[&t.text], &options).unwrap().remove(0)
        })
        .collect()
}

#[test]
fn tokenizer_matches_sentence_transformers_ids() {
    let fixture = load_fixture("embeddinggemma");
    let e = embedder("f32");
    let tokenizer = octet::tokenize::TextTokenizer::from_json(e.file().blob(&e.file().meta().tokenizer).unwrap(), e.window()).unwrap();
    let prompts = &e.file().meta().prompts;
    for (i, t) in fixture.texts.iter().enumerate() {
        let prompt = t.prompt_name.as_ref().map(|name| prompts[name].clone()).unwrap_or_default();
        let tokens = tokenizer.encode(i, &format!("{prompt}{}", t.text), Truncation::Truncate).unwrap();
        assert_eq!(tokens.ids, t.token_ids, "token ids of {} ({:?})", t.id, t.text);
        assert_eq!(tokens.truncated, t.truncated, "truncation flag of {}", t.id);
    }
}

#[test]
fn f32_and_matryoshka_match_sentence_transformers() {
    let fixture = load_fixture("embeddinggemma");
    assert!(fixture.texts.len() >= 48);
    assert!(fixture.texts.iter().any(|t| t.token_ids.len() > 1500), "the fixtures need a text over 1500 tokens");
    let e = embedder("f32");
    let full = embed_fixture(e, &fixture, None);
    let (mut worst_cos, mut worst_diff) = (1f64, 0f32);
    for (t, v) in fixture.texts.iter().zip(&full) {
        let (c, d) = (cosine(v, &t.embedding), max_abs_diff(v, &t.embedding));
        assert!(c >= 0.9999, "{} ({}, {} tokens): cosine {c}", t.id, t.category, t.token_ids.len());
        worst_cos = worst_cos.min(c);
        worst_diff = worst_diff.max(d);
    }
    eprintln!("EmbeddingGemma f32 vs sentence-transformers over {} texts: min cosine {worst_cos:.7}, max abs diff {worst_diff:.2e}", full.len());
    for dims in e.file().meta().matryoshka_dims.clone() {
        let got = embed_fixture(e, &fixture, Some(dims));
        let mut worst = 1f64;
        for (t, v) in fixture.texts.iter().zip(&got) {
            let want = &t.embeddings_truncated[&dims.to_string()];
            assert_eq!(v.len(), dims);
            let c = cosine(v, want);
            assert!(c >= 0.9999, "{} at {dims} dims: cosine {c}", t.id);
            let norm: f32 = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            assert!((norm - 1.0).abs() < 1e-5, "{} at {dims} dims: norm {norm}", t.id);
            worst = worst.min(c);
        }
        eprintln!("EmbeddingGemma f32 Matryoshka {dims} dims: min cosine {worst:.7}");
    }
}

#[test]
fn int8_stays_close_to_f32() {
    let fixture = load_fixture("embeddinggemma");
    let reference = embed_fixture(embedder("f32"), &fixture, None);
    let got = embed_fixture(embedder("int8"), &fixture, None);
    let cos: Vec<f64> = got.iter().zip(&reference).map(|(a, b)| cosine(a, b)).collect();
    let mean = cos.iter().sum::<f64>() / cos.len() as f64;
    let (worst, min) = cos.iter().enumerate().fold((0, 1.0), |acc, (i, &c)| if c < acc.1 { (i, c) } else { acc });
    eprintln!("EmbeddingGemma int8 vs f32 over {} texts: mean cosine {mean:.5}, min {min:.5} ({})", cos.len(), fixture.texts[worst].id);
    assert!(mean >= 0.999, "mean cosine {mean}");
    assert!(min >= 0.995, "min cosine {min}");
}
