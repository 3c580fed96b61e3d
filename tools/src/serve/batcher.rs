//! Dynamic batching: one queue and one batcher thread per model.
//!
//! Handlers tokenize their request and [`Batcher::submit`] its sequences; they get a oneshot
//! receiver for their rows. The batcher thread takes queued sequences in arrival order into a
//! forward pass until the pass holds `max_batch_tokens` tokens (a longer single sequence goes
//! alone), waiting up to `max_wait` after the oldest one arrived for more to come. Requests
//! queued while a pass runs form the next pass, so under load passes fill up by themselves
//! and an idle server answers at once. A request larger than the budget is split across
//! passes, its rows collected until it is complete.
//!
//! The queue is bounded in texts: `submit` refuses a request that would take it over
//! `max_queue` (the handler answers 503), except that an empty queue takes any request, so
//! a request larger than the queue is still served. A request whose client went away (its
//! receiver dropped) is removed before each pass, so its remaining texts are never computed.
//! Passes run the model's [`Embedder::embed_ids`] on the embedder's own thread pool, with
//! vectors left unnormalized: the handler cuts and normalizes each request's rows as it asked.

use super::metrics::Metrics;
use octet::Embedder;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// The rows of one request, in input order, or the engine's error message.
pub type Rows = Result<Vec<Vec<f32>>, String>;

/// How passes are formed.
#[derive(Clone, Copy, Debug)]
pub struct BatchLimits {
    /// Tokens per forward pass (a longer single sequence still runs, alone).
    pub max_batch_tokens: usize,
    /// How long the oldest queued text may wait for a pass to fill.
    pub max_wait: Duration,
    /// Texts the queue holds.
    pub max_queue: usize,
}

/// One queued request.
struct Job {
    sequences: Vec<Vec<u32>>,
    reply: oneshot::Sender<Rows>,
    arrived: Instant,
}

/// A job being worked on: `next` sequences have gone into passes, `rows` are back.
struct Active {
    job: Job,
    next: usize,
    rows: Vec<Vec<f32>>,
}

/// The queue was full.
#[derive(Debug)]
pub struct QueueFull;

/// A model's queue; dropping it lets the batcher thread finish the queued work and stop.
pub struct Batcher {
    jobs: mpsc::Sender<Job>,
    queued: Arc<AtomicUsize>,
    max_queue: usize,
}

impl Batcher {
    /// Starts the batcher thread of `model` (its name labels metrics and the thread).
    pub fn start(
        model: String,
        embedder: Arc<Embedder>,
        limits: BatchLimits,
        metrics: Arc<Metrics>,
    ) -> std::io::Result<Batcher> {
        let (jobs, incoming) = mpsc::channel();
        let queued = Arc::new(AtomicUsize::new(0));
        let worker = Worker {
            model: model.clone(),
            embedder,
            limits,
            metrics,
            queued: queued.clone(),
            incoming,
            active: VecDeque::new(),
        };
        std::thread::Builder::new()
            .name(format!("batcher-{model}"))
            .spawn(move || worker.run())?;
        Ok(Batcher {
            jobs,
            queued,
            max_queue: limits.max_queue,
        })
    }

    /// Queues one request's sequences; the receiver gets its rows in order.
    pub fn submit(&self, sequences: Vec<Vec<u32>>) -> Result<oneshot::Receiver<Rows>, QueueFull> {
        let n = sequences.len();
        self.queued
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |queued| {
                (queued == 0 || queued + n <= self.max_queue).then_some(queued + n)
            })
            .map_err(|_| QueueFull)?;
        let (reply, rows) = oneshot::channel();
        if self
            .jobs
            .send(Job {
                sequences,
                reply,
                arrived: Instant::now(),
            })
            .is_err()
        {
            // The batcher thread is gone (it only stops when the Batcher is dropped); the
            // dropped reply tells the handler.
            self.queued.fetch_sub(n, Ordering::AcqRel);
        }
        Ok(rows)
    }

    /// Texts waiting for a pass.
    pub fn depth(&self) -> usize {
        self.queued.load(Ordering::Acquire)
    }
}

/// The batcher thread's state.
struct Worker {
    model: String,
    embedder: Arc<Embedder>,
    limits: BatchLimits,
    metrics: Arc<Metrics>,
    queued: Arc<AtomicUsize>,
    incoming: mpsc::Receiver<Job>,
    active: VecDeque<Active>,
}

