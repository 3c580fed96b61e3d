//! all-MiniLM-L6-v2, the real model, against sentence-transformers: f32 must match the
//! committed reference embeddings, int8 must stay close to f32, the int8 file must be small,
//! and the embedder must be deterministic across batches, threads and concurrent callers.
//! The model is fetched by `scripts/fetch-minilm.sh` if it is not cached: never skipped.

use octet::{EmbedOptions, Embedder, Truncation};
use octet_tests::*;
use std::sync::OnceLock;

fn embedder(recipe: &str) -> &'static Embedder {
    static F32: OnceLock<Embedder> = OnceLock::new();
    static INT8: OnceLock<Embedder> = OnceLock::new();
    static INT8_EMB: OnceLock<Embedder> = OnceLock::new();
    let cell = match recipe {
        "f32" => &F32,
        "int8" => &INT8,
        _ => &INT8_EMB,
    };
    cell.get_or_init(|| Embedder::open(convert(minilm_source(), "minilm", recipe)).expect("open converted MiniLM"))
}

fn texts() -> Vec<String> {
    load_fixture("minilm").texts.into_iter().map(|t| t.text).collect()
}

#[test]
fn tokenizer_matches_sentence_transformers_ids() {
    let fixture = load_fixture("minilm");
    let e = embedder("f32");
    let tokenizer = octet::tokenize::TextTokenizer::from_file(e.file(), e.window()).unwrap();
    for (i, t) in fixture.texts.iter().enumerate() {
        let tokens = tokenizer.encode(i, &t.text, Truncation::Truncate).unwrap();
        assert_eq!(tokens.ids, t.token_ids, "token ids of {} ({:?})", t.id, t.text);
        assert_eq!(tokens.truncated, t.truncated, "truncation flag of {}", t.id);
    }
}

#[test]
fn f32_matches_sentence_transformers() {
    let fixture = load_fixture("minilm");
    assert!(fixture.texts.len() >= 64);
    let got = embedder("f32").embed(&texts()).unwrap();
    let mut worst_cos = 1f64;
    let mut worst_diff = 0f32;
    for (t, v) in fixture.texts.iter().zip(&got) {
        let (c, d) = (cosine(v, &t.embedding), max_abs_diff(v, &t.embedding));
        assert!(c >= 0.99999, "{} ({}): cosine {c}", t.id, t.category);
        assert!(d <= 1e-4, "{} ({}): max abs diff {d}", t.id, t.category);
        worst_cos = worst_cos.min(c);
        worst_diff = worst_diff.max(d);
    }
    eprintln!(
        "MiniLM f32 vs sentence-transformers over {} texts: min cosine {worst_cos:.7}, max abs diff {worst_diff:.2e}",
        got.len()
    );
}

#[test]
fn int8_stays_close_to_f32() {
    let texts = texts();
    let reference = embedder("f32").embed(&texts).unwrap();
    for recipe in ["int8", "int8-embeddings"] {
        let got = embedder(recipe).embed(&texts).unwrap();
        let cos: Vec<f64> = got.iter().zip(&reference).map(|(a, b)| cosine(a, b)).collect();
        let mean = cos.iter().sum::<f64>() / cos.len() as f64;
        let min = cos.iter().cloned().fold(1.0, f64::min);
        eprintln!(
            "MiniLM {recipe} vs f32 over {} texts: mean cosine {mean:.5}, min {min:.5}",
            cos.len()
        );
        assert!(mean >= 0.995, "{recipe}: mean cosine {mean}");
        assert!(min >= 0.98, "{recipe}: min cosine {min}");
        if recipe == "int8-embeddings" {
            assert!(mean >= 0.9999, "int8-embeddings: mean cosine {mean}");
        }
    }
}

/// The int8 recipe's weights are rounded by GPTQ on the built-in calibration sentences
/// (`--calibration auto` on BERT): on the fixture texts (none of them calibration text) its
/// vectors must be closer to f32 than those of round-to-nearest weights, in mean and at the
/// worst text, and the file must say how it was made.
#[test]
fn calibrated_int8_is_closer_to_f32_than_round_to_nearest() {
    use octet_tools::convert::{calibrate::Calibration, recipe::Recipe};
    let texts = texts();
    let reference = embedder("f32").embed(&texts).unwrap();
    let nearest_path = scratch_dir().join("minilm-int8-nearest.octet");
    if !nearest_path.exists() {
        let recipe = Recipe::parse("int8", vec![], None)
            .unwrap()
            .with_calibration(Calibration::Off);
        octet_tools::convert::convert(minilm_source(), &nearest_path, &recipe, false).expect("convert");
    }
    let nearest = Embedder::open(&nearest_path).unwrap();
    let stats = |e: &Embedder| {
        let got = e.embed(&texts).unwrap();
        let cos: Vec<f64> = got.iter().zip(&reference).map(|(a, b)| cosine(a, b)).collect();
        (
            cos.iter().sum::<f64>() / cos.len() as f64,
            cos.iter().cloned().fold(1.0, f64::min),
        )
    };
    let (cal_mean, cal_min) = stats(embedder("int8"));
    let (near_mean, near_min) = stats(&nearest);
    eprintln!(
        "MiniLM int8 vs f32 over {} texts: GPTQ mean {cal_mean:.5} min {cal_min:.5}; round-to-nearest mean {near_mean:.5} min {near_min:.5}",
        texts.len()
    );
    assert!(
        cal_mean > near_mean,
        "GPTQ mean {cal_mean} vs round-to-nearest {near_mean}"
    );
    assert!(cal_min > near_min, "GPTQ min {cal_min} vs round-to-nearest {near_min}");
    let notes = embedder("int8")
        .file()
        .meta()
        .quantization
        .notes
        .clone()
        .unwrap_or_default();
    assert!(notes.contains("GPTQ, calibrated on 1290 texts"), "{notes}");
    assert!(notes.contains("hidden channels stored largest first"), "{notes}");
    assert!(nearest.file().meta().quantization.notes.is_none());
}

