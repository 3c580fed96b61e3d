//! The request and response bodies of the OpenAI embeddings API and octet's extensions.
//!
//! Requests are read by hand from a `serde_json::Value`, not derived, so that every
//! mistake gets a 400 naming the field and the accepted forms (a derived reader gives 422s
//! and messages like "expected u64 at line 1 column 30").
//!
//! `POST /v1/embeddings`: `input` (a string, an array of strings, an array of token ids, or
//! an array of arrays of token ids), `model`, `dimensions`, `encoding_format` (`float` or
//! `base64`: little-endian f32 bytes), `user` (ignored), and the extensions `prompt_name`,
//! `truncate` (default true) and `normalize` (default: the model's own).
//! `POST /tokenize`: `input` (a string or an array of strings), `model`, `prompt_name`, `truncate`.

use super::errors::ApiError;
use serde::Serialize;
use serde_json::{Map, Value};

/// What to embed.
#[derive(Debug)]
pub enum Inputs {
    /// Texts, tokenized by the model's tokenizer.
    Texts(Vec<String>),
    /// Token-id sequences, used as given (as `/tokenize` returns them: special tokens included).
    Ids(Vec<Vec<u32>>),
}

impl Inputs {
    pub fn len(&self) -> usize {
        match self {
            Inputs::Texts(t) => t.len(),
            Inputs::Ids(s) => s.len(),
        }
    }
}

/// How vectors are sent back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// JSON numbers.
    Float,
    /// Base64 of the little-endian f32 bytes, as OpenAI sends them.
    Base64,
}

/// A parsed `POST /v1/embeddings` body.
#[derive(Debug)]
pub struct EmbeddingRequest {
    pub input: Inputs,
    pub model: Option<String>,
    pub dimensions: Option<usize>,
    pub encoding: Encoding,
    pub prompt_name: Option<String>,
    pub truncate: bool,
    pub normalize: Option<bool>,
}

/// A parsed `POST /tokenize` body.
#[derive(Debug)]
pub struct TokenizeRequest {
    pub input: Vec<String>,
    pub model: Option<String>,
    pub prompt_name: Option<String>,
    pub truncate: bool,
}

/// The body as a JSON object, with messages for the ways it can fail to be one.
pub fn parse_object(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request("the request body is empty; send a JSON object such as {\"model\": \"...\", \"input\": \"some text\"} with Content-Type: application/json"));
    }
    if let Err(e) = std::str::from_utf8(body) {
        return Err(ApiError::bad_request(format!(
            "the request body is not valid UTF-8 (bad byte at offset {}); send JSON encoded as UTF-8",
            e.valid_up_to()
        )));
    }
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("the request body is not valid JSON: {e}")))?;
    match value {
        Value::Object(map) => Ok(map),
        other => Err(ApiError::bad_request(format!(
            "the request body must be a JSON object, not {}",
            kind(&other)
        ))),
    }
}

/// Reads an embeddings request.
pub fn embedding_request(body: &[u8]) -> Result<EmbeddingRequest, ApiError> {
    let map = parse_object(body)?;
    let input = match map.get("input") {
        None | Some(Value::Null) => {
            return Err(ApiError::bad_param(
                "input",
                "the request has no 'input': send a string, an array of strings, or arrays of token ids",
            ))
        }
        Some(v) => inputs(v)?,
    };
    let dimensions = match map.get("dimensions") {
        None | Some(Value::Null) => None,
        Some(v) => Some(v.as_u64().and_then(|d| usize::try_from(d).ok()).ok_or_else(|| {
            ApiError::bad_param(
                "dimensions",
                format!("'dimensions' must be a positive integer, not {}", kind(v)),
            )
        })?),
    };
    let encoding = match map.get("encoding_format") {
        None | Some(Value::Null) => Encoding::Float,
        Some(Value::String(s)) if s == "float" => Encoding::Float,
        Some(Value::String(s)) if s == "base64" => Encoding::Base64,
        Some(v) => {
            return Err(ApiError::bad_param(
                "encoding_format",
                format!("'encoding_format' must be \"float\" or \"base64\", not {}", describe(v)),
            ))
        }
    };
    Ok(EmbeddingRequest {
        input,
        model: optional_string(&map, "model")?,
        dimensions,
        encoding,
        prompt_name: optional_string(&map, "prompt_name")?,
        truncate: optional_bool(&map, "truncate")?.unwrap_or(true),
        normalize: optional_bool(&map, "normalize")?,
    })
}

