//! The tokenizer a MediaPipe / TFLite Support model carries inside its `.tflite` file.
//!
//! Such a file has two extra parts:
//! - a `Model.metadata` entry named `TFLITE_METADATA` whose buffer is a second flatbuffer, the
//!   TFLite Support `ModelMetadata` (`metadata_schema.fbs`, file identifier `M001`). Its
//!   subgraph metadata lists the input process units; a text model's tokenizer is one of them,
//!   either for the whole subgraph (`input_process_units`, BERT-style models with ids / mask /
//!   segment inputs) or for one input tensor (`TensorMetadata.process_units`).
//! - a zip archive appended after the flatbuffer holding the associated files the metadata
//!   names: the BERT `vocab.txt` or the SentencePiece `.model`.
//!
//! [`embedded_tokenizer`] finds the tokenizer unit and reads its file out of the archive (with
//! the `zip` crate). Only the tables on that path are read, each declared below with the fields
//! it verifies, as in [`super::schema`]: the `flatbuffers` verifier checks the whole metadata
//! buffer before any field is followed, and a malformed buffer or archive is an error, never a
//! panic. [`super::wordpiece`] turns a BERT vocab into a `tokenizer.json`.
//!
//! The metadata has no lower-case or window field: MediaPipe's and TFLite Support's BERT
//! preprocessors lower-case the text before WordPiece, and the window is the token input's length when the file fixes it (MediaPipe's BERT models
//! take [1, 128]); a file with a dynamic length leaves it to the converter.

use crate::error::TfliteError;
use crate::model::TfliteModel;
use crate::schema::{get, slot, table, Bytes, TableVec};
use flatbuffers::{ForwardsUOffset, InvalidFlatbuffer, Vector, Verifiable, Verifier, VerifierOptions};
use std::io::Read;

/// The `Model.metadata` name of the TFLite Support metadata buffer.
pub const METADATA_NAME: &str = "TFLITE_METADATA";
/// The file identifier of a `ModelMetadata` flatbuffer.
pub const METADATA_IDENTIFIER: &str = "M001";
/// The largest associated file read (a BERT vocab is ~230 KB, a SentencePiece model a few MB).
pub const MAX_ASSOCIATED_FILE: u64 = 256 << 20;

/// `union ProcessUnitOptions` members read.
const UNIT_BERT_TOKENIZER: u8 = 4;
const UNIT_SENTENCE_PIECE_TOKENIZER: u8 = 5;

table!(
    /// `table ModelMetadata`: subgraph_metadata (3).
    ModelMetadataTable
);
table!(
    /// `table SubGraphMetadata`: input_tensor_metadata (2), input_process_units (5).
    SubGraphMetadataTable
);
table!(
    /// `table TensorMetadata`: name (0), process_units (4).
    TensorMetadataTable
);
table!(
    /// `table ProcessUnit`: options_type (0), options (1).
    ProcessUnitTable
);
table!(
    /// `table BertTokenizerOptions`: vocab_file (0).
    BertTokenizerOptionsTable
);
table!(
    /// `table SentencePieceTokenizerOptions`: sentencePiece_model (0), vocab_file (1).
    SentencePieceOptionsTable
);
table!(
    /// `table AssociatedFile`: name (0).
    AssociatedFileTable
);

impl Verifiable for ModelMetadataTable<'_> {
    fn run_verifier(v: &mut Verifier, pos: usize) -> Result<(), InvalidFlatbuffer> {
        v.visit_table(pos)?
            .visit_field::<TableVec<SubGraphMetadataTable>>("subgraph_metadata", slot(3), false)?
            .finish();
        Ok(())
    }
}

impl<'a> ModelMetadataTable<'a> {
    fn subgraphs(&self) -> Option<Vector<'a, ForwardsUOffset<SubGraphMetadataTable<'a>>>> {
        // SAFETY: verified as TableVec<SubGraphMetadataTable> at slot 3.
        unsafe { get::<TableVec<SubGraphMetadataTable>>(&self.0, slot(3)) }
    }
}

impl Verifiable for SubGraphMetadataTable<'_> {
    fn run_verifier(v: &mut Verifier, pos: usize) -> Result<(), InvalidFlatbuffer> {
        v.visit_table(pos)?
            .visit_field::<TableVec<TensorMetadataTable>>("input_tensor_metadata", slot(2), false)?
            .visit_field::<TableVec<ProcessUnitTable>>("input_process_units", slot(5), false)?
            .finish();
        Ok(())
    }
}