impl Worker {
    fn run(mut self) {
        loop {
            if self.active.is_empty() {
                match self.incoming.recv() {
                    Ok(job) => self.accept(job),
                    Err(_) => return,
                }
            }
            self.collect();
            self.drop_abandoned();
            if !self.active.is_empty() {
                self.pass();
            }
        }
    }

    fn accept(&mut self, job: Job) {
        self.active.push_back(Active {
            rows: Vec::with_capacity(job.sequences.len()),
            job,
            next: 0,
        });
    }

    /// Takes everything already queued, then waits for more until the pass is full or the
    /// oldest text has waited `max_wait`.
    fn collect(&mut self) {
        while let Ok(job) = self.incoming.try_recv() {
            self.accept(job);
        }
        let Some(oldest) = self.active.front().map(|a| a.job.arrived) else {
            return;
        };
        let deadline = oldest + self.limits.max_wait;
        while self.pending_tokens() < self.limits.max_batch_tokens {
            let Some(left) = deadline.checked_duration_since(Instant::now()).filter(|d| !d.is_zero()) else {
                break;
            };
            match self.incoming.recv_timeout(left) {
                Ok(job) => self.accept(job),
                Err(_) => break,
            }
        }
    }

    /// Tokens not yet run, up to the budget (enough to know whether a pass is full).
    fn pending_tokens(&self) -> usize {
        let mut tokens = 0;
        for a in &self.active {
            for s in &a.job.sequences[a.next..] {
                tokens += s.len();
                if tokens >= self.limits.max_batch_tokens {
                    return tokens;
                }
            }
        }
        tokens
    }

    /// Removes requests whose client has gone.
    fn drop_abandoned(&mut self) {
        let (mut dropped, mut kept) = (0, VecDeque::with_capacity(self.active.len()));
        for a in self.active.drain(..) {
            if a.job.reply.is_closed() {
                dropped += a.job.sequences.len() - a.next;
            } else {
                kept.push_back(a);
            }
        }
        self.active = kept;
        if dropped > 0 {
            self.queued.fetch_sub(dropped, Ordering::AcqRel);
            self.metrics.dropped(&self.model, dropped);
        }
    }

    /// Runs one forward pass over the oldest sequences and answers the requests it completes.
    fn pass(&mut self) {
        // (index in `active`, first sequence, end) of each request's share of the pass.
        let mut shares: Vec<(usize, usize, usize)> = Vec::new();
        let mut tokens = 0;
        'fill: for (i, a) in self.active.iter().enumerate() {
            let start = a.next;
            let mut end = start;
            while end < a.job.sequences.len() {
                let len = a.job.sequences[end].len();
                if tokens > 0 && tokens + len > self.limits.max_batch_tokens {
                    if end > start {
                        shares.push((i, start, end));
                    }
                    break 'fill;
                }
                tokens += len;
                end += 1;
            }
            shares.push((i, start, end));
        }
        let sequences: Vec<&[u32]> = shares
            .iter()
            .flat_map(|&(i, s, e)| self.active[i].job.sequences[s..e].iter().map(Vec::as_slice))
            .collect();
        let texts = sequences.len();
        let now = Instant::now();
        let waits: Vec<f64> = shares
            .iter()
            .flat_map(|&(i, s, e)| {
                std::iter::repeat_n(now.duration_since(self.active[i].job.arrived).as_secs_f64(), e - s)
            })
            .collect();
        let result = self.embedder.embed_ids(&sequences, None, Some(false));
        self.queued.fetch_sub(texts, Ordering::AcqRel);
        self.metrics.pass(&self.model, texts, tokens, waits.into_iter());
        match result {
            Ok(rows) => {
                let mut rows = rows.into_iter();
                for &(i, s, e) in &shares {
                    let a = &mut self.active[i];
                    a.rows.extend(rows.by_ref().take(e - s));
                    a.next = e;
                }
            }
            Err(err) => {
                // The handler checked every sequence, so this is the engine's failure: fail
                // the requests of this pass, not the ones queued behind them.
                tracing::error!(model = %self.model, texts, tokens, "forward pass failed: {err}");
                for &(i, _, end) in shares.iter().rev() {
                    let a = self.active.remove(i).expect("share indices are in range");
                    self.queued.fetch_sub(a.job.sequences.len() - end, Ordering::AcqRel);
                    let _ = a
                        .job
                        .reply
                        .send(Err(format!("the model failed on this request: {err}")));
                }
                return;
            }
        }
        while self.active.front().is_some_and(|a| a.next == a.job.sequences.len()) {
            let a = self.active.pop_front().expect("front exists");
            // A client that left during the pass just drops its rows.
            let _ = a.job.reply.send(Ok(a.rows));
        }
    }
}
