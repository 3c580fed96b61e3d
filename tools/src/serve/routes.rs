//! The HTTP routes and the two layers around them: the API-key check on the API routes, and
//! the observer that times every request, counts it by route and status, applies
//! `--request-timeout`, and logs one line per request (never its text).

use super::batcher::Batcher;
use super::errors::ApiError;
use super::metrics::Metrics;
use super::schema::{
    self, EmbeddingResponse, EmbeddingRow, Encoding, Inputs, ModelCard, TokenizeResponse, TokenizedText, Usage, Vector,
};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, MatchedPath, Path, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use octet::{Embedder, Truncation};
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One served model.
pub struct Model {
    pub name: String,
    pub embedder: Arc<Embedder>,
    pub batcher: Batcher,
    pub card: ModelCard,
    /// Token ids must be below this.
    pub vocab_rows: usize,
}

/// Per-request limits.
#[derive(Clone, Copy, Debug)]
pub struct RequestLimits {
    pub max_request_bytes: usize,
    pub max_inputs: usize,
    pub request_timeout: Duration,
}

/// Everything the handlers share.
pub struct App {
    pub models: Vec<Arc<Model>>,
    pub metrics: Arc<Metrics>,
    pub limits: RequestLimits,
    pub api_key: Option<String>,
}

impl App {
    /// The model a request names; with one model served, whatever it names (as llama-server does).
    fn model(&self, name: Option<&str>) -> Result<&Arc<Model>, ApiError> {
        if let [only] = self.models.as_slice() {
            return Ok(only);
        }
        let names = || {
            self.models
                .iter()
                .map(|m| m.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        match name {
            None => Err(ApiError::bad_param(
                "model",
                format!("this server serves several models; set 'model' to one of: {}", names()),
            )),
            Some(name) => self.models.iter().find(|m| m.name == name).ok_or_else(|| {
                ApiError::bad_param(
                    "model",
                    format!(
                        "unknown model '{name}'; this server serves: {} (GET /v1/models lists them)",
                        names()
                    ),
                )
            }),
        }
    }
}

/// What the log line says about an embeddings or tokenize request (never the text).
#[derive(Clone)]
struct Summary {
    model: String,
    inputs: usize,
    tokens: usize,
}

/// The router: API routes behind the key check, `/health` and `/metrics` open.
pub fn router(app: Arc<App>) -> Router {
    let api = Router::new()
        .route("/v1/embeddings", post(embeddings))
        .route("/v1/models", get(models))
        .route("/v1/models/{model}", get(model_card))
        .route("/tokenize", post(tokenize))
        .route_layer(middleware::from_fn_with_state(app.clone(), require_key));
    Router::new()
        .merge(api)
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .fallback(|| async { ApiError::not_found("no such route; this server has POST /v1/embeddings, GET /v1/models, POST /tokenize, GET /health and GET /metrics") })
        .method_not_allowed_fallback(|| async { ApiError::method_not_allowed("this route does not take this method: POST /v1/embeddings and /tokenize, GET the others") })
        .layer(DefaultBodyLimit::max(app.limits.max_request_bytes))
        .layer(middleware::from_fn_with_state(app.clone(), observe))
        .with_state(app)
}

/// `Authorization: Bearer KEY` when the server has a key. A refused request's body is read
/// (within the size limit) and dropped before the 401, so that the connection stays in a clean
/// state for the client's next request: a client that reuses a pooled connection must not find
/// it closed under it because a body was left unread.
async fn require_key(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    let Some(key) = &app.api_key else {
        return next.run(request).await;
    };
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let refusal = match given {
        Some(given) if same_secret(given.trim().as_bytes(), key.as_bytes()) => return next.run(request).await,
        Some(_) => "the API key is wrong; send the key the server was started with (--api-key or OCTET_API_KEY)",
        None => "this server requires an API key: send the header 'Authorization: Bearer <key>'",
    };
    let _ = axum::body::to_bytes(request.into_body(), app.limits.max_request_bytes).await;
    ApiError::unauthorized(refusal).into_response()
}

/// Compares without stopping at the first difference, so timing does not reveal the key.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Counts, times and logs a request; a request over `--request-timeout` is answered 408.
/// A request whose client disconnects is counted under status 499 (nginx's "client closed").
async fn observe(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |p| p.as_str())
        .to_string();
    let mut unanswered = Unanswered {
        app: app.clone(),
        route: route.clone(),
        started,
        done: false,
    };
    // A declared length over the limit is refused before any of the body is read.
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let response = if declared.is_some_and(|n| n > app.limits.max_request_bytes as u64) {
        ApiError::too_large(app.limits.max_request_bytes).into_response()
    } else {
        match tokio::time::timeout(app.limits.request_timeout, next.run(request)).await {
            Ok(response) => response,
            Err(_) => ApiError::timeout(app.limits.request_timeout).into_response(),
        }
    };
    unanswered.done = true;
    let status = response.status().as_u16();
    let seconds = started.elapsed().as_secs_f64();
    app.metrics.request(&route, status, seconds);
    let ms = (seconds * 1e4).round() / 10.0;
    match response.extensions().get::<Summary>() {
        Some(s) => {
            tracing::info!(%method, %route, status, ms, model = %s.model, inputs = s.inputs, tokens = s.tokens, "request")
        }
        None => tracing::info!(%method, %route, status, ms, "request"),
    }
    response
}

/// Records a request whose future was dropped (its client went away) when dropped unanswered.
struct Unanswered {
    app: Arc<App>,
    route: String,
    started: Instant,
    done: bool,
}

impl Drop for Unanswered {
    fn drop(&mut self) {
        if !self.done {
            let seconds = self.started.elapsed().as_secs_f64();
            self.app.metrics.request(&self.route, 499, seconds);
            tracing::info!(route = %self.route, status = 499, ms = (seconds * 1e4).round() / 10.0, "request: client disconnected");
        }
    }
}

/// The body, or 413 / 400 as OpenAI-style JSON (axum's own rejections are plain text).
fn body_bytes(body: Result<Bytes, BytesRejection>, limit: usize) -> Result<Bytes, ApiError> {
    body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::too_large(limit)
        } else {
            ApiError::bad_request(format!("could not read the request body: {}", rejection.body_text()))
        }
    })
}

