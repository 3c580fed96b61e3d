//! `octet similarity` and `octet search`, its cache and the model's prompts.

use super::*;

#[test]
fn similarity_prints_a_number_or_an_aligned_matrix() {
    let two = ok(run(&["similarity", m(), TEXTS[0], TEXTS[1]], None));
    let score: f32 = two.trim().parse().unwrap();
    assert!(score > 0.4 && score < 0.9, "{score}");
    let table = ok(run(&["similarity", m(), TEXTS[0], TEXTS[1], TEXTS[2]], None));
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 4, "{table}");
    assert!(
        lines.iter().all(|l| l.chars().count() == lines[0].chars().count()),
        "not aligned:\n{table}"
    );
    assert!(
        lines[1].starts_with("[1] The cat") && lines[1].contains(" 1.000 "),
        "{table}"
    );
    let cell: f32 = lines[1].split_whitespace().rev().nth(1).unwrap().parse().unwrap();
    // The pair prints 4 decimals, the matrix 3.
    assert!((cell - score).abs() <= 6e-4, "matrix disagrees with the pair:\n{table}");
}

#[test]
fn search_ranks_the_corpus_and_caches_it_until_corpus_or_model_change() {
    let dir = test_dir("search");
    let corpus = dir.join("c.txt");
    std::fs::write(
        &corpus,
        "Stock markets fell sharply today.\nA kitten is resting on the rug.\nThe weather is sunny.\n",
    )
    .unwrap();
    let cache = dir.join("c.txt.octet-vectors");
    let q = "a small cat sleeping on a carpet";
    let out = ok(run(
        &["search", m(), "--corpus", corpus.to_str().unwrap(), q, "-k", "2"],
        None,
    ));
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("query: a small cat"), "{out}");
    assert!(lines[1].contains("line 2") && lines[1].contains("kitten"), "{out}");
    assert_eq!(lines.len(), 3, "{out}");
    let stamp = std::fs::metadata(&cache)
        .expect("cache written next to the corpus")
        .modified()
        .unwrap();

    std::thread::sleep(std::time::Duration::from_millis(20));
    let again = ok(run(
        &["search", m(), "--corpus", corpus.to_str().unwrap(), q, "-k", "2"],
        None,
    ));
    assert_eq!(again, out);
    assert_eq!(
        std::fs::metadata(&cache).unwrap().modified().unwrap(),
        stamp,
        "an unchanged corpus was embedded again"
    );

    // Same length, other content: the key changes and the cache is rebuilt.
    std::fs::write(
        &corpus,
        "Stock markets fell sharply today.\nA puppy is resting on the rug.\nThe weather is sunny.\n",
    )
    .unwrap();
    let json = ok(run(
        &[
            "search",
            m(),
            "--corpus",
            corpus.to_str().unwrap(),
            q,
            "-k",
            "1",
            "--json",
        ],
        None,
    ));
    let hit: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
    assert_eq!(hit["text"], "A puppy is resting on the rug.", "{json}");
    assert_eq!(
        (hit["rank"].as_u64(), hit["id"].as_u64(), hit["line"].as_u64()),
        (Some(1), Some(1), Some(2))
    );
    assert_ne!(std::fs::metadata(&cache).unwrap().modified().unwrap(), stamp);

    // Another model (the same weights re-converted with other metadata) is another key.
    let other = dir.join("other.octet");
    let mut bytes = std::fs::read(model()).unwrap();
    edit_json(&mut bytes, "\"converter\":\"octet", "\"converter\":\"OCTET");
    std::fs::write(&other, &bytes).unwrap();
    let stamp = std::fs::metadata(&cache).unwrap().modified().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    ok(run(
        &[
            "search",
            other.to_str().unwrap(),
            "--corpus",
            corpus.to_str().unwrap(),
            q,
        ],
        None,
    ));
    assert_ne!(
        std::fs::metadata(&cache).unwrap().modified().unwrap(),
        stamp,
        "another model reused the cache"
    );
}