/// The target: the int8 file at most 25% of the f32 safetensors (90,868,376 bytes),
/// tokenizer included. One byte per parameter is already 22.7 MB, so the int8 recipe stores the
/// token table in 6 bits (`u6`, see `tools/src/convert/recipe.rs`): 20,847,808 bytes (22.9%).
#[test]
fn int8_file_is_at_most_a_quarter_of_the_safetensors() {
    const SAFETENSORS_BYTES: u64 = 90_868_376;
    let safetensors = std::fs::metadata(minilm_source().join("model.safetensors"))
        .unwrap()
        .len();
    assert_eq!(
        safetensors, SAFETENSORS_BYTES,
        "the cached all-MiniLM-L6-v2 is not the one the target was set for"
    );
    let int8 = std::fs::metadata(convert(minilm_source(), "minilm", "int8"))
        .unwrap()
        .len();
    let f32 = std::fs::metadata(convert(minilm_source(), "minilm", "f32"))
        .unwrap()
        .len();
    let emb = std::fs::metadata(convert(minilm_source(), "minilm", "int8-embeddings"))
        .unwrap()
        .len();
    eprintln!(
        "MiniLM sizes: safetensors {safetensors} B, octet f32 {f32} B, int8-embeddings {emb} B, int8 {int8} B ({:.2}% of safetensors)",
        100.0 * int8 as f64 / safetensors as f64
    );
    assert!(
        int8 * 4 <= SAFETENSORS_BYTES,
        "int8 file {int8} B is over 25% of {SAFETENSORS_BYTES} B ({} B)",
        SAFETENSORS_BYTES / 4
    );
}

/// The int8 recipe's token table is 6-bit and its position table int8; int8-embeddings keeps
/// an 8-bit token table (as the browser's model did).
#[test]
fn int8_token_table_is_7_bit() {
    use octet::format::Dtype;
    let int8 = embedder("int8").file();
    let vocab = int8.tensor("embeddings.word").unwrap();
    assert_eq!(vocab.dtype, Dtype::U7);
    assert_eq!(vocab.shape, [30522, 384]);
    assert_eq!(vocab.bytes.len(), 30522 * 384 * 7 / 8);
    let table = int8.u7("embeddings.word", 30522, 384).unwrap();
    assert!(
        matches!(table.quant.zero_point, octet::format::QuantParam::PerChannel(z) if z.iter().all(|z| (0..=127).contains(z)))
    );
    assert_eq!(int8.tensor("embeddings.position").unwrap().dtype, Dtype::I8);
    assert_eq!(
        embedder("int8-embeddings")
            .file()
            .tensor("embeddings.word")
            .unwrap()
            .dtype,
        Dtype::I8
    );
}

#[test]
fn vectors_do_not_depend_on_batching_or_threads() {
    let texts = texts();
    let path = convert(minilm_source(), "minilm", "int8");
    let one_thread = Embedder::open_with_threads(&path, 1).unwrap();
    let two_threads = Embedder::open_with_threads(&path, 2).unwrap();
    let alone: Vec<Vec<f32>> = texts
        .iter()
        .map(|t| one_thread.embed(&[t]).unwrap().remove(0))
        .collect();
    // Passes cut by text count and by token budget (1: one text per pass; 100: a few short texts).
    for (batch_size, max_batch_tokens, e) in [
        (1, 2048, &two_threads),
        (7, 2048, &one_thread),
        (32, 2048, &two_threads),
        (1000, 100_000, &two_threads),
        (1000, 100, &one_thread),
        (32, 1, &two_threads),
    ] {
        let options = EmbedOptions {
            batch_size,
            max_batch_tokens,
            ..EmbedOptions::default()
        };
        let batched = e.embed_with(&texts, &options).unwrap();
        for (i, (a, b)) in alone.iter().zip(&batched).enumerate() {
            let c = cosine(a, b);
            assert!(
                c >= 0.999999,
                "text {i}, batch size {batch_size}, {max_batch_tokens} tokens per pass, {} threads: cosine {c}",
                e.threads()
            );
        }
    }
}

