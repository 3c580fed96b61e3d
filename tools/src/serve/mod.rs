//! `octet serve`: an OpenAI-compatible embedding server with dynamic batching.
//!
//! Modules: [`schema`] reads requests and shapes answers, [`routes`] holds the handlers and
//! the auth / logging layers, [`batcher`] the per-model queue that forms forward passes,
//! [`metrics`] the Prometheus counters, [`errors`] OpenAI's error shape, and [`conn`] the
//! accept loop with its timeouts and graceful shutdown. This file reads the flags, opens the
//! models, and starts everything.

mod batcher;
mod conn;
mod errors;
mod metrics;
mod routes;
mod schema;

use crate::load;
use anyhow::{Context, Result};
use batcher::{BatchLimits, Batcher};
use clap::Args;
use metrics::Metrics;
use octet_tools::exit::CliError;
use routes::{App, Model, RequestLimits};
use schema::ModelCard;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Serve models over HTTP with OpenAI's embeddings API.
///
/// Routes:
///   POST /v1/embeddings   OpenAI's request: input (a string, an array of strings, or arrays
///                         of token ids), model, dimensions, encoding_format (float|base64),
///                         user (ignored); octet's extensions: prompt_name (e.g. "query"),
///                         truncate (default true: cut texts to the window; false: 400),
///                         normalize (default: as the model does)
///   GET  /v1/models       the served models, with width, window, prompts, Matryoshka dims
///   POST /tokenize        {"input": "text" or ["texts"]} -> token ids and counts
///   GET  /health          200 {"status": "ok"} (models are loaded before the port opens)
///   GET  /metrics         Prometheus text: requests by status, latency, queue depth, pass sizes
///
/// Requests from all clients join one queue per model; each forward pass takes queued texts up
/// to --max-batch-tokens, waiting at most --max-wait-ms for more, and every request gets its
/// own rows back. A full queue answers 503 with Retry-After. With one model, the request's
/// "model" is not checked; with several (--model NAME=PATH, repeatable), it picks one.
///
/// The address is printed on standard output ("listening on http://127.0.0.1:8080"); logs (one
/// line per request, never its text) go to standard error, filtered by OCTET_LOG (default
/// info). SIGTERM or SIGINT stops accepting, lets requests in flight finish for up to
/// --shutdown-timeout seconds, and exits 0.
///
/// Examples:
///   octet serve minilm-int8.octet --port 8080
///   octet serve --model minilm=minilm-int8.octet --model gemma=gemma.octet --api-key secret
///   curl localhost:8080/v1/embeddings -d '{"model": "minilm", "input": ["The cat sat."]}'
#[derive(Args)]
#[command(verbatim_doc_comment)]
pub struct ServeArgs {
    /// .octet model files, each served under its file name without the extension.
    models: Vec<PathBuf>,
    /// Serve the model file PATH under NAME (repeatable).
    #[arg(long = "model", value_name = "NAME=PATH")]
    named: Vec<String>,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port to listen on (0: any free port; the address line says which).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Compute threads per model (0: one per core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Tokens per forward pass; a longer single text still runs, alone.
    #[arg(long, default_value_t = 2048)]
    max_batch_tokens: usize,
    /// Milliseconds the oldest queued text may wait for a pass to fill (0: run what is queued
    /// at once; passes still fill up under load, from requests that arrive during a pass).
    #[arg(long, default_value_t = 0)]
    max_wait_ms: u64,
    /// Texts each model's queue holds; more gets 503 (an empty queue takes any request).
    #[arg(long, default_value_t = 4096)]
    max_queue: usize,
    /// Largest request body in bytes; more gets 413.
    #[arg(long, default_value_t = 8 << 20)]
    max_request_bytes: usize,
    /// Most inputs in one request; more gets 400.
    #[arg(long, default_value_t = 2048)]
    max_inputs: usize,
    /// Require 'Authorization: Bearer KEY' on /v1/* and /tokenize (also: OCTET_API_KEY).
    #[arg(long, value_name = "KEY")]
    api_key: Option<String>,
    /// Seconds a request may take from arrival to answer; more gets 408.
    #[arg(long, default_value_t = 60.0)]
    request_timeout: f64,
    /// Seconds a client has to send a request's headers before the connection is closed.
    #[arg(long, default_value_t = 10.0)]
    header_timeout: f64,
    /// Seconds requests in flight get to finish after SIGTERM / SIGINT.
    #[arg(long, default_value_t = 10.0)]
    shutdown_timeout: f64,
}

/// A positive number of seconds from a flag.
fn seconds(flag: &str, value: f64) -> Result<Duration> {
    if !(value > 0.0 && value.is_finite() && value < 1e9) {
        return Err(CliError::usage(format!(
            "{flag} must be a positive number of seconds, not {value}"
        )));
    }
    Ok(Duration::from_secs_f64(value))
}

/// (name, path) of every model to serve.
fn model_list(args: &ServeArgs) -> Result<Vec<(String, PathBuf)>> {
    let mut list = Vec::new();
    for path in &args.models {
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        list.push((name, path.clone()));
    }
    for spec in &args.named {
        let Some((name, path)) = spec.split_once('=').filter(|(n, p)| !n.is_empty() && !p.is_empty()) else {
            return Err(CliError::usage(format!(
                "--model takes NAME=PATH (e.g. --model minilm=minilm-int8.octet), not '{spec}'"
            )));
        };
        list.push((name.to_string(), PathBuf::from(path)));
    }
    if list.is_empty() {
        return Err(CliError::usage(
            "no model to serve: give a .octet file (octet serve minilm-int8.octet) or --model NAME=PATH",
        ));
    }
    for (i, (name, _)) in list.iter().enumerate() {
        if list[..i].iter().any(|(other, _)| other == name) {
            return Err(CliError::usage(format!(
                "two models are named '{name}'; name them apart with --model NAME=PATH"
            )));
        }
    }
    Ok(list)
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("OCTET_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

/// Runs the server until SIGTERM or SIGINT.
pub fn run(args: ServeArgs) -> Result<()> {
    let started = Instant::now();
    init_logging();
    let list = model_list(&args)?;
    let conn_limits = conn::ConnLimits {
        header_timeout: seconds("--header-timeout", args.header_timeout)?,
        shutdown_timeout: seconds("--shutdown-timeout", args.shutdown_timeout)?,
    };
    let limits = RequestLimits {
        max_request_bytes: args.max_request_bytes,
        max_inputs: args.max_inputs.max(1),
        request_timeout: seconds("--request-timeout", args.request_timeout)?,
    };
    let batch = BatchLimits {
        max_batch_tokens: args.max_batch_tokens.max(1),
        max_wait: Duration::from_millis(args.max_wait_ms),
        max_queue: args.max_queue.max(1),
    };
    let api_key = args
        .api_key
        .clone()
        .or_else(|| std::env::var("OCTET_API_KEY").ok())
        .filter(|k| !k.is_empty());

    let metrics = Arc::new(Metrics::default());
    let created = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let mut models = Vec::new();
    for (name, path) in list {
        let embedder = Arc::new(load::open_model(&path, args.threads)?);
        let meta = embedder.file().meta();
        let card = ModelCard {
            id: name.clone(),
            object: "model",
            created,
            owned_by: "octet",
            architecture: meta.architecture.as_str().to_string(),
            dimensions: embedder.dim(),
            matryoshka_dimensions: meta.matryoshka_dims.clone(),
            max_input_tokens: embedder.window(),
            prompts: meta.prompts.keys().cloned().collect(),
            default_prompt: meta.default_prompt.clone(),
            normalized: meta.pooling.normalize,
        };
        let vocab_rows = embedder
            .vocab_rows()
            .with_context(|| format!("cannot use the model {}", path.display()))?;
        let batcher = Batcher::start(name.clone(), embedder.clone(), batch, metrics.clone())
            .context("cannot start a batcher thread")?;
        tracing::info!(model = %name, path = %path.display(), dimensions = card.dimensions, window = card.max_input_tokens, threads = embedder.threads(), "model loaded");
        models.push(Arc::new(Model {
            name,
            embedder,
            batcher,
            card,
            vocab_rows,
        }));
    }
    let app = Arc::new(App {
        models,
        metrics,
        limits,
        api_key,
    });

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(64)
        .thread_name("octet-http")
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind((args.host.as_str(), args.port))
            .await
            .map_err(|e| CliError::io(format!("cannot listen on {}:{}: {e} (another server on the port? --port 0 picks a free one)", args.host, args.port)))?;
        let address = listener.local_addr().context("the listening socket has no address")?;
        let shutdown = conn::signal().context("cannot install the SIGTERM / SIGINT handlers")?;
        tracing::info!(%address, startup_ms = started.elapsed().as_millis() as u64, auth = app.api_key.is_some(), "listening");
        let mut stdout = std::io::stdout();
        writeln!(stdout, "listening on http://{address}").and_then(|()| stdout.flush()).context("cannot write the address to standard output")?;
        conn::serve(listener, routes::router(app.clone()), conn_limits, shutdown).await;
        anyhow::Ok(())
    })?;
    runtime.shutdown_timeout(Duration::from_secs(1));
    tracing::info!("stopped");
    Ok(())
}