impl<'a> SubGraphMetadataTable<'a> {
    fn inputs(&self) -> Option<Vector<'a, ForwardsUOffset<TensorMetadataTable<'a>>>> {
        // SAFETY: verified as TableVec<TensorMetadataTable> at slot 2.
        unsafe { get::<TableVec<TensorMetadataTable>>(&self.0, slot(2)) }
    }
    fn input_process_units(&self) -> Option<Vector<'a, ForwardsUOffset<ProcessUnitTable<'a>>>> {
        // SAFETY: verified as TableVec<ProcessUnitTable> at slot 5.
        unsafe { get::<TableVec<ProcessUnitTable>>(&self.0, slot(5)) }
    }
}

impl Verifiable for TensorMetadataTable<'_> {
    fn run_verifier(v: &mut Verifier, pos: usize) -> Result<(), InvalidFlatbuffer> {
        v.visit_table(pos)?
            .visit_field::<Bytes>("name", slot(0), false)?
            .visit_field::<TableVec<ProcessUnitTable>>("process_units", slot(4), false)?
            .finish();
        Ok(())
    }
}

impl<'a> TensorMetadataTable<'a> {
    fn name(&self) -> &'a [u8] {
        // SAFETY: verified as a byte vector at slot 0.
        unsafe { get::<Bytes>(&self.0, slot(0)) }
            .map(|b| b.bytes())
            .unwrap_or(&[])
    }
    fn process_units(&self) -> Option<Vector<'a, ForwardsUOffset<ProcessUnitTable<'a>>>> {
        // SAFETY: verified as TableVec<ProcessUnitTable> at slot 4.
        unsafe { get::<TableVec<ProcessUnitTable>>(&self.0, slot(4)) }
    }
}

impl Verifiable for ProcessUnitTable<'_> {
    fn run_verifier(v: &mut Verifier, pos: usize) -> Result<(), InvalidFlatbuffer> {
        v.visit_table(pos)?
            .visit_union::<u8, _>(
                "options_type",
                slot(0),
                "options",
                slot(1),
                false,
                |key, v, pos| match key {
                    UNIT_BERT_TOKENIZER => v.verify_union_variant::<ForwardsUOffset<BertTokenizerOptionsTable>>(
                        "BertTokenizerOptions",
                        pos,
                    ),
                    UNIT_SENTENCE_PIECE_TOKENIZER => v
                        .verify_union_variant::<ForwardsUOffset<SentencePieceOptionsTable>>(
                            "SentencePieceTokenizerOptions",
                            pos,
                        ),
                    // Other units (normalization, score calibration, regex tokenizer) are never read.
                    _ => Ok(()),
                },
            )?
            .finish();
        Ok(())
    }
}

impl<'a> ProcessUnitTable<'a> {
    fn options_type(&self) -> u8 {
        // SAFETY: verified as u8 at slot 0 (as the union's key).
        unsafe { get::<u8>(&self.0, slot(0)) }.unwrap_or(0)
    }
    fn bert_tokenizer(&self) -> Option<BertTokenizerOptionsTable<'a>> {
        if self.options_type() != UNIT_BERT_TOKENIZER {
            return None;
        }
        // SAFETY: the union verifier checked slot 1 as this table when the key is this member.
        unsafe { get::<ForwardsUOffset<BertTokenizerOptionsTable>>(&self.0, slot(1)) }
    }
    fn sentence_piece_tokenizer(&self) -> Option<SentencePieceOptionsTable<'a>> {
        if self.options_type() != UNIT_SENTENCE_PIECE_TOKENIZER {
            return None;
        }
        // SAFETY: as above, for SentencePieceTokenizerOptions.
        unsafe { get::<ForwardsUOffset<SentencePieceOptionsTable>>(&self.0, slot(1)) }
    }
}

impl Verifiable for BertTokenizerOptionsTable<'_> {
    fn run_verifier(v: &mut Verifier, pos: usize) -> Result<(), InvalidFlatbuffer> {
        v.visit_table(pos)?
            .visit_field::<TableVec<AssociatedFileTable>>("vocab_file", slot(0), false)?
            .finish();
        Ok(())
    }
}

impl<'a> BertTokenizerOptionsTable<'a> {
    fn vocab_file(&self) -> Option<Vector<'a, ForwardsUOffset<AssociatedFileTable<'a>>>> {
        // SAFETY: verified as TableVec<AssociatedFileTable> at slot 0.
        unsafe { get::<TableVec<AssociatedFileTable>>(&self.0, slot(0)) }
    }
}

