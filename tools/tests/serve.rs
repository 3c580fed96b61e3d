//! `octet serve` as clients use it: the binary started on a free port with the real
//! all-MiniLM-L6-v2 (int8, converted by the binary) and a tiny T5 fixture, driven over HTTP.
//! Vectors must equal `octet embed`'s bit for bit, whatever the batching; every kind of bad
//! request gets its OpenAI-style error and the server keeps serving after it; load beyond the
//! queue gets 503s; SIGTERM lets the request in flight finish and exits 0.
//!
//! The model is fetched with `scripts/fetch-minilm.sh` (a no-op when cached): a missing model
//! fails the tests, it never skips them.

mod common;

use common::repo_root;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Barrier, Mutex, OnceLock};
use std::time::{Duration, Instant};

const OCTET: &str = env!("CARGO_BIN_EXE_octet");

/// A scratch folder unique to this test process (earlier processes' folders are removed).
fn scratch() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| common::process_scratch("octet-serve-tests"))
}

fn convert(source: &str, out: &Path) {
    let o = Command::new(OCTET)
        .args(["convert", source, "-o", out.to_str().unwrap(), "--quant", "int8", "-q"])
        .output()
        .expect("run octet convert");
    assert!(
        o.status.success(),
        "octet convert {source} failed:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// all-MiniLM-L6-v2 converted to int8 by the binary, once per process.
fn minilm() -> &'static str {
    static MODEL: OnceLock<PathBuf> = OnceLock::new();
    MODEL
        .get_or_init(|| {
            let out = scratch().join("minilm.octet");
            common::convert_minilm_int8(OCTET, &out);
            out
        })
        .to_str()
        .unwrap()
}

/// The tiny seeded T5 encoder of tests/fixtures (64 wide), converted to int8.
fn t5() -> &'static str {
    static MODEL: OnceLock<PathBuf> = OnceLock::new();
    MODEL
        .get_or_init(|| {
            let out = scratch().join("t5.octet");
            convert(repo_root().join("tests/fixtures/t5/relu/model").to_str().unwrap(), &out);
            out
        })
        .to_str()
        .unwrap()
}

/// Sentences of the Lee corpus (the benchmark's texts), cut to their first 10 words to keep
/// the suite fast on 2 cores.
fn sentences() -> Vec<String> {
    std::fs::read_to_string(repo_root().join("tools/data/lee-sentences.txt"))
        .expect("read lee-sentences.txt")
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| l.split_whitespace().take(10).collect::<Vec<_>>().join(" "))
        .collect()
}