/// A copy of the model whose metadata has `query` and `document` prompts, as EmbeddingGemma's
/// does: the JSON grows, so the data section moves (tensor offsets are relative to it).
fn model_with_prompts(path: &Path) {
    let bytes = std::fs::read(model()).unwrap();
    let u64_at = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap()) as usize;
    let (json_offset, json_len, data_offset, data_len) = (u64_at(16), u64_at(24), u64_at(32), u64_at(40));
    let json = std::str::from_utf8(&bytes[json_offset..json_offset + json_len]).unwrap();
    assert!(json.contains("\"prompts\":{}"), "MiniLM has no prompts");
    let json = json.replace(
        "\"prompts\":{}",
        "\"prompts\":{\"query\":\"query: \",\"document\":\"passage: \"}",
    );
    let new_data_offset = (128 + json.len()).div_ceil(64) * 64;
    let mut out = bytes[..128].to_vec();
    out[24..32].copy_from_slice(&(json.len() as u64).to_le_bytes());
    out[32..40].copy_from_slice(&(new_data_offset as u64).to_le_bytes());
    out[48..56].copy_from_slice(&((new_data_offset + data_len) as u64).to_le_bytes());
    out.extend_from_slice(json.as_bytes());
    out.resize(new_data_offset, 0);
    out.extend_from_slice(&bytes[data_offset..data_offset + data_len]);
    reseal(&mut out);
    std::fs::write(path, out).unwrap();
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    octet::similarity::cosine(a, b) as f32
}

#[test]
fn search_uses_the_models_query_and_document_prompts_by_default() {
    let dir = test_dir("prompts");
    let prompted = dir.join("prompted.octet");
    model_with_prompts(&prompted);
    let pm = prompted.to_str().unwrap();
    let info = ok(run(&["info", pm], None));
    assert!(info.contains("document, query"), "{info}");

    let corpus = dir.join("c.txt");
    std::fs::write(&corpus, format!("{}\n", TEXTS.join("\n"))).unwrap();
    let q = "a cat resting";
    let scores = |extra: &[&str]| -> Vec<f32> {
        let mut args = vec![
            "search",
            pm,
            "--corpus",
            corpus.to_str().unwrap(),
            "-k",
            "3",
            "--json",
            q,
        ];
        args.extend_from_slice(extra);
        let out = ok(run(&args, None));
        let mut by_id = vec![0f32; 3];
        for line in out.lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            by_id[v["id"].as_u64().unwrap() as usize] = v["score"].as_f64().unwrap() as f32;
        }
        by_id
    };
    let expected = |query_prompt: &str, document_prompt: &str| -> Vec<f32> {
        let query = vectors(&ok(run(&["embed", pm, "--prompt", query_prompt, q], None)));
        let docs = vectors(&ok(run(
            &["embed", pm, "--prompt", document_prompt, "-i", corpus.to_str().unwrap()],
            None,
        )));
        docs.iter().map(|d| cosine(&query[0], d)).collect()
    };
    // Float sums in another order: a few ulps of a value below 1.
    let close = |a: &[f32], b: &[f32]| a.iter().zip(b).all(|(x, y)| (x - y).abs() <= 1e-5);

    let default = scores(&[]);
    assert!(close(&default, &expected("query", "document")), "{default:?}");
    let none = scores(&["--query-prompt", "", "--document-prompt", ""]);
    assert!(close(&none, &expected("", "")), "{none:?}");
    assert!(!close(&default, &none), "the prompts changed nothing: {default:?}");
    let swapped = scores(&["--query-prompt", "document", "--document-prompt", "query"]);
    assert!(close(&swapped, &expected("document", "query")), "{swapped:?}");

    // MiniLM has no prompts: naming one is a usage error that lists what the model has.
    let o = run(
        &[
            "search",
            m(),
            "--corpus",
            corpus.to_str().unwrap(),
            "--query-prompt",
            "query",
            q,
        ],
        None,
    );
    fails(&o, USAGE, &["unknown prompt 'query'", "none"]);
}
