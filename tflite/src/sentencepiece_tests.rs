//! The conversion against the `sentencepiece` library's own ids (a model trained by
//! `scripts/reference/make_sentencepiece_fixture.py`, 1,000 strings), and malformed models.

use super::SentencePieceModel;

fn fixture_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/sentencepiece")
}

#[test]
fn the_converted_tokenizer_gives_sentencepiece_ids_on_1000_strings() {
    let model = std::fs::read(fixture_dir().join("unigram.model")).unwrap();
    let sp = SentencePieceModel::parse(&model).unwrap();
    assert_eq!((sp.unk_id, sp.eos_id, sp.pieces.len()), (2, 1, 1000));
    let json = sp.tokenizer_json().unwrap();
    let tokenizer = tokenizers::Tokenizer::from_bytes(&json).unwrap();
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture_dir().join("ids.json")).unwrap()).unwrap();
    let strings = doc["strings"].as_array().unwrap();
    assert_eq!(strings.len(), 1000);
    let mut differ = Vec::new();
    for s in strings {
        let text = s["text"].as_str().unwrap();
        let want: Vec<u32> = s["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        let got = tokenizer.encode(text, true).unwrap().get_ids().to_vec();
        if got != want {
            // The one known difference: two segmentations of exactly equal score ("000" as
            // "0" + "00" or "00" + "0"), which sentencepiece separates by f32 rounding of its
            // running sums and the `tokenizers` crate (f64 scores) does not. Same pieces, other
            // order; anything else fails.
            let (mut a, mut b) = (got.clone(), want.clone());
            a.sort_unstable();
            b.sort_unstable();
            assert_eq!(a, b, "{text:?}\n  got  {got:?}\n  want {want:?}");
            differ.push(text.chars().take(40).collect::<String>());
        }
    }
    eprintln!(
        "{} of 1000 strings differ by an equal-score tie: {differ:?}",
        differ.len()
    );
    assert!(differ.len() <= 5, "{} of 1000 differ", differ.len());
}

#[test]
fn malformed_models_are_errors() {
    let model = std::fs::read(fixture_dir().join("unigram.model")).unwrap();
    for cut in [1, 2, 7, 100, model.len() / 2, model.len() - 1] {
        let _ = SentencePieceModel::parse(&model[..cut]).and_then(|m| m.tokenizer_json());
    }
    let mut flipped = model.clone();
    for i in (0..flipped.len()).step_by(997) {
        flipped[i] ^= 0x5a;
        let _ = SentencePieceModel::parse(&flipped).and_then(|m| m.tokenizer_json());
    }
    assert!(SentencePieceModel::parse(&[]).is_err());
    assert!(SentencePieceModel::parse(&[0x0a, 0xff]).is_err());
}