impl Verifiable for SentencePieceOptionsTable<'_> {
    fn run_verifier(v: &mut Verifier, pos: usize) -> Result<(), InvalidFlatbuffer> {
        v.visit_table(pos)?
            .visit_field::<TableVec<AssociatedFileTable>>("sentencePiece_model", slot(0), false)?
            .visit_field::<TableVec<AssociatedFileTable>>("vocab_file", slot(1), false)?
            .finish();
        Ok(())
    }
}

impl<'a> SentencePieceOptionsTable<'a> {
    fn model_file(&self) -> Option<Vector<'a, ForwardsUOffset<AssociatedFileTable<'a>>>> {
        // SAFETY: verified as TableVec<AssociatedFileTable> at slot 0.
        unsafe { get::<TableVec<AssociatedFileTable>>(&self.0, slot(0)) }
    }
    fn vocab_file(&self) -> Option<Vector<'a, ForwardsUOffset<AssociatedFileTable<'a>>>> {
        // SAFETY: verified as TableVec<AssociatedFileTable> at slot 1.
        unsafe { get::<TableVec<AssociatedFileTable>>(&self.0, slot(1)) }
    }
}

impl Verifiable for AssociatedFileTable<'_> {
    fn run_verifier(v: &mut Verifier, pos: usize) -> Result<(), InvalidFlatbuffer> {
        v.visit_table(pos)?
            .visit_field::<Bytes>("name", slot(0), false)?
            .finish();
        Ok(())
    }
}

impl AssociatedFileTable<'_> {
    fn name(&self) -> String {
        // SAFETY: verified as a byte vector at slot 0.
        let bytes = unsafe { get::<Bytes>(&self.0, slot(0)) }
            .map(|b| b.bytes())
            .unwrap_or(&[]);
        String::from_utf8_lossy(bytes).into_owned()
    }
}

/// The kind of tokenizer a metadata process unit names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenizerKind {
    /// `BertTokenizerOptions`: a WordPiece `vocab.txt`, one token per line.
    Bert,
    /// `SentencePieceTokenizerOptions`: a SentencePiece `.model` (protobuf `ModelProto`).
    SentencePiece,
}

impl TokenizerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenizerKind::Bert => "BERT WordPiece",
            TokenizerKind::SentencePiece => "SentencePiece",
        }
    }
}

/// The input tokenizer named by a `ModelMetadata` buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenizerUnit {
    pub kind: TokenizerKind,
    /// The associated file with the vocabulary (BERT) or the SentencePiece model.
    pub file: String,
    /// Where the unit sits: `subgraph input` or `input tensor 'NAME'`.
    pub attached_to: String,
}

/// A tokenizer found in a `.tflite` file, with its associated file read out of the archive.
#[derive(Clone, Debug)]
pub struct EmbeddedTokenizer {
    pub unit: TokenizerUnit,
    /// The bytes of `unit.file`.
    pub contents: Vec<u8>,
    /// The token input's fixed length, when the model fixes it.
    pub max_seq_len: Option<usize>,
}

impl EmbeddedTokenizer {
    /// MediaPipe's and TFLite Support's BERT preprocessors lower-case the text, and the
    /// metadata has no flag to say otherwise.
    pub fn lower_case(&self) -> bool {
        self.unit.kind == TokenizerKind::Bert
    }
}

fn invalid(msg: impl Into<String>) -> TfliteError {
    TfliteError::Invalid(msg.into())
}

/// The first associated file of a unit's file list, which must name one.
fn first_file(
    files: Option<Vector<'_, ForwardsUOffset<AssociatedFileTable<'_>>>>,
    what: &str,
) -> Result<String, TfliteError> {
    let name = files
        .filter(|f| !f.is_empty())
        .map(|f| f.get(0).name())
        .unwrap_or_default();
    if name.is_empty() {
        return Err(invalid(format!("TFLite metadata: the {what} names no associated file")));
    }
    Ok(name)
}

/// The tokenizer named by one process unit, if it is one.
fn unit_tokenizer(unit: ProcessUnitTable<'_>, attached_to: &str) -> Result<Option<TokenizerUnit>, TfliteError> {
    let found = if let Some(bert) = unit.bert_tokenizer() {
        Some((TokenizerKind::Bert, first_file(bert.vocab_file(), "BERT tokenizer")?))
    } else if let Some(sp) = unit.sentence_piece_tokenizer() {
        let file = match sp.model_file() {
            Some(f) if !f.is_empty() => first_file(Some(f), "SentencePiece tokenizer")?,
            _ => first_file(sp.vocab_file(), "SentencePiece tokenizer")?,
        };
        Some((TokenizerKind::SentencePiece, file))
    } else {
        None
    };
    Ok(found.map(|(kind, file)| TokenizerUnit {
        kind,
        file,
        attached_to: attached_to.to_string(),
    }))
}