/// Runs CPU work (tokenizing, encoding the answer) off the async threads.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal(format!("internal error (a bug in octet): {e}")))
}

/// An engine error on a client's texts.
fn text_error(err: octet::Error, window: usize) -> ApiError {
    match err {
        octet::Error::TextTooLong { index, .. } => ApiError::bad_param("input", format!("input[{index}] is longer than the model's window of {window} tokens and 'truncate' is false; shorten it, or send 'truncate': true to cut it")),
        octet::Error::Option(message) => ApiError::bad_param("prompt_name", message),
        octet::Error::Tokenizer(message) => ApiError::bad_param("input", message),
        other => ApiError::internal(format!("the model failed: {other}")),
    }
}

/// Tokenizes a request's texts on a blocking thread.
async fn tokenize_texts(
    model: &Arc<Model>,
    texts: Vec<String>,
    prompt: Option<String>,
    truncate: bool,
) -> Result<Vec<octet::tokenize::Tokens>, ApiError> {
    let embedder = model.embedder.clone();
    let window = embedder.window();
    let truncation = if truncate {
        Truncation::Truncate
    } else {
        Truncation::Error
    };
    blocking(move || embedder.tokenize(&texts, prompt.as_deref(), truncation))
        .await?
        .map_err(|e| text_error(e, window))
}

/// Checks token-id inputs against the model: ids in range, length within the window.
fn check_ids(model: &Model, mut sequences: Vec<Vec<u32>>, truncate: bool) -> Result<Vec<Vec<u32>>, ApiError> {
    let window = model.card.max_input_tokens;
    for (i, seq) in sequences.iter_mut().enumerate() {
        if let Some(id) = seq.iter().find(|&&id| id as usize >= model.vocab_rows) {
            return Err(ApiError::bad_param(
                "input",
                format!(
                    "input[{i}] has token id {id}, which is out of range: model '{}' has ids 0 to {}",
                    model.name,
                    model.vocab_rows - 1
                ),
            ));
        }
        if seq.len() > window {
            if !truncate {
                return Err(ApiError::bad_param("input", format!("input[{i}] has {} token ids, over the model's window of {window}, and 'truncate' is false; send at most {window} ids, or 'truncate': true", seq.len())));
            }
            seq.truncate(window);
        }
    }
    Ok(sequences)
}