/// Reads a tokenize request (`input`, or llama-server's `content`).
pub fn tokenize_request(body: &[u8]) -> Result<TokenizeRequest, ApiError> {
    let map = parse_object(body)?;
    let input = match map.get("input").or_else(|| map.get("content")) {
        None | Some(Value::Null) => {
            return Err(ApiError::bad_param(
                "input",
                "the request has no 'input': send a string or an array of strings",
            ))
        }
        Some(v) => match inputs(v)? {
            Inputs::Texts(t) => t,
            Inputs::Ids(_) => {
                return Err(ApiError::bad_param(
                    "input",
                    "'input' of /tokenize must be a string or an array of strings, not token ids",
                ))
            }
        },
    };
    Ok(TokenizeRequest {
        input,
        model: optional_string(&map, "model")?,
        prompt_name: optional_string(&map, "prompt_name")?,
        truncate: optional_bool(&map, "truncate")?.unwrap_or(true),
    })
}

/// `input` in any of its four forms.
fn inputs(value: &Value) -> Result<Inputs, ApiError> {
    const FORMS: &str = "a string, an array of strings, an array of token ids, or an array of arrays of token ids";
    let items = match value {
        Value::String(s) => return Ok(Inputs::Texts(vec![s.clone()])),
        Value::Array(items) => items,
        other => {
            return Err(ApiError::bad_param(
                "input",
                format!("'input' must be {FORMS}, not {}", kind(other)),
            ))
        }
    };
    let Some(first) = items.first() else {
        return Err(ApiError::bad_param(
            "input",
            "'input' is an empty array; send at least one text",
        ));
    };
    match first {
        Value::String(_) => items
            .iter()
            .enumerate()
            .map(|(i, v)| match v {
                Value::String(s) => Ok(s.clone()),
                other => Err(ApiError::bad_param("input", format!("input[{i}] is {}, but input[0] is a string: an array must hold only strings, or only token ids", kind(other)))),
            })
            .collect::<Result<_, _>>()
            .map(Inputs::Texts),
        Value::Number(_) => Ok(Inputs::Ids(vec![token_ids(items, "input")?])),
        Value::Array(_) => items
            .iter()
            .enumerate()
            .map(|(i, v)| match v {
                Value::Array(ids) if ids.is_empty() => Err(ApiError::bad_param("input", format!("input[{i}] is an empty array of token ids; send at least one id"))),
                Value::Array(ids) => token_ids(ids, &format!("input[{i}]")),
                other => Err(ApiError::bad_param("input", format!("input[{i}] is {}, but input[0] is an array of token ids: an array must hold only arrays of token ids", kind(other)))),
            })
            .collect::<Result<_, _>>()
            .map(Inputs::Ids),
        other => Err(ApiError::bad_param("input", format!("input[0] is {}; 'input' must be {FORMS}", kind(other)))),
    }
}

/// An array of token ids: integers from 0 to 2^32 - 1 (the model's range is checked later).
fn token_ids(items: &[Value], at: &str) -> Result<Vec<u32>, ApiError> {
    items
        .iter()
        .enumerate()
        .map(|(j, v)| match v.as_u64().and_then(|id| u32::try_from(id).ok()) {
            Some(id) => Ok(id),
            None => Err(ApiError::bad_param(
                "input",
                format!(
                    "{at}[{j}] is {}: token ids are non-negative integers below the model's vocabulary size",
                    describe(v)
                ),
            )),
        })
        .collect()
}

fn optional_string(map: &Map<String, Value>, field: &'static str) -> Result<Option<String>, ApiError> {
    match map.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(v) => Err(ApiError::bad_param(
            field,
            format!("'{field}' must be a string, not {}", kind(v)),
        )),
    }
}

fn optional_bool(map: &Map<String, Value>, field: &'static str) -> Result<Option<bool>, ApiError> {
    match map.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(v) => Err(ApiError::bad_param(
            field,
            format!("'{field}' must be true or false, not {}", kind(v)),
        )),
    }
}

/// "a number", "an object"...: the JSON type, without the value (which may be the user's text).
fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A number or boolean as written; other values by their type only.
fn describe(value: &Value) -> String {
    match value {
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::String(s) if s.len() <= 16 => format!("\"{s}\""),
        other => kind(other).to_string(),
    }
}

