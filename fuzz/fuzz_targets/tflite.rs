//! Fuzz target `tflite`: an untrusted `.tflite` file through octet's TFLite importer.
//!
//! The input is a whole TFLite file. Bytes 4..8 are set to the file identifier `TFL3` so that
//! mutations reach the flatbuffer verifier and the decoder instead of stopping at the
//! identifier check (which has its own unit test). If the file decodes, every constant is read
//! the ways the importer reads it, the graph walks (BERT, T5) run, and when one recognises an
//! encoder the importer plans its tensors, the step before quantizing and writing (for T5: the
//! inversion of the position bias). The tokenizer metadata is read too (the `TFLITE_METADATA`
//! buffer, the zip archive of associated files, a BERT vocab or a SentencePiece model turned
//! into a tokenizer.json).
//! None of it may panic, hang or use memory out of proportion to the input.

#![no_main]

use libfuzzer_sys::fuzz_target;
use octet_tflite::sentencepiece::SentencePieceModel;
use octet_tflite::{bert, metadata, t5, wordpiece, TfliteModel};

fuzz_target!(|data: &[u8]| {
    let mut bytes = data.to_vec();
    if bytes.len() >= 8 {
        bytes[4..8].copy_from_slice(b"TFL3");
    }
    let Ok(model) = TfliteModel::from_bytes(bytes) else { return };
    for t in &model.tensors {
        let _ = model.f32_values(t);
        let _ = model.i8_values(t);
        let _ = model.i32_values(t);
    }
    if let Ok(Some(t)) = metadata::embedded_tokenizer(&model) {
        match t.unit.kind {
            metadata::TokenizerKind::Bert => {
                let _ = wordpiece::tokenizer_json(&t.contents, t.lower_case(), &t.unit.file);
            }
            metadata::TokenizerKind::SentencePiece => {
                let _ = SentencePieceModel::parse(&t.contents).and_then(|m| m.tokenizer_json());
            }
        }
    }
    if let Ok(graph) = bert::recognise(&model) {
        let _ = octet_tools::convert::tflite::plan(&model, &graph);
    }
    if let Ok(graph) = t5::recognise(&model) {
        if let Ok(values) = model.f32_values(&model.tensors[graph.position_bias]) {
            let _ = t5::bucket_table(&values, graph.heads, graph.sequence);
        }
    }
});
