//! Counters and histograms for `GET /metrics`, in the Prometheus text format (version
//! 0.0.4): requests by route and status, request latency by route, and per model the queue
//! depth, the texts and tokens of each forward pass, and the time texts wait in the queue.
//!
//! Everything sits behind one mutex: a request touches it twice (once when it is
//! answered, once per pass it joins), which costs nothing next to a forward pass.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;

/// Upper bounds of the latency buckets, in seconds.
const SECONDS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
/// Upper bounds of the texts-per-pass buckets.
const TEXTS: [f64; 11] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0];
/// Upper bounds of the tokens-per-pass buckets.
const TOKENS: [f64; 11] = [
    16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0, 8192.0, 16384.0,
];

/// A cumulative histogram with fixed bounds.
#[derive(Clone)]
struct Histogram {
    bounds: &'static [f64],
    /// Per bucket (not cumulative); the last one is `+Inf`.
    counts: Vec<u64>,
    sum: f64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            counts: vec![0; bounds.len() + 1],
            sum: 0.0,
        }
    }

    fn observe(&mut self, value: f64) {
        let bucket = self
            .bounds
            .iter()
            .position(|&b| value <= b)
            .unwrap_or(self.bounds.len());
        self.counts[bucket] += 1;
        self.sum += value;
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0;
        let sep = if labels.is_empty() { "" } else { "," };
        for (i, count) in self.counts.iter().enumerate() {
            cumulative += count;
            let le = self.bounds.get(i).map_or("+Inf".to_string(), |b| b.to_string());
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{le}\"}} {cumulative}");
        }
        let _ = writeln!(out, "{name}_sum{{{labels}}} {}", self.sum);
        let _ = writeln!(out, "{name}_count{{{labels}}} {cumulative}");
    }
}

/// A per-model counter for the text format: name, help, and how to read it.
type CounterSpec = (&'static str, &'static str, fn(&ModelFigures) -> u64);
/// A per-model histogram for the text format.
type HistogramSpec = (&'static str, &'static str, fn(&ModelFigures) -> &Histogram);

/// Per-model figures.
struct ModelFigures {
    pass_texts: Histogram,
    pass_tokens: Histogram,
    queue_wait: Histogram,
    texts: u64,
    tokens: u64,
    dropped: u64,
    rejected: u64,
}

impl ModelFigures {
    fn new() -> ModelFigures {
        ModelFigures {
            pass_texts: Histogram::new(&TEXTS),
            pass_tokens: Histogram::new(&TOKENS),
            queue_wait: Histogram::new(&SECONDS),
            texts: 0,
            tokens: 0,
            dropped: 0,
            rejected: 0,
        }
    }
}

#[derive(Default)]
struct Figures {
    /// (route, status) -> count.
    requests: BTreeMap<(String, u16), u64>,
    latency: BTreeMap<String, Histogram>,
    models: BTreeMap<String, ModelFigures>,
}

/// The server's metrics.
#[derive(Default)]
pub struct Metrics {
    figures: Mutex<Figures>,
}

