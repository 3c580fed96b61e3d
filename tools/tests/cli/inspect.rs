//! `octet inspect` and `octet diff` on the safetensors source and the int8 file.

use super::*;

/// The safetensors file the test model was converted from.
fn source_safetensors() -> PathBuf {
    let fetch = Command::new("bash")
        .arg(repo_root().join("scripts/fetch-minilm.sh"))
        .output()
        .expect("run fetch-minilm.sh");
    let stdout = String::from_utf8_lossy(&fetch.stdout);
    PathBuf::from(stdout.lines().last().expect("folder").trim()).join("model.safetensors")
}

#[test]
fn inspect_lists_tensors_totals_and_ports_as_text_and_json() {
    let text = ok(run(&["inspect", m()], None));
    for needle in [
        "format       octet",
        "embeddings.word",
        "u7",
        "totals by dtype",
        "input",
        "output",
    ] {
        assert!(text.contains(needle), "inspect lacks {needle:?}:\n{text}");
    }
    let summary = ok(run(&["inspect", m(), "--summary"], None));
    assert!(
        !summary.contains("layers.0.ffn.up") && summary.contains("totals by dtype"),
        "{summary}"
    );
    let json: serde_json::Value = serde_json::from_str(&ok(run(&["inspect", m(), "--json"], None))).unwrap();
    let tensors = json["tensors"].as_array().unwrap();
    let word = tensors
        .iter()
        .find(|t| t["name"] == "embeddings.word")
        .expect("embeddings.word listed");
    assert_eq!(word["shape"], serde_json::json!([30522, 384]));
    let total: u64 = tensors.iter().map(|t| t["bytes"].as_u64().unwrap()).sum();
    assert!(total <= std::fs::metadata(m()).unwrap().len());

    let st = source_safetensors();
    let text = ok(run(&["inspect", st.to_str().unwrap(), "--summary"], None));
    assert!(text.contains("safetensors") && text.contains("F32"), "{text}");
}

#[test]
fn diff_of_the_safetensors_and_the_int8_file_totals_the_change() {
    let st = source_safetensors();
    let text = ok(run(&["diff", st.to_str().unwrap(), m()], None));
    assert!(text.contains("total") && text.contains("MB"), "{text}");
    let json: serde_json::Value =
        serde_json::from_str(&ok(run(&["diff", st.to_str().unwrap(), m(), "--json"], None))).unwrap();
    let (a, b) = (
        json["file_bytes"][0].as_u64().unwrap(),
        json["file_bytes"][1].as_u64().unwrap(),
    );
    assert_eq!(a, std::fs::metadata(&st).unwrap().len());
    assert_eq!(b, std::fs::metadata(m()).unwrap().len());
    // A file against itself: nothing changed.
    let same: serde_json::Value = serde_json::from_str(&ok(run(&["diff", m(), m(), "--json"], None))).unwrap();
    assert_eq!(same["changed"].as_array().unwrap().len(), 0);
    assert_eq!(same["same_inputs"], true);
}

#[test]
fn inspect_and_diff_refuse_what_is_not_a_model_file() {
    let dir = test_dir("inspect-bad");
    let junk = dir.join("notes.txt");
    std::fs::write(&junk, "not a model at all, just some words\n".repeat(10)).unwrap();
    let missing = dir.join("missing.octet");
    fails(
        &run(&["inspect", missing.to_str().unwrap()], None),
        NO_INPUT,
        &["missing.octet"],
    );
    fails(
        &run(&["inspect", junk.to_str().unwrap()], None),
        BAD_INPUT,
        &["notes.txt"],
    );
    fails(
        &run(&["diff", m(), junk.to_str().unwrap()], None),
        BAD_INPUT,
        &["notes.txt"],
    );
    let mut truncated = std::fs::read(m()).unwrap();
    truncated.truncate(truncated.len() / 2);
    let cut = dir.join("cut.octet");
    std::fs::write(&cut, truncated).unwrap();
    fails(
        &run(&["inspect", cut.to_str().unwrap()], None),
        BAD_INPUT,
        &["cut.octet"],
    );
}