/// One row of an embeddings answer.
#[derive(Serialize)]
pub struct EmbeddingRow {
    pub object: &'static str,
    pub index: usize,
    pub embedding: Vector,
}

/// A vector as floats or as base64 text.
#[derive(Serialize)]
#[serde(untagged)]
pub enum Vector {
    Float(Vec<f32>),
    Base64(String),
}

/// Token counts, as OpenAI reports them.
#[derive(Serialize)]
pub struct Usage {
    pub prompt_tokens: usize,
    pub total_tokens: usize,
}

/// The `POST /v1/embeddings` answer.
#[derive(Serialize)]
pub struct EmbeddingResponse {
    pub object: &'static str,
    pub data: Vec<EmbeddingRow>,
    pub model: String,
    pub usage: Usage,
}

/// One text of a `/tokenize` answer.
#[derive(Serialize)]
pub struct TokenizedText {
    pub index: usize,
    pub tokens: Vec<u32>,
    pub count: usize,
    pub truncated: bool,
}

/// The `POST /tokenize` answer; `count` is the total over all texts.
#[derive(Serialize)]
pub struct TokenizeResponse {
    pub model: String,
    pub data: Vec<TokenizedText>,
    pub count: usize,
}

/// One entry of `GET /v1/models`: OpenAI's fields, then the model's shape.
#[derive(Serialize, Clone)]
pub struct ModelCard {
    pub id: String,
    pub object: &'static str,
    pub created: u64,
    pub owned_by: &'static str,
    pub architecture: String,
    /// Width of the vectors.
    pub dimensions: usize,
    /// Widths the model was trained to be cut to (`dimensions`); empty when it was not.
    pub matryoshka_dimensions: Vec<usize>,
    /// The window in tokens, special tokens included.
    pub max_input_tokens: usize,
    /// Names accepted by `prompt_name`.
    pub prompts: Vec<String>,
    pub default_prompt: Option<String>,
    pub normalized: bool,
}

/// Base64 of the little-endian f32 bytes.
pub fn base64_f32(values: &[f32]) -> String {
    use base64::Engine;
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(body: &str) -> Result<Inputs, String> {
        embedding_request(body.as_bytes())
            .map(|r| r.input)
            .map_err(|e| e.message)
    }

    #[test]
    fn the_four_input_forms() {
        assert!(matches!(input(r#"{"input": "a"}"#), Ok(Inputs::Texts(t)) if t == ["a"]));
        assert!(matches!(input(r#"{"input": ["a", ""]}"#), Ok(Inputs::Texts(t)) if t == ["a", ""]));
        assert!(matches!(input(r#"{"input": [101, 102]}"#), Ok(Inputs::Ids(s)) if s == [vec![101, 102]]));
        assert!(matches!(input(r#"{"input": [[101], [7, 8]]}"#), Ok(Inputs::Ids(s)) if s == [vec![101], vec![7, 8]]));
    }

    #[test]
    fn mistakes_name_the_field_and_never_echo_long_text() {
        assert!(input(r#"{"input": []}"#).unwrap_err().contains("empty array"));
        assert!(input(r#"{"input": ["a", [1]]}"#)
            .unwrap_err()
            .contains("input[1] is an array"));
        assert!(input(r#"{"input": [[1], "a"]}"#)
            .unwrap_err()
            .contains("input[1] is a string"));
        assert!(input(r#"{"input": [1, -2]}"#).unwrap_err().contains("input[1] is -2"));
        let secret = "a private sentence that must not come back";
        let message = input(&format!(r#"{{"input": [[1, "{secret}"]]}}"#)).unwrap_err();
        assert!(!message.contains(secret), "{message}");
        let request = embedding_request(
            br#"{"input": "a", "dimensions": 8, "encoding_format": "base64", "truncate": false, "normalize": false}"#,
        )
        .unwrap();
        assert_eq!(
            (
                request.dimensions,
                request.encoding,
                request.truncate,
                request.normalize
            ),
            (Some(8), Encoding::Base64, false, Some(false))
        );
    }

    #[test]
    fn base64_is_little_endian_f32() {
        assert_eq!(base64_f32(&[1.0, -2.5]), "AACAPwAAIMA=");
    }
}