/// Bind once: opening looks up every tensor, and an `embed` call looks up none (no config
/// parsing or binding per call), for every recipe (f16 included, whose weights are widened
/// and packed at open).
#[test]
fn embed_does_no_tensor_lookup_after_open() {
    for recipe in ["int8", "f32", "f16"] {
        let e = Embedder::open(convert(minilm_source(), "minilm", recipe)).unwrap();
        let at_open = e.file().lookups();
        assert!(at_open > 50, "{recipe}: {at_open} look-ups at open");
        let first = e
            .embed(&[
                "The cat sat on the mat.",
                "A second, longer text about nothing in particular.",
            ])
            .unwrap();
        let second = e
            .embed(&[
                "The cat sat on the mat.",
                "A second, longer text about nothing in particular.",
            ])
            .unwrap();
        assert_eq!(first, second, "{recipe}: a second call gives the same bits");
        assert_eq!(e.file().lookups(), at_open, "{recipe}: embed looked up tensors by name");
    }
}

#[test]
fn concurrent_callers_get_the_sequential_results() {
    let texts = texts();
    let e = embedder("int8");
    let sequential = e.embed(&texts).unwrap();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|k| {
                let texts = &texts;
                s.spawn(move || {
                    let mine: Vec<&String> = texts.iter().skip(k).step_by(4).collect();
                    (k, e.embed(&mine).unwrap())
                })
            })
            .collect();
        for h in handles {
            let (k, got) = h.join().unwrap();
            for (j, v) in got.iter().enumerate() {
                let c = cosine(v, &sequential[k + 4 * j]);
                assert!(c >= 0.999999, "thread {k} text {}: cosine {c}", k + 4 * j);
            }
        }
    });
}

#[test]
fn window_policy_empty_and_whitespace_texts() {
    let e = embedder("int8");
    let long = "word ".repeat(600);
    let strict = EmbedOptions {
        truncation: Truncation::Error,
        ..EmbedOptions::default()
    };
    match e.embed_with(&["short", long.as_str()], &strict) {
        Err(octet::Error::TextTooLong { index: 1, max: 256 }) => {}
        other => panic!("expected TextTooLong for text 1, got {other:?}"),
    }
    let out = e
        .embed_detailed(&[long.as_str(), "", "   ", "\t\n"], &EmbedOptions::default())
        .unwrap();
    assert_eq!(out.truncated, 1);
    assert!(out
        .vectors
        .iter()
        .all(|v| v.len() == 384 && v.iter().all(|x| x.is_finite())));
    assert!(
        cosine(&out.vectors[1], &out.vectors[2]) > 0.999999,
        "empty and whitespace-only both tokenize to [CLS] [SEP]"
    );
    assert!(e.embed(&Vec::<String>::new()).unwrap().is_empty());
}

#[test]
fn options_are_checked() {
    let e = embedder("int8");
    let bad_dims = EmbedOptions {
        dims: Some(385),
        ..EmbedOptions::default()
    };
    assert!(matches!(e.embed_with(&["x"], &bad_dims), Err(octet::Error::Option(_))));
    let no_tokens = EmbedOptions {
        max_batch_tokens: 0,
        ..EmbedOptions::default()
    };
    assert!(matches!(e.embed_with(&["x"], &no_tokens), Err(octet::Error::Option(_))));
    let bad_prompt = EmbedOptions {
        prompt: Some("query".into()),
        ..EmbedOptions::default()
    };
    assert!(matches!(
        e.embed_with(&["x"], &bad_prompt),
        Err(octet::Error::Option(_))
    ));
    let dims = EmbedOptions {
        dims: Some(128),
        ..EmbedOptions::default()
    };
    let v = e.embed_with(&["a cat"], &dims).unwrap().remove(0);
    assert_eq!(v.len(), 128);
    assert!((v.iter().map(|x| x * x).sum::<f32>() - 1.0).abs() < 1e-5);
}

#[test]
fn gensim_figures_match_the_reference_and_int8_stays_within_0_01() {
    let reference = gensim_reference("minilm");
    let figures = |recipe: &str| {
        let e = embedder(recipe);
        gensim_figures(&|texts: &[String]| e.embed(texts).unwrap())
    };
    check_gensim_figures("MiniLM", reference, figures("f32"), figures("int8"));
}

#[test]
fn embed_into_writes_the_vectors_embed_returns() {
    let e = embedder("int8");
    let texts = texts();
    for dims in [None, Some(128)] {
        let options = EmbedOptions {
            dims,
            batch_size: 7,
            ..EmbedOptions::default()
        };
        let width = dims.unwrap_or(e.dim());
        let mut flat = vec![f32::NAN; texts.len() * width];
        e.embed_into(&texts, &options, &mut flat).unwrap();
        let vectors = e.embed_with(&texts, &options).unwrap();
        for (i, v) in vectors.iter().enumerate() {
            assert_eq!(
                &flat[i * width..(i + 1) * width],
                v.as_slice(),
                "text {i}, dims {dims:?}"
            );
        }
    }
    let mut short = vec![0f32; 383];
    let err = e.embed_into(&["x"], &EmbedOptions::default(), &mut short).unwrap_err();
    assert!(err.to_string().contains("need 384"), "{err}");
    e.embed_into(&Vec::<String>::new(), &EmbedOptions::default(), &mut [])
        .unwrap();
}