/// Reads a `ModelMetadata` buffer (`M001`) and returns the input tokenizer of its first
/// subgraph: a subgraph-wide input process unit first, else one on an input tensor.
pub fn tokenizer_unit(metadata: &[u8]) -> Result<Option<TokenizerUnit>, TfliteError> {
    if metadata.len() < 8 || !flatbuffers::buffer_has_identifier(metadata, METADATA_IDENTIFIER, false) {
        let found = metadata.get(4..8).map(String::from_utf8_lossy).unwrap_or_default();
        return Err(invalid(format!(
            "the {METADATA_NAME} buffer ({} bytes) has identifier {found:?}, not \"{METADATA_IDENTIFIER}\"",
            metadata.len()
        )));
    }
    let opts = VerifierOptions {
        max_apparent_size: metadata.len().saturating_mul(4).max(1 << 20),
        ..VerifierOptions::default()
    };
    let root = flatbuffers::root_with_opts::<ModelMetadataTable>(&opts, metadata)
        .map_err(|e| invalid(format!("malformed {METADATA_NAME} buffer: {e}")))?;
    let Some(graph) = root.subgraphs().filter(|s| !s.is_empty()).map(|s| s.get(0)) else {
        return Ok(None);
    };
    for unit in graph.input_process_units().iter().flat_map(|u| u.iter()) {
        if let Some(found) = unit_tokenizer(unit, "subgraph input")? {
            return Ok(Some(found));
        }
    }
    for tensor in graph.inputs().iter().flat_map(|t| t.iter()) {
        let attached_to = format!("input tensor '{}'", String::from_utf8_lossy(tensor.name()));
        for unit in tensor.process_units().iter().flat_map(|u| u.iter()) {
            if let Some(found) = unit_tokenizer(unit, &attached_to)? {
                return Ok(Some(found));
            }
        }
    }
    Ok(None)
}

/// Reads the associated file `name` from the zip archive appended to the model `file`.
pub fn associated_file(file: &[u8], name: &str) -> Result<Vec<u8>, TfliteError> {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(file)).map_err(|e| {
        invalid(format!(
            "the metadata names the associated file '{name}', but the file has no readable archive of associated files: {e}"
        ))
    })?;
    let entry = archive
        .by_name(name)
        .map_err(|e| invalid(format!("associated file '{name}': {e}")))?;
    if entry.size() > MAX_ASSOCIATED_FILE {
        return Err(invalid(format!(
            "associated file '{name}' is {} bytes, over the {MAX_ASSOCIATED_FILE}-byte limit",
            entry.size()
        )));
    }
    // The header's size is a claim: reserve at most 1 MB up front.
    let mut contents = Vec::with_capacity(entry.size().min(1 << 20) as usize);
    entry
        .take(MAX_ASSOCIATED_FILE + 1)
        .read_to_end(&mut contents)
        .map_err(|e| invalid(format!("associated file '{name}': {e}")))?;
    if contents.len() as u64 > MAX_ASSOCIATED_FILE {
        return Err(invalid(format!(
            "associated file '{name}' is over the {MAX_ASSOCIATED_FILE}-byte limit"
        )));
    }
    Ok(contents)
}

/// The fixed length of the model's first input, when its shape is [1, n] with n fixed.
fn fixed_input_len(model: &TfliteModel) -> Option<usize> {
    let t = &model.tensors[*model.inputs.first()?];
    if t.shape_signature.as_ref().is_some_and(|s| s.iter().any(|&d| d < 0)) {
        return None;
    }
    match t.shape[..] {
        [1, n] if n > 1 => Some(n),
        _ => None,
    }
}

/// The tokenizer the model file carries, if its metadata names one.
pub fn embedded_tokenizer(model: &TfliteModel) -> Result<Option<EmbeddedTokenizer>, TfliteError> {
    let Some(metadata) = model.metadata_bytes(METADATA_NAME) else {
        return Ok(None);
    };
    let Some(unit) = tokenizer_unit(metadata)? else {
        return Ok(None);
    };
    let contents = associated_file(model.file_bytes(), &unit.file)?;
    Ok(Some(EmbeddedTokenizer {
        unit,
        contents,
        max_seq_len: fixed_input_len(model),
    }))
}
