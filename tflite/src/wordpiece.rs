//! A BERT `vocab.txt` (one WordPiece token per line, the line number is its id) turned into
//! the Hugging Face `tokenizer.json` the engine loads, built with the `tokenizers` crate's own
//! types: BERT normalizer (clean text, CJK spacing, lower case), BERT pre-tokenizer, WordPiece
//! with `[UNK]` and `##` continuations (100 characters at most per word), `[CLS] A [SEP]`
//! template, WordPiece decoder: the pipeline of a Hugging Face BERT's own `tokenizer.json`.
//! MediaPipe's and TFLite Support's BERT preprocessors lower-case ASCII only before their
//! WordPiece, so on non-ASCII capitals and accented letters the two can give different ids
//! (octet follows the Hugging Face form, which `tests/mediapipe.rs` checks against MiniLM's).

use crate::error::TfliteError;
use tokenizers::decoders::wordpiece::WordPiece as WordPieceDecoder;
use tokenizers::models::wordpiece::WordPiece;
use tokenizers::normalizers::bert::BertNormalizer;
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::{AddedToken, Tokenizer};

/// Special tokens of a BERT vocab: the required ones, then those used when present.
const REQUIRED: [&str; 3] = ["[UNK]", "[CLS]", "[SEP]"];
const OPTIONAL: [&str; 2] = ["[PAD]", "[MASK]"];

fn invalid(msg: impl Into<String>) -> TfliteError {
    TfliteError::Invalid(msg.into())
}

/// Builds the `tokenizer.json` bytes for the BERT vocabulary `vocab` (the associated file
/// `file`, named in errors).
pub fn tokenizer_json(vocab: &[u8], lower_case: bool, file: &str) -> Result<Vec<u8>, TfliteError> {
    if std::str::from_utf8(vocab).is_err() {
        return Err(invalid(format!("the BERT vocabulary '{file}' is not UTF-8 text")));
    }
    let tokens = WordPiece::read_bytes(vocab).map_err(|e| invalid(format!("the BERT vocabulary '{file}': {e}")))?;
    let id = |token: &str| tokens.get(token).copied();
    let mut special = Vec::new();
    for token in REQUIRED {
        let Some(i) = id(token) else {
            return Err(invalid(format!(
                "the BERT vocabulary '{file}' ({} tokens) has no {token} token",
                tokens.len()
            )));
        };
        special.push((token, i));
    }
    special.extend(OPTIONAL.iter().filter_map(|&t| id(t).map(|i| (t, i))));
    let (cls, sep) = (special[1].1, special[2].1);

    let model = WordPiece::builder()
        .vocab(tokens)
        .unk_token("[UNK]".to_string())
        .continuing_subword_prefix("##".to_string())
        .max_input_chars_per_word(100)
        .build()
        .map_err(|e| invalid(format!("the BERT vocabulary '{file}': {e}")))?;
    let template = TemplateProcessing::builder()
        .try_single("[CLS] $A [SEP]")
        .and_then(|b| b.try_pair("[CLS] $A [SEP] $B:1 [SEP]:1"))
        .map_err(|e| invalid(format!("BERT template: {e}")))?
        .special_tokens(vec![("[CLS]", cls), ("[SEP]", sep)])
        .build()
        .map_err(|e| invalid(format!("BERT template: {e}")))?;

    let mut tokenizer = Tokenizer::new(model);
    tokenizer
        .with_normalizer(Some(BertNormalizer::new(true, true, None, lower_case)))
        .with_pre_tokenizer(Some(BertPreTokenizer))
        .with_post_processor(Some(template))
        .with_decoder(Some(WordPieceDecoder::new("##".to_string(), true)));
    special.sort_by_key(|&(_, i)| i);
    let added: Vec<AddedToken> = special.iter().map(|&(t, _)| AddedToken::from(t, true)).collect();
    tokenizer.add_special_tokens(&added);
    tokenizer
        .to_string(false)
        .map(String::into_bytes)
        .map_err(|e| invalid(format!("cannot write the tokenizer.json for '{file}': {e}")))
}
