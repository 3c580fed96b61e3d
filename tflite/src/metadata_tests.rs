//! Tests of the metadata reader and the vocab conversion on files built here: TFLite Support
//! metadata written with the `flatbuffers` builder, associated files with the `zip` writer.
//! Every malformed variant is an error, never a panic.

use crate::metadata::{self, TokenizerKind};
use crate::testing::{bert_model, build, metadata_buffer, model_with, valid, zip_of, Place, VOCAB};
use crate::wordpiece;
use crate::{TfliteError, TfliteModel};

fn expect_invalid<T: std::fmt::Debug>(r: Result<T, TfliteError>, needle: &str) {
    match r {
        Err(TfliteError::Invalid(msg)) => assert!(msg.contains(needle), "error '{msg}' does not mention '{needle}'"),
        other => panic!("expected an invalid-file error mentioning '{needle}', got {other:?}"),
    }
}

#[test]
fn a_bert_vocab_is_found_and_read_from_the_archive() {
    let model = TfliteModel::from_bytes(bert_model()).unwrap();
    let t = metadata::embedded_tokenizer(&model).unwrap().expect("a tokenizer");
    assert_eq!(t.unit.kind, TokenizerKind::Bert);
    assert_eq!(t.unit.file, "vocab.txt");
    assert_eq!(t.unit.attached_to, "subgraph input");
    assert_eq!(t.contents, VOCAB.as_bytes());
    // The small model's input is a fixed [1, 2].
    assert_eq!(t.max_seq_len, Some(2));
    assert!(t.lower_case());
}

#[test]
fn a_unit_on_an_input_tensor_is_found_too() {
    let unit = metadata::tokenizer_unit(&metadata_buffer(5, "sp.model", Place::InputTensor, "M001"))
        .unwrap()
        .expect("a tokenizer");
    assert_eq!(unit.kind, TokenizerKind::SentencePiece);
    assert_eq!(unit.file, "sp.model");
    assert_eq!(unit.attached_to, "input tensor 'ids'");
}

#[test]
fn a_model_without_metadata_has_no_tokenizer() {
    let model = TfliteModel::from_bytes(build(&valid())).unwrap();
    assert!(metadata::embedded_tokenizer(&model).unwrap().is_none());
    // Other process units (here a normalization unit, type 1) are not tokenizers.
    assert!(
        metadata::tokenizer_unit(&metadata_buffer(1, "x", Place::Subgraph, "M001"))
            .unwrap()
            .is_none()
    );
}

#[test]
fn a_bad_identifier_is_an_error() {
    expect_invalid(
        metadata::tokenizer_unit(&metadata_buffer(4, "vocab.txt", Place::Subgraph, "M002")),
        "not \"M001\"",
    );
    expect_invalid(metadata::tokenizer_unit(&[]), "not \"M001\"");
}

#[test]
fn every_truncated_metadata_buffer_is_an_error() {
    let full = metadata_buffer(4, "vocab.txt", Place::Subgraph, "M001");
    let whole = metadata::tokenizer_unit(&full).unwrap();
    for len in 0..full.len() {
        // A cut that drops only the builder's trailing padding may still verify: then it must
        // say the same. Any other cut is an error.
        match metadata::tokenizer_unit(&full[..len]) {
            Err(_) => {}
            Ok(unit) => assert!(
                len + 8 > full.len() && unit == whole,
                "prefix of {len} bytes read as {unit:?}"
            ),
        }
    }
    // Every single-byte corruption: an error or some answer, never a panic.
    for i in 0..full.len() {
        for v in [0u8, 0x7f, 0xff] {
            let mut bad = full.clone();
            bad[i] = v;
            let _ = metadata::tokenizer_unit(&bad);
        }
    }
}

#[test]
fn an_out_of_range_metadata_buffer_index_is_an_error() {
    let mut spec = valid();
    spec.metadata = vec![(metadata::METADATA_NAME, 99)];
    expect_invalid(TfliteModel::from_bytes(build(&spec)).map(|_| ()), "refers to buffer 99");
}

#[test]
fn a_missing_archive_or_file_is_an_error() {
    let md = || metadata_buffer(4, "vocab.txt", Place::Subgraph, "M001");
    let no_archive = TfliteModel::from_bytes(model_with(md(), &[])).unwrap();
    expect_invalid(metadata::embedded_tokenizer(&no_archive), "no readable archive");
    let wrong_file = TfliteModel::from_bytes(model_with(md(), &zip_of(&[("labels.txt", b"a\nb\n")]))).unwrap();
    expect_invalid(metadata::embedded_tokenizer(&wrong_file), "'vocab.txt'");
    // A truncated archive: every cut of its tail is an error, never a panic.
    let archive = zip_of(&[("vocab.txt", VOCAB.as_bytes())]);
    for cut in 1..archive.len() {
        let model = TfliteModel::from_bytes(model_with(md(), &archive[..archive.len() - cut])).unwrap();
        assert!(
            metadata::embedded_tokenizer(&model).is_err(),
            "archive cut by {cut} accepted"
        );
    }
    // A unit whose file list names nothing.
    let empty = metadata_buffer(4, "", Place::Subgraph, "M001");
    expect_invalid(metadata::tokenizer_unit(&empty), "names no associated file");
}

#[test]
fn a_bert_vocab_becomes_a_working_tokenizer_json() {
    let json = wordpiece::tokenizer_json(VOCAB.as_bytes(), true, "vocab.txt").unwrap();
    let tok = tokenizers::Tokenizer::from_bytes(&json).unwrap();
    let enc = tok.encode("Hello, WORLDS", true).unwrap();
    assert_eq!(enc.get_ids(), &[2, 5, 8, 6, 7, 3]);
    assert_eq!(tok.encode("unknown", true).unwrap().get_ids(), &[2, 1, 3]);
    // Special tokens are kept whole.
    assert_eq!(tok.encode("[MASK] hello", true).unwrap().get_ids(), &[2, 4, 5, 3]);
}

#[test]
fn a_vocab_without_the_bert_specials_is_an_error() {
    expect_invalid(
        wordpiece::tokenizer_json(b"hello\nworld\n", true, "v.txt"),
        "no [UNK] token",
    );
    expect_invalid(
        wordpiece::tokenizer_json(b"[UNK]\n[CLS]\n", true, "v.txt"),
        "no [SEP] token",
    );
    expect_invalid(
        wordpiece::tokenizer_json(&[0xff, 0xfe, b'\n'], true, "v.txt"),
        "not UTF-8",
    );
}