/// `POST /v1/embeddings`.
async fn embeddings(State(app): State<Arc<App>>, body: Result<Bytes, BytesRejection>) -> Result<Response, ApiError> {
    let body = body_bytes(body, app.limits.max_request_bytes)?;
    let request = schema::embedding_request(&body)?;
    drop(body);
    let model = app.model(request.model.as_deref())?.clone();
    let inputs = request.input.len();
    if inputs > app.limits.max_inputs {
        return Err(ApiError::bad_param("input", format!("'input' has {inputs} items; this server takes at most {} per request (--max-inputs): split it into several requests", app.limits.max_inputs)));
    }
    let width = model.card.dimensions;
    if let Some(d) = request.dimensions {
        if d == 0 || d > width {
            return Err(ApiError::bad_param(
                "dimensions",
                format!(
                    "'dimensions' is {d}, but model '{}' gives 1 to {width} (its Matryoshka dimensions: {:?})",
                    model.name, model.card.matryoshka_dimensions
                ),
            ));
        }
    }
    let sequences = match request.input {
        Inputs::Texts(texts) => tokenize_texts(&model, texts, request.prompt_name, request.truncate)
            .await?
            .into_iter()
            .map(|t| t.ids)
            .collect(),
        Inputs::Ids(sequences) => {
            if request.prompt_name.is_some() {
                return Err(ApiError::bad_param("prompt_name", "'prompt_name' applies to text inputs; token ids are embedded as given (put the prompt's tokens in them)"));
            }
            check_ids(&model, sequences, request.truncate)?
        }
    };
    let tokens: usize = sequences.iter().map(Vec::len).sum();
    let rows = match model.batcher.submit(sequences) {
        Ok(rows) => rows,
        Err(_) => {
            app.metrics.rejected(&model.name);
            return Err(ApiError::overloaded(format!(
                "model '{}' has a full queue ({} texts waiting); retry in a moment",
                model.name,
                model.batcher.depth()
            )));
        }
    };
    let rows = rows
        .await
        .map_err(|_| ApiError::overloaded("the server is shutting down"))?
        .map_err(ApiError::internal)?;
    // Cutting to `dimensions` re-normalizes, as OpenAI's models do.
    let normalize = request
        .normalize
        .unwrap_or(model.card.normalized || request.dimensions.is_some());
    let (dims, encoding, name) = (request.dimensions, request.encoding, model.name.clone());
    let json = blocking(move || {
        let data = rows
            .into_iter()
            .enumerate()
            .map(|(index, row)| {
                let row = octet::pooling::finish(row, dims, normalize);
                let embedding = match encoding {
                    Encoding::Float => Vector::Float(row),
                    Encoding::Base64 => Vector::Base64(schema::base64_f32(&row)),
                };
                EmbeddingRow {
                    object: "embedding",
                    index,
                    embedding,
                }
            })
            .collect();
        serde_json::to_vec(&EmbeddingResponse {
            object: "list",
            data,
            model: name,
            usage: Usage {
                prompt_tokens: tokens,
                total_tokens: tokens,
            },
        })
    })
    .await?
    .map_err(|e| ApiError::internal(format!("cannot encode the answer: {e}")))?;
    Ok(json_response(
        json,
        Summary {
            model: model.name.clone(),
            inputs,
            tokens,
        },
    ))
}

/// `POST /tokenize`.
async fn tokenize(State(app): State<Arc<App>>, body: Result<Bytes, BytesRejection>) -> Result<Response, ApiError> {
    let body = body_bytes(body, app.limits.max_request_bytes)?;
    let request = schema::tokenize_request(&body)?;
    drop(body);
    let model = app.model(request.model.as_deref())?.clone();
    let inputs = request.input.len();
    if inputs > app.limits.max_inputs {
        return Err(ApiError::bad_param(
            "input",
            format!(
                "'input' has {inputs} items; this server takes at most {} per request (--max-inputs)",
                app.limits.max_inputs
            ),
        ));
    }
    let tokens = tokenize_texts(&model, request.input, request.prompt_name, request.truncate).await?;
    let data: Vec<TokenizedText> = tokens
        .into_iter()
        .enumerate()
        .map(|(index, t)| TokenizedText {
            index,
            count: t.ids.len(),
            tokens: t.ids,
            truncated: t.truncated,
        })
        .collect();
    let count = data.iter().map(|t| t.count).sum();
    let json = serde_json::to_vec(&TokenizeResponse {
        model: model.name.clone(),
        data,
        count,
    })
    .map_err(|e| ApiError::internal(format!("cannot encode the answer: {e}")))?;
    Ok(json_response(
        json,
        Summary {
            model: model.name.clone(),
            inputs,
            tokens: count,
        },
    ))
}

fn json_response(json: Vec<u8>, summary: Summary) -> Response {
    let mut response = (
        [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))],
        json,
    )
        .into_response();
    response.extensions_mut().insert(summary);
    response
}

/// `GET /v1/models`.
async fn models(State(app): State<Arc<App>>) -> Json<serde_json::Value> {
    let data: Vec<&ModelCard> = app.models.iter().map(|m| &m.card).collect();
    Json(json!({"object": "list", "data": data}))
}

/// `GET /v1/models/{model}`.
async fn model_card(State(app): State<Arc<App>>, Path(name): Path<String>) -> Result<Json<ModelCard>, ApiError> {
    app.models
        .iter()
        .find(|m| m.name == name)
        .map(|m| Json(m.card.clone()))
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "no model '{name}' here; GET /v1/models lists the served models"
            ))
        })
}

/// `GET /health`: the models are loaded before the server listens, so any answer is healthy.
async fn health(State(app): State<Arc<App>>) -> Json<serde_json::Value> {
    let names: Vec<&str> = app.models.iter().map(|m| m.name.as_str()).collect();
    Json(json!({"status": "ok", "models": names}))
}

/// `GET /metrics`.
async fn metrics(State(app): State<Arc<App>>) -> Response {
    let queues: Vec<(String, usize)> = app.models.iter().map(|m| (m.name.clone(), m.batcher.depth())).collect();
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4"),
        )],
        app.metrics.render(&queues),
    )
        .into_response()
}