/// `octet embed`'s vectors for `texts` (JSON lines).
fn embed_cli(model: &str, texts: &[&str]) -> Vec<Vec<f32>> {
    let mut args = vec!["embed", model];
    args.extend_from_slice(texts);
    let o = Command::new(OCTET).args(&args).output().expect("run octet embed");
    assert!(
        o.status.success(),
        "octet embed failed:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout)
        .unwrap()
        .lines()
        .map(|l| floats(&serde_json::from_str::<Value>(l).unwrap()["embedding"]))
        .collect()
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .expect("an array of numbers")
        .iter()
        .map(|x| x.as_f64().expect("a number") as f32)
        .collect()
}

/// A running `octet serve`, killed when dropped.
struct Server {
    child: Child,
    address: String,
    log: Arc<Mutex<String>>,
    agent: ureq::Agent,
}

impl Server {
    /// Starts `octet serve --port 0 ARGS` and waits for its address line.
    fn start(args: &[&str]) -> Server {
        Server::start_with_env(args, &[])
    }

    fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> Server {
        // One compute thread unless the test asks for more: tests run side by side.
        let threads: &[&str] = if args.contains(&"--threads") {
            &[]
        } else {
            &["--threads", "1"]
        };
        let mut child = Command::new(OCTET)
            .arg("serve")
            .args(["--port", "0"])
            .args(threads)
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start octet serve");
        let log = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().unwrap();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push_str(&(line + "\n"));
            }
        });
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(line)) = lines.next() {
                let _ = tx.send(line);
            }
            for _ in lines {}
        });
        let line = match rx.recv_timeout(Duration::from_secs(120)) {
            Ok(line) => line,
            Err(_) => {
                let _ = child.kill();
                panic!("octet serve printed no address; its log:\n{}", log.lock().unwrap());
            }
        };
        let address = line
            .strip_prefix("listening on http://")
            .unwrap_or_else(|| panic!("unexpected first line: {line}"))
            .to_string();
        let agent = ureq::AgentBuilder::new()
            .timeout(Duration::from_secs(300))
            .max_idle_connections_per_host(128)
            .build();
        Server {
            child,
            address,
            log,
            agent,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    fn answer(result: Result<ureq::Response, ureq::Error>) -> (u16, ureq::Response) {
        match result {
            Ok(r) => (r.status(), r),
            Err(ureq::Error::Status(code, r)) => (code, r),
            Err(e) => panic!("transport error: {e}"),
        }
    }

    /// POSTs raw bytes; status and the body as JSON.
    fn post_bytes(&self, path: &str, body: &[u8], key: Option<&str>) -> (u16, Value) {
        let mut request = self.agent.post(&self.url(path)).set("Content-Type", "application/json");
        if let Some(key) = key {
            request = request.set("Authorization", &format!("Bearer {key}"));
        }
        let (status, response) = Server::answer(request.send_bytes(body));
        let mut text = String::new();
        response.into_reader().read_to_string(&mut text).expect("read the body");
        (
            status,
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("status {status}: body is not JSON ({e}): {text}")),
        )
    }

    fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.post_bytes(path, body.to_string().as_bytes(), None)
    }

    fn get(&self, path: &str) -> (u16, String) {
        let (status, response) = Server::answer(self.agent.get(&self.url(path)).call());
        (status, response.into_string().expect("read the body"))
    }

    /// The vectors of one embeddings request (asserts 200).
    fn embed(&self, body: &Value) -> Vec<Vec<f32>> {
        let (status, answer) = self.post("/v1/embeddings", body);
        assert_eq!(status, 200, "{answer}");
        rows(&answer)
    }

    fn healthy(&self) {
        let (status, body) = self.get("/health");
        assert_eq!(status, 200, "{body}");
        let v = self.embed(&json!({"input": "still serving"}));
        assert_eq!(v.len(), 1);
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The float rows of an embeddings answer, checking `index` order.
fn rows(answer: &Value) -> Vec<Vec<f32>> {
    assert_eq!(answer["object"], "list");
    answer["data"]
        .as_array()
        .expect("data")
        .iter()
        .enumerate()
        .map(|(i, row)| {
            assert_eq!(row["index"], i);
            assert_eq!(row["object"], "embedding");
            floats(&row["embedding"])
        })
        .collect()
}

/// Asserts an OpenAI-style error with `status` whose message contains `needle`.
fn assert_error(got: (u16, Value), status: u16, needle: &str) {
    let (code, body) = got;
    assert_eq!(code, status, "{body}");
    let message = body["error"]["message"]
        .as_str()
        .unwrap_or_else(|| panic!("no error.message: {body}"));
    assert!(message.contains(needle), "message {message:?} lacks {needle:?}");
    assert!(body["error"]["type"].is_string(), "{body}");
}

fn norm(v: &[f32]) -> f32 {
    v.iter().map(|x| x * x).sum::<f32>().sqrt()
}

/// Sends raw bytes on a fresh connection and returns what the server sends back before closing
/// (or within `wait`).
fn raw_exchange(address: &str, bytes: &[u8], close_write: bool, wait: Duration) -> String {
    let mut stream = TcpStream::connect(address).expect("connect");
    stream.set_read_timeout(Some(wait)).unwrap();
    stream.write_all(bytes).expect("send");
    if close_write {
        stream.shutdown(std::net::Shutdown::Write).unwrap();
    }
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

#[test]
fn health_models_metrics_and_routes() {
    let server = Server::start(&["--model", &format!("minilm={}", minilm())]);
    let (status, body) = server.get("/health");
    assert_eq!(status, 200);
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["status"], "ok");
    let (status, body) = server.get("/v1/models");
    assert_eq!(status, 200);
    let models: Value = serde_json::from_str(&body).unwrap();
    let card = &models["data"][0];
    assert_eq!(card["id"], "minilm");
    assert_eq!(card["object"], "model");
    assert_eq!(card["dimensions"], 384);
    assert_eq!(card["max_input_tokens"], 256);
    assert_eq!(card["matryoshka_dimensions"], json!([]));
    assert_eq!(server.get("/v1/models/minilm").0, 200);
    assert_error(server.post("/v1/nope", &json!({})), 404, "no such route");
    let (status, body) = server.get("/v1/embeddings");
    assert_eq!(status, 405, "{body}");
    server.embed(&json!({"input": ["one", "two"], "model": "anything"}));
    let (status, text) = server.get("/metrics");
    assert_eq!(status, 200);
    for needle in [
        "octet_requests_total{route=\"/v1/embeddings\",status=\"200\"} 1",
        "octet_queue_depth{model=\"minilm\"} 0",
        "octet_batch_texts_bucket{model=\"minilm\",le=\"2\"} 1",
        "octet_batch_tokens_count{model=\"minilm\"} 1",
        "octet_request_duration_seconds_count{route=\"/v1/embeddings\"}",
        "octet_embedded_texts_total{model=\"minilm\"} 2",
    ] {
        assert!(text.contains(needle), "/metrics lacks {needle}:\n{text}");
    }
}

#[test]
fn vectors_equal_octet_embed_as_float_and_base64() {
    let texts = ["The cat sat on the mat.", "zebra-marker-7731 is a word nobody logs", "", "A much longer sentence about the national executive of the strife-torn Democrats appointing an interim leader."];
    let expected = embed_cli(minilm(), &texts);
    let server = Server::start(&[minilm()]);
    let (status, answer) = server.post(
        "/v1/embeddings",
        &json!({"input": texts, "model": "text-embedding-3-small", "user": "ignored"}),
    );
    assert_eq!(status, 200, "{answer}");
    assert_eq!(rows(&answer), expected);
    assert_eq!(answer["model"], "minilm");
    // usage counts the tokenizer's ids, special tokens included.
    let (status, tokenized) = server.post("/tokenize", &json!({"input": texts}));
    assert_eq!(status, 200, "{tokenized}");
    assert_eq!(answer["usage"]["prompt_tokens"], tokenized["count"]);
    assert_eq!(answer["usage"]["total_tokens"], tokenized["count"]);
    assert_eq!(tokenized["data"][0]["tokens"][0], 101);
    // A single string is one row.
    assert_eq!(server.embed(&json!({"input": texts[0]})), vec![expected[0].clone()]);
    // base64: the little-endian f32 bytes.
    let (status, answer) = server.post("/v1/embeddings", &json!({"input": texts, "encoding_format": "base64"}));
    assert_eq!(status, 200, "{answer}");
    for (row, want) in answer["data"].as_array().unwrap().iter().zip(&expected) {
        let bytes = base64_decode(row["embedding"].as_str().expect("a base64 string"));
        let got: Vec<f32> = bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect();
        assert_eq!(&got, want);
    }
    // normalize=false gives the raw mean; its direction is the same.
    let raw = server.embed(&json!({"input": texts[0], "normalize": false}));
    assert!((norm(&raw[0]) - 1.0).abs() > 1e-3);
    // The log has one line per request and never the text.
    std::thread::sleep(Duration::from_millis(100));
    let log = server.log.lock().unwrap().clone();
    assert!(
        log.contains("route=/v1/embeddings") && log.contains("status=200"),
        "{log}"
    );
    assert!(!log.contains("zebra-marker"), "the log shows a text:\n{log}");
}

fn base64_decode(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for c in text.bytes().filter(|&c| c != b'=') {
        acc = (acc << 6) | ALPHABET.iter().position(|&a| a == c).expect("base64 character") as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

#[test]
fn token_ids_in_and_out_of_range() {
    let server = Server::start(&[minilm()]);
    let texts = ["The cat sat on the mat.", "A dog barked."];
    let by_text = server.embed(&json!({"input": texts}));
    let (_, tokenized) = server.post("/tokenize", &json!({"input": texts}));
    let ids: Vec<Value> = tokenized["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["tokens"].clone())
        .collect();
    assert_eq!(server.embed(&json!({"input": ids})), by_text);
    assert_eq!(server.embed(&json!({"input": ids[0]})), vec![by_text[0].clone()]);
    assert_error(
        server.post("/v1/embeddings", &json!({"input": [[101, 30522, 102]]})),
        400,
        "out of range",
    );
    assert_error(
        server.post("/v1/embeddings", &json!({"input": [101, 4294967296u64, 102]})),
        400,
        "token ids are non-negative integers",
    );
    assert_error(
        server.post("/v1/embeddings", &json!({"input": [[101, -1, 102]]})),
        400,
        "input[0][1] is -1",
    );
    assert_error(
        server.post("/v1/embeddings", &json!({"input": [[101, 1.5]]})),
        400,
        "1.5",
    );
    assert_error(
        server.post("/v1/embeddings", &json!({"input": [[101, 102], []]})),
        400,
        "input[1] is an empty array",
    );
    let long: Vec<u32> = std::iter::once(101).chain(std::iter::repeat_n(1996, 400)).collect();
    assert_error(
        server.post("/v1/embeddings", &json!({"input": [long], "truncate": false})),
        400,
        "window of 256",
    );
    assert_eq!(server.embed(&json!({"input": [long]})).len(), 1);
    assert_error(
        server.post(
            "/v1/embeddings",
            &json!({"input": [[101, 102]], "prompt_name": "query"}),
        ),
        400,
        "prompt_name",
    );
    server.healthy();
}

#[test]
fn several_models_and_dimensions() {
    let server = Server::start(&[
        "--model",
        &format!("minilm={}", minilm()),
        "--model",
        &format!("t5={}", t5()),
    ]);
    let (_, body) = server.get("/v1/models");
    let ids: Vec<String> = serde_json::from_str::<Value>(&body).unwrap()["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, ["minilm", "t5"]);
    let texts = ["The cat sat on the mat.", "Another text entirely."];
    let mini = server.embed(&json!({"input": texts, "model": "minilm"}));
    let t5_full = server.embed(&json!({"input": texts, "model": "t5"}));
    assert_eq!(mini, embed_cli(minilm(), &texts));
    assert_eq!(t5_full, embed_cli(t5(), &texts));
    assert_eq!(t5_full[0].len(), 64);
    assert_error(
        server.post("/v1/embeddings", &json!({"input": texts})),
        400,
        "set 'model' to one of: minilm, t5",
    );
    assert_error(
        server.post("/v1/embeddings", &json!({"input": texts, "model": "gpt"})),
        400,
        "unknown model 'gpt'",
    );
    // dimensions: the first n values, re-normalized.
    for (model, full, dims) in [("t5", &t5_full, 32), ("minilm", &mini, 128)] {
        let cut = server.embed(&json!({"input": texts, "model": model, "dimensions": dims}));
        for (c, f) in cut.iter().zip(full.iter()) {
            assert_eq!(c.len(), dims);
            assert!((norm(c) - 1.0).abs() < 1e-5, "not normalized: {}", norm(c));
            let scale = norm(&f[..dims]);
            for (a, b) in c.iter().zip(&f[..dims]) {
                assert!((a - b / scale).abs() < 1e-6, "{a} vs {}", b / scale);
            }
        }
    }
    assert_error(
        server.post(
            "/v1/embeddings",
            &json!({"input": texts, "model": "t5", "dimensions": 0}),
        ),
        400,
        "'dimensions' is 0",
    );
    assert_error(
        server.post(
            "/v1/embeddings",
            &json!({"input": texts, "model": "t5", "dimensions": 65}),
        ),
        400,
        "1 to 64",
    );
    assert_error(
        server.post(
            "/v1/embeddings",
            &json!({"input": texts, "model": "t5", "dimensions": "32"}),
        ),
        400,
        "positive integer",
    );
}

#[test]
fn api_key_is_required() {
    for server in [
        Server::start(&[minilm(), "--api-key", "s3cret"]),
        Server::start_with_env(&[minilm()], &[("OCTET_API_KEY", "s3cret")]),
    ] {
        let body = json!({"input": "hi"}).to_string();
        let (status, answer) = server.post_bytes("/v1/embeddings", body.as_bytes(), None);
        assert_eq!(status, 401, "{answer}");
        assert_eq!(answer["error"]["type"], "authentication_error");
        assert_eq!(answer["error"]["code"], "invalid_api_key");
        assert_error(
            server.post_bytes("/v1/embeddings", body.as_bytes(), Some("wrong")),
            401,
            "wrong",
        );
        assert_error(
            server.post_bytes("/tokenize", body.as_bytes(), Some("s3cret!")),
            401,
            "wrong",
        );
        assert_eq!(server.get("/v1/models").0, 401);
        let (status, answer) = server.post_bytes("/v1/embeddings", body.as_bytes(), Some("s3cret"));
        assert_eq!(status, 200, "{answer}");
        assert_eq!(server.get("/health").0, 200);
    }
}

#[test]
fn bad_requests_get_400_and_the_server_goes_on() {
    let server = Server::start(&[minilm()]);
    let cases: Vec<(&[u8], &str)> = vec![
        (b"{\"input\": [\"a\",", "not valid JSON"),
        (b"{\"input\": \"a\"} trailing", "not valid JSON"),
        (b"", "body is empty"),
        (b"[1, 2]", "must be a JSON object, not an array"),
        (b"{\"input\": 5}", "'input' must be a string"),
        (b"{\"input\": {\"text\": \"a\"}}", "not an object"),
        (b"{\"input\": [\"a\", 1]}", "input[1] is a number"),
        (b"{\"input\": [[\"a\"]]}", "input[0][0] is \"a\""),
        (b"{\"input\": [null]}", "input[0] is null"),
        (b"{\"input\": []}", "empty array"),
        (b"{\"model\": \"minilm\"}", "no 'input'"),
        (b"{\"input\": \"caf\xff\"}", "not valid UTF-8"),
        (
            b"{\"input\": \"a\", \"encoding_format\": \"int8\"}",
            "\"float\" or \"base64\"",
        ),
        (
            b"{\"input\": \"a\", \"truncate\": \"yes\"}",
            "'truncate' must be true or false",
        ),
        (b"{\"input\": \"a\", \"model\": 3}", "'model' must be a string"),
        (
            b"{\"input\": \"a\", \"prompt_name\": \"query\"}",
            "unknown prompt 'query'",
        ),
    ];
    for (body, needle) in cases {
        let got = server.post_bytes("/v1/embeddings", body, None);
        assert_eq!(got.1["error"]["type"], "invalid_request_error", "{}", got.1);
        assert_error(got, 400, needle);
    }
    let long = "word ".repeat(400);
    assert_error(
        server.post("/v1/embeddings", &json!({"input": ["short", long], "truncate": false})),
        400,
        "input[1] is longer than the model's window of 256 tokens",
    );
    assert_error(
        server.post("/tokenize", &json!({"input": [[1, 2]]})),
        400,
        "not token ids",
    );
    server.healthy();
}

#[test]
fn body_over_the_limit_is_413() {
    let server = Server::start(&[minilm(), "--max-request-bytes", "2000"]);
    let big = json!({"input": ["x".repeat(3000)]}).to_string();
    assert_error(
        server.post_bytes("/v1/embeddings", big.as_bytes(), None),
        413,
        "--max-request-bytes",
    );
    // A declared length over the limit is refused without the body being sent.
    let head = format!("POST /v1/embeddings HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: 100000000\r\n\r\n{{\"input\": ", server.address);
    let answer = raw_exchange(&server.address, head.as_bytes(), false, Duration::from_secs(20));
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("--max-request-bytes"), "{answer}");
    server.healthy();
}

#[test]
fn header_only_and_truncated_requests() {
    let server = Server::start(&[minilm()]);
    let host = &server.address;
    // Headers and no body at all.
    let answer = raw_exchange(
        host,
        format!("POST /v1/embeddings HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            .as_bytes(),
        false,
        Duration::from_secs(20),
    );
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("body is empty"), "{answer}");
    let answer = raw_exchange(
        host,
        format!("POST /v1/embeddings HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
        false,
        Duration::from_secs(20),
    );
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    // Headers promising 100 bytes, 10 sent, then the client closes: no answer is owed, and
    // the server goes on.
    let _ = raw_exchange(
        host,
        format!("POST /v1/embeddings HTTP/1.1\r\nHost: {host}\r\nContent-Length: 100\r\n\r\n{{\"input\": ").as_bytes(),
        true,
        Duration::from_secs(20),
    );
    // Half the header block, then close.
    let _ = raw_exchange(
        host,
        b"POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nContent-Le",
        true,
        Duration::from_secs(20),
    );
    server.healthy();
}

#[test]
fn slowloris_does_not_block_others_and_is_cut_off() {
    let server = Server::start(&[minilm(), "--header-timeout", "3", "--request-timeout", "3"]);
    let address = server.address.clone();
    // One byte a second of headers, and one byte a second of a body.
    let trickle = |head: String, total: usize| {
        let address = address.clone();
        std::thread::spawn(move || {
            let mut stream = TcpStream::connect(&address).unwrap();
            stream.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
            let started = Instant::now();
            let mut answer = Vec::new();
            for byte in head.bytes().chain(std::iter::repeat(b' ')).take(total) {
                if stream.write_all(&[byte]).is_err() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(1000));
                let mut buf = [0u8; 4096];
                match stream.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => answer.extend_from_slice(&buf[..n]),
                    Err(_) => {}
                }
                if !answer.is_empty() {
                    break;
                }
            }
            (started.elapsed(), String::from_utf8_lossy(&answer).into_owned())
        })
    };
    let slow_headers = trickle(
        "POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nContent-Length: 20\r\n\r\n".into(),
        30,
    );
    let body_head = "POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n";
    let slow_body = {
        let address = address.clone();
        std::thread::spawn(move || {
            let mut stream = TcpStream::connect(&address).unwrap();
            stream.write_all(body_head.as_bytes()).unwrap();
            stream.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
            let started = Instant::now();
            let mut answer = Vec::new();
            for _ in 0..30 {
                if stream.write_all(b" ").is_err() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(1000));
                let mut buf = [0u8; 4096];
                match stream.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => answer.extend_from_slice(&buf[..n]),
                    Err(_) => {}
                }
                if !answer.is_empty() {
                    break;
                }
            }
            (started.elapsed(), String::from_utf8_lossy(&answer).into_owned())
        })
    };
    // Meanwhile, others are served at once.
    for i in 0..10 {
        let started = Instant::now();
        server.embed(&json!({"input": format!("request {i}")}));
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "a request took {:?} beside a slow client",
            started.elapsed()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let (took, _) = slow_headers.join().unwrap();
    assert!(
        took < Duration::from_secs(15),
        "the slow-header client was kept {took:?}"
    );
    let (took, answer) = slow_body.join().unwrap();
    assert!(took < Duration::from_secs(15), "the slow-body client was kept {took:?}");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    server.healthy();
}

#[test]
fn client_leaving_mid_request_drops_its_work() {
    let server = Server::start(&[minilm(), "--max-batch-tokens", "256"]);
    let texts: Vec<String> = sentences().into_iter().cycle().take(2000).collect();
    let body = json!({"input": texts}).to_string();
    let head = format!(
        "POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    {
        let mut stream = TcpStream::connect(&server.address).unwrap();
        stream.write_all(head.as_bytes()).unwrap();
        stream.write_all(body.as_bytes()).unwrap();
        // Wait until the request is queued, then leave.
        let started = Instant::now();
        while !server.get("/metrics").1.contains("octet_batch_texts_count{model=") {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the request never reached a pass"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    let started = Instant::now();
    loop {
        let metrics = server.get("/metrics").1;
        let dropped = metrics
            .lines()
            .find_map(|l| l.strip_prefix("octet_dropped_texts_total{model=\"minilm\"} "))
            .map_or(0, |n| n.parse::<u64>().unwrap());
        if dropped > 0 && metrics.contains("octet_queue_depth{model=\"minilm\"} 0") {
            assert!(metrics.contains("status=\"499\""), "{metrics}");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the abandoned work was not dropped:\n{metrics}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    server.healthy();
}

#[test]
fn ten_thousand_inputs_in_one_request() {
    let server = Server::start(&[
        minilm(),
        "--max-inputs",
        "10000",
        "--threads",
        "2",
        "--request-timeout",
        "600",
    ]);
    let pool = sentences();
    let texts: Vec<String> = (0..10_000)
        .map(|i| format!("{} {i}", pool[i % 50].split_whitespace().next().unwrap()))
        .collect();
    let all = server.embed(&json!({"input": texts}));
    assert_eq!(all.len(), 10_000);
    for i in [0, 1, 4999, 9999] {
        assert_eq!(server.embed(&json!({"input": texts[i]}))[0], all[i], "row {i}");
    }
    let small = Server::start(&[minilm()]);
    assert_error(
        small.post("/v1/embeddings", &json!({"input": texts})),
        400,
        "at most 2048 per request (--max-inputs)",
    );
    small.healthy();
}

#[test]
fn concurrent_clients_get_exactly_their_own_vectors() {
    let server = Arc::new(Server::start(&[minilm(), "--threads", "2"]));
    let pool: Vec<String> = sentences().into_iter().take(40).collect();
    let single: Arc<Vec<Vec<f32>>> = Arc::new(
        pool.iter()
            .map(|t| server.embed(&json!({"input": t}))[0].clone())
            .collect(),
    );
    let pool = Arc::new(pool);
    let barrier = Arc::new(Barrier::new(64));
    let clients: Vec<_> = (0..64)
        .map(|client| {
            let (server, pool, single, barrier) = (server.clone(), pool.clone(), single.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                let mut state = client as u64 * 2654435761 + 1;
                let mut next = move || {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    state
                };
                for _ in 0..20 {
                    let n = 1 + (next() % 8) as usize;
                    let picks: Vec<usize> = (0..n).map(|_| (next() % pool.len() as u64) as usize).collect();
                    let texts: Vec<&str> = picks.iter().map(|&i| pool[i].as_str()).collect();
                    let got = server.embed(&json!({"input": texts}));
                    assert_eq!(got.len(), n);
                    for (row, &i) in got.iter().zip(&picks) {
                        assert!(
                            row == &single[i],
                            "client {client}: a row differs from text {i}'s own vector"
                        );
                    }
                }
            })
        })
        .collect();
    for c in clients {
        c.join().expect("a client failed");
    }
    let metrics = server.get("/metrics").1;
    assert!(
        metrics.contains("octet_requests_total{route=\"/v1/embeddings\",status=\"200\"} 1320"),
        "{metrics}"
    );
}

/// Peak resident memory of a process in bytes (Linux).
fn peak_rss(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb * 1024)
}

#[test]
fn overload_burst_gets_503_not_a_crash() {
    let server = Arc::new(Server::start(&[minilm(), "--max-queue", "16"]));
    let pool = Arc::new(sentences());
    let barrier = Arc::new(Barrier::new(96));
    let clients: Vec<_> = (0..96)
        .map(|client| {
            let (server, pool, barrier) = (server.clone(), pool.clone(), barrier.clone());
            std::thread::spawn(move || {
                let texts: Vec<&str> = (0..8).map(|j| pool[(client * 8 + j) % pool.len()].as_str()).collect();
                let body = json!({"input": texts}).to_string();
                barrier.wait();
                let request = server
                    .agent
                    .post(&server.url("/v1/embeddings"))
                    .set("Content-Type", "application/json");
                let (status, response) = Server::answer(request.send_bytes(body.as_bytes()));
                let retry_after = response.header("Retry-After").map(str::to_string);
                (status, retry_after)
            })
        })
        .collect();
    let answers: Vec<(u16, Option<String>)> = clients.into_iter().map(|c| c.join().unwrap()).collect();
    let ok = answers.iter().filter(|a| a.0 == 200).count();
    let busy = answers.iter().filter(|a| a.0 == 503).count();
    assert_eq!(ok + busy, answers.len(), "statuses other than 200 / 503: {answers:?}");
    assert!(ok > 0 && busy > 0, "{ok} x 200, {busy} x 503");
    assert!(
        answers
            .iter()
            .filter(|a| a.0 == 503)
            .all(|a| a.1.as_deref() == Some("1")),
        "a 503 without Retry-After"
    );
    server.healthy();
    let file = std::fs::metadata(minilm()).unwrap().len();
    if let Some(peak) = peak_rss(server.pid()) {
        eprintln!(
            "overload: {ok} x 200, {busy} x 503; peak RSS {} MB (file {} MB)",
            peak >> 20,
            file >> 20
        );
        assert!(peak < file + (200 << 20), "peak RSS {} MB", peak >> 20);
    }
}

#[test]
fn sigterm_finishes_the_request_in_flight_and_exits_0() {
    let mut server = Server::start(&[minilm(), "--max-batch-tokens", "256", "--shutdown-timeout", "300"]);
    let texts: Vec<String> = (0..1000).map(|i| format!("text number {i}")).collect();
    let url = server.url("/v1/embeddings");
    let agent = server.agent.clone();
    let client = std::thread::spawn(move || {
        let request = agent.post(&url).set("Content-Type", "application/json");
        let (status, response) = Server::answer(request.send_bytes(json!({"input": texts}).to_string().as_bytes()));
        let body: Value = serde_json::from_str(&response.into_string().unwrap()).unwrap();
        (status, body["data"].as_array().map_or(0, Vec::len))
    });
    let started = Instant::now();
    while !server.get("/metrics").1.contains("octet_batch_texts_count{model=") {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the request never reached a pass"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let kill = Command::new("kill")
        .args(["-TERM", &server.pid().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let (status, rows) = client
        .join()
        .unwrap_or_else(|_| panic!("the client failed; server log:\n{}", server.log.lock().unwrap()));
    assert_eq!((status, rows), (200, 1000));
    let started = Instant::now();
    let exit = loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            break status;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "the server did not stop");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(exit.code(), Some(0), "log:\n{}", server.log.lock().unwrap());
}
