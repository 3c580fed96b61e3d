//! Tests of the metadata reader and the vocab conversion on files built here: TFLite Support
//! metadata written with the `flatbuffers` builder, associated files with the `zip` writer.
//! Every malformed variant is an error, never a panic.

use super::metadata::{self, TokenizerKind};
use super::tests::{build, valid, BufferSpec, ModelSpec};
use super::tokenizer_source;
use super::wordpiece;
use super::{TfliteError, TfliteModel};
use flatbuffers::FlatBufferBuilder;
use std::io::Write;

const fn slot(id: u16) -> u16 {
    4 + 2 * id
}

const VOCAB: &str = "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nhello\nworld\n##s\n,\n";

/// Where the tokenizer unit goes in the metadata.
#[derive(Clone, Copy)]
enum Place {
    Subgraph,
    InputTensor,
}

/// A `ModelMetadata` buffer with one tokenizer process unit (`unit_type` 4: BERT, 5:
/// SentencePiece) naming `file`.
fn metadata_buffer(unit_type: u8, file: &str, place: Place, identifier: &str) -> Vec<u8> {
    let mut b = FlatBufferBuilder::new();
    let name = b.create_string(file);
    let af = b.start_table();
    b.push_slot_always(slot(0), name);
    let af = b.end_table(af);
    let files = b.create_vector(&[af]);
    let options = b.start_table();
    b.push_slot_always(slot(0), files);
    let options = b.end_table(options);
    let unit = b.start_table();
    b.push_slot_always(slot(0), unit_type);
    b.push_slot_always(slot(1), options);
    let unit = b.end_table(unit);
    let units = b.create_vector(&[unit]);
    let graph = match place {
        Place::Subgraph => {
            let g = b.start_table();
            b.push_slot_always(slot(5), units);
            b.end_table(g)
        }
        Place::InputTensor => {
            let tname = b.create_string("ids");
            let t = b.start_table();
            b.push_slot_always(slot(0), tname);
            b.push_slot_always(slot(4), units);
            let t = b.end_table(t);
            let inputs = b.create_vector(&[t]);
            let g = b.start_table();
            b.push_slot_always(slot(2), inputs);
            b.end_table(g)
        }
    };
    let graphs = b.create_vector(&[graph]);
    let root = b.start_table();
    b.push_slot_always(slot(3), graphs);
    let root = b.end_table(root);
    b.finish(root, Some(identifier));
    b.finished_data().to_vec()
}

/// A zip archive holding `files`, the first stored, the others deflated.
fn zip_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (i, (name, bytes)) in files.iter().enumerate() {
        let method = if i == 0 {
            zip::CompressionMethod::Stored
        } else {
            zip::CompressionMethod::Deflated
        };
        let opts = zip::write::SimpleFileOptions::default().compression_method(method);
        w.start_file(*name, opts).unwrap();
        w.write_all(bytes).unwrap();
    }
    w.finish().unwrap().into_inner()
}

/// The small valid model with `metadata` as its TFLITE_METADATA buffer and `archive` after it.
fn model_with(metadata: Vec<u8>, archive: &[u8]) -> Vec<u8> {
    let mut spec: ModelSpec = valid();
    spec.buffers.push(BufferSpec::Inline(metadata));
    spec.metadata = vec![(metadata::METADATA_NAME, spec.buffers.len() as u32 - 1)];
    let mut bytes = build(&spec);
    bytes.extend_from_slice(archive);
    bytes
}

fn bert_model() -> Vec<u8> {
    model_with(
        metadata_buffer(4, "vocab.txt", Place::Subgraph, "M001"),
        &zip_of(&[("readme.txt", b"hi"), ("vocab.txt", VOCAB.as_bytes())]),
    )
}

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

#[test]
fn the_user_tokenizer_wins_and_neither_is_a_usage_error() {
    let input = std::path::Path::new("model.tflite");
    let with_metadata = TfliteModel::from_bytes(bert_model()).unwrap();
    let found = tokenizer_source::resolve(&with_metadata, None, input).unwrap();
    assert_eq!(found.origin, "model.tflite:vocab.txt");
    assert_eq!(found.window, Some(2));
    assert!(tokenizers::Tokenizer::from_bytes(&found.json).is_ok());

    let user = std::env::temp_dir().join(format!("octet-metadata-test-{}.json", std::process::id()));
    std::fs::write(&user, b"{\"user\": true}").unwrap();
    let chosen = tokenizer_source::resolve(&with_metadata, Some(&user), input).unwrap();
    std::fs::remove_file(&user).ok();
    assert_eq!(chosen.json, b"{\"user\": true}");

    let missing = tokenizer_source::resolve(&with_metadata, Some(std::path::Path::new("/nonexistent/t.json")), input)
        .unwrap_err();
    assert_eq!(crate::exit::code_for(&missing), crate::exit::NO_INPUT, "{missing:#}");

    let plain = TfliteModel::from_bytes(build(&valid())).unwrap();
    let neither = tokenizer_source::resolve(&plain, None, input).unwrap_err();
    assert_eq!(crate::exit::code_for(&neither), crate::exit::USAGE, "{neither:#}");
    let msg = format!("{neither:#}");
    assert!(msg.contains("--tokenizer") && msg.contains("metadata"), "{msg}");

    let sp = model_with(
        metadata_buffer(5, "sp.model", Place::Subgraph, "M001"),
        &zip_of(&[("sp.model", b"not really a model")]),
    );
    let sp = TfliteModel::from_bytes(sp).unwrap();
    let msg = format!("{:#}", tokenizer_source::resolve(&sp, None, input).unwrap_err());
    assert!(
        msg.contains("SentencePiece") && msg.contains("not supported yet") && msg.contains("--tokenizer"),
        "{msg}"
    );
}