impl Metrics {
    fn with<T>(&self, f: impl FnOnce(&mut Figures) -> T) -> T {
        // A panic while the lock was held cannot leave the counters unusable.
        let mut guard = self.figures.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut guard)
    }

    /// One answered request.
    pub fn request(&self, route: &str, status: u16, seconds: f64) {
        self.with(|f| {
            *f.requests.entry((route.to_string(), status)).or_default() += 1;
            f.latency
                .entry(route.to_string())
                .or_insert_with(|| Histogram::new(&SECONDS))
                .observe(seconds);
        });
    }

    /// One forward pass of `model`: `texts` sequences, `tokens` ids, and how long each of
    /// its texts waited in the queue.
    pub fn pass(&self, model: &str, texts: usize, tokens: usize, waits: impl Iterator<Item = f64>) {
        self.with(|f| {
            let m = f.models.entry(model.to_string()).or_insert_with(ModelFigures::new);
            m.pass_texts.observe(texts as f64);
            m.pass_tokens.observe(tokens as f64);
            m.texts += texts as u64;
            m.tokens += tokens as u64;
            for wait in waits {
                m.queue_wait.observe(wait);
            }
        });
    }

    /// Texts dropped from the queue because their client went away.
    pub fn dropped(&self, model: &str, texts: usize) {
        self.with(|f| {
            f.models
                .entry(model.to_string())
                .or_insert_with(ModelFigures::new)
                .dropped += texts as u64
        });
    }

    /// A request refused because the queue was full.
    pub fn rejected(&self, model: &str) {
        self.with(|f| {
            f.models
                .entry(model.to_string())
                .or_insert_with(ModelFigures::new)
                .rejected += 1
        });
    }

    /// The text format; `queues` gives each model's current queue depth in texts.
    pub fn render(&self, queues: &[(String, usize)]) -> String {
        let mut out = String::new();
        self.with(|f| {
            out.push_str("# HELP octet_requests_total HTTP requests answered, by route and status.\n# TYPE octet_requests_total counter\n");
            for ((route, status), count) in &f.requests {
                let _ = writeln!(out, "octet_requests_total{{route=\"{route}\",status=\"{status}\"}} {count}");
            }
            out.push_str("# HELP octet_request_duration_seconds Time from the request's arrival to its answer, by route.\n# TYPE octet_request_duration_seconds histogram\n");
            for (route, h) in &f.latency {
                h.render(&mut out, "octet_request_duration_seconds", &format!("route=\"{route}\""));
            }
            out.push_str("# HELP octet_queue_depth Texts waiting for a forward pass.\n# TYPE octet_queue_depth gauge\n");
            for (model, depth) in queues {
                let _ = writeln!(out, "octet_queue_depth{{model=\"{model}\"}} {depth}");
            }
            let counters: [CounterSpec; 4] = [
                ("octet_embedded_texts_total", "Texts embedded.", |m| m.texts),
                ("octet_embedded_tokens_total", "Tokens embedded, special and prompt tokens included.", |m| m.tokens),
                ("octet_dropped_texts_total", "Queued texts dropped because their client disconnected.", |m| m.dropped),
                ("octet_rejected_requests_total", "Requests refused with 503 because the queue was full.", |m| m.rejected),
            ];
            for (name, help, get) in counters {
                let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
                for (model, m) in &f.models {
                    let _ = writeln!(out, "{name}{{model=\"{model}\"}} {}", get(m));
                }
            }
            let histograms: [HistogramSpec; 3] = [
                ("octet_batch_texts", "Texts per forward pass.", |m| &m.pass_texts),
                ("octet_batch_tokens", "Tokens per forward pass.", |m| &m.pass_tokens),
                ("octet_queue_wait_seconds", "Time a text waited in the queue before its pass started.", |m| &m.queue_wait),
            ];
            for (name, help, get) in histograms {
                let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
                for (model, m) in &f.models {
                    get(m).render(&mut out, name, &format!("model=\"{model}\""));
                }
            }
        });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_and_end_with_inf() {
        let metrics = Metrics::default();
        for seconds in [0.0005, 0.003, 0.003, 100.0] {
            metrics.request("/v1/embeddings", 200, seconds);
        }
        metrics.request("/v1/embeddings", 400, 0.001);
        let text = metrics.render(&[("m".into(), 3)]);
        assert!(
            text.contains("octet_requests_total{route=\"/v1/embeddings\",status=\"200\"} 4"),
            "{text}"
        );
        assert!(
            text.contains("octet_requests_total{route=\"/v1/embeddings\",status=\"400\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("octet_request_duration_seconds_bucket{route=\"/v1/embeddings\",le=\"0.001\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("octet_request_duration_seconds_bucket{route=\"/v1/embeddings\",le=\"0.005\"} 4"),
            "{text}"
        );
        assert!(
            text.contains("octet_request_duration_seconds_bucket{route=\"/v1/embeddings\",le=\"+Inf\"} 5"),
            "{text}"
        );
        assert!(
            text.contains("octet_request_duration_seconds_count{route=\"/v1/embeddings\"} 5"),
            "{text}"
        );
        assert!(text.contains("octet_queue_depth{model=\"m\"} 3"), "{text}");
    }
}
