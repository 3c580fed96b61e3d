//! The public entry point: [`Embedder`] opens a `.octet` file and turns texts into vectors.
//!
//! `open` binds the encoder and its Dense layers once: every tensor is looked up and checked
//! then, and an `embed` call does no config parsing, no tensor look-up and no repacking.
//!
//! `embed` tokenizes every text (with the task prompt, if any, prepended), sorts the texts by
//! token count, and runs them in passes of at most `batch_size` texts and `max_batch_tokens`
//! tokens. A pass holds no padding: its sequences are stored back to back and attention runs
//! per sequence, so no text pays for a longer neighbour, and a text's vector does not depend
//! on which pass it landed in. The activation buffers of a pass ([`Scratch`]) are kept and
//! reused by the next call, one set per concurrent caller, so memory is bounded by the token
//! budget, not by the number or length of the texts. Vectors come back in input order.

use crate::batch::PackedBatch;
use crate::error::{Error, Result};
use crate::format::ModelFile;
use crate::model::{self, Encoder};
use crate::pooling::{self, ChannelOrder, Dense};
use crate::scratch::Scratch;
use crate::tokenize::{TextTokenizer, Tokens, Truncation};
use rayon::prelude::*;
use std::path::Path;
use std::sync::{Arc, Mutex};

// Keeping the other workers spinning through a run of passes.
mod awake;
// `Embedder::tokenize` and `embed_ids`: embed's two halves, for callers that batch.
mod tokens;

/// Per-call options; [`EmbedOptions::default`] gives the model's own defaults.
#[derive(Clone, Debug)]
pub struct EmbedOptions {
    /// Texts per forward pass (sorted by length first). Default 32.
    pub batch_size: usize,
    /// Tokens per forward pass, at most (a single longer text still gets a pass of its own).
    /// Bounds the activation memory: default [`EmbedOptions::DEFAULT_MAX_BATCH_TOKENS`].
    pub max_batch_tokens: usize,
    /// What to do with texts over the model's window. Default: truncate.
    pub truncation: Truncation,
    /// Name of a task prompt stored in the model (e.g. `query`); `None` uses the model's
    /// default prompt, if it has one. Use `Some(String::new())` for no prompt at all.
    pub prompt: Option<String>,
    /// Keep only the first `dims` values (Matryoshka truncation), then re-normalize.
    pub dims: Option<usize>,
    /// L2-normalize the vectors; `None` follows the model (sentence-transformers' Normalize module).
    pub normalize: Option<bool>,
}

impl Default for EmbedOptions {
    fn default() -> Self {
        EmbedOptions {
            batch_size: 32,
            max_batch_tokens: EmbedOptions::DEFAULT_MAX_BATCH_TOKENS,
            truncation: Truncation::Truncate,
            prompt: None,
            dims: None,
            normalize: None,
        }
    }
}

impl EmbedOptions {
    /// The default token budget of one forward pass: 2,048 tokens keep MiniLM's activations
    /// near 30 MB and EmbeddingGemma's near 65 MB, and are enough rows for the matmuls to run at
    /// full speed. A pass also holds at most [`EmbedOptions::PASS_TOKENS_PER_THREAD`] tokens
    /// per thread of the embedder's pool, so on few threads passes are smaller.
    pub const DEFAULT_MAX_BATCH_TOKENS: usize = 2048;

    /// Most tokens of one forward pass per thread of the pool. Smaller passes keep a pass's
    /// activations in the last-level cache between one layer's steps; more threads need more rows
    /// per pass to share. Measured on a 2-core AMD EPYC (Zen 4, 32 MB L3) with MiniLM int8 at 32
    /// texts x 128 tokens and EmbeddingGemma int8 at 8 x 128, alternating the two builds in one
    /// run: at 1 thread, passes of 512 tokens were 7% (MiniLM) and 4% (EmbeddingGemma) faster
    /// than passes of 2,048; at 2 threads, passes of 1,024 were 3-5% faster than passes of 512
    /// on each model and within noise of passes of 2,048, and 256-token passes were 12% slower
    /// on EmbeddingGemma.
    pub const PASS_TOKENS_PER_THREAD: usize = 512;
}

/// The vectors of one `embed_detailed` call, with what happened on the way.
#[derive(Clone, Debug, Default)]
pub struct Embeddings {
    /// One vector per input text, in input order.
    pub vectors: Vec<Vec<f32>>,
    /// How many texts were cut to the window.
    pub truncated: usize,
    /// Tokens processed, special and prompt tokens included.
    pub tokens: usize,
}

/// A loaded model, ready to embed. `Send + Sync`: share one across threads.
pub struct Embedder {
    file: Arc<ModelFile>,
    tokenizer: TextTokenizer,
    encoder: Box<dyn Encoder>,
    /// The stored order of the hidden channels, where the converter changed it.
    channel_order: Option<ChannelOrder>,
    dense: Vec<Dense>,
    pool: rayon::ThreadPool,
    threads: usize,
    output_dim: usize,
    /// Activation buffers of finished calls, taken by the next ones.
    scratch: Mutex<Vec<Scratch>>,
}

impl Embedder {
    /// Opens a model with one thread per available core.
    pub fn open(path: impl AsRef<Path>) -> Result<Embedder> {
        Embedder::open_with_threads(path, 0)
    }

    /// Opens a model that computes on `threads` threads (0: one per available core).
    pub fn open_with_threads(path: impl AsRef<Path>, threads: usize) -> Result<Embedder> {
        Embedder::from_file(ModelFile::open(path.as_ref())?, threads)
    }

    /// Wraps an already opened file; binds and validates every tensor the architecture needs.
    pub fn from_file(file: ModelFile, threads: usize) -> Result<Embedder> {
        Embedder::from_shared(Arc::new(file), threads)
    }

    /// Like [`Embedder::from_file`], for a file shared with other owners.
    pub fn from_shared(file: Arc<ModelFile>, threads: usize) -> Result<Embedder> {
        let threads = if threads == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            threads
        };
        let meta = file.meta();
        let mut tokenizer = TextTokenizer::from_file(&file, meta.max_seq_len)?;
        let config = model::ModelConfig::of(meta)?;
        let encoder = model::bind_with(&file, &config)?;
        // Added tokens past the table (Gemma's `<image_soft_token>`) are refused per text.
        if tokenizer.vocab_size(false) > encoder.vocab_size() {
            return Err(Error::model(
                meta.architecture.as_str(),
                format!(
                    "the tokenizer has {} tokens but the embedding table only {} rows",
                    tokenizer.vocab_size(false),
                    encoder.vocab_size()
                ),
            ));
        }
        tokenizer.limit_ids(encoder.vocab_size());
        let channel_order = ChannelOrder::load(&file, meta.architecture.as_str(), encoder.hidden_size())?;
        let dense = Dense::bind_all(&file, &config)?;
        let output_dim = dense.last().map_or(encoder.hidden_size(), Dense::out_features);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("octet-{i}"))
            .build()
            .map_err(|e| Error::ThreadPool(format!("{threads} threads: {e}")))?;
        Ok(Embedder {
            file,
            tokenizer,
            encoder,
            channel_order,
            dense,
            pool,
            threads,
            output_dim,
            scratch: Mutex::new(Vec::new()),
        })
    }

    /// The model file.
    pub fn file(&self) -> &Arc<ModelFile> {
        &self.file
    }

    /// The model file, shared: bind another encoder to it (`octet::model::bind`) without
    /// opening it again.
    pub fn shared_file(&self) -> &Arc<ModelFile> {
        &self.file
    }

    /// Width of the vectors before any Matryoshka truncation.
    pub fn dim(&self) -> usize {
        self.output_dim
    }

    /// The window in tokens.
    pub fn window(&self) -> usize {
        self.tokenizer.window()
    }

    /// Threads used for computing.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Embeds texts with the default options.
    pub fn embed<S: AsRef<str> + Sync>(&self, texts: &[S]) -> Result<Vec<Vec<f32>>> {
        Ok(self.embed_detailed(texts, &EmbedOptions::default())?.vectors)
    }

    /// Embeds texts with the given options.
    pub fn embed_with<S: AsRef<str> + Sync>(&self, texts: &[S], options: &EmbedOptions) -> Result<Vec<Vec<f32>>> {
        Ok(self.embed_detailed(texts, options)?.vectors)
    }

    /// Embeds texts and reports truncation and token counts.
    pub fn embed_detailed<S: AsRef<str> + Sync>(&self, texts: &[S], options: &EmbedOptions) -> Result<Embeddings> {
        let width = self.output_width(options.dims)?;
        let mut flat = vec![0f32; texts.len() * width];
        let (truncated, tokens) = self.embed_flat(texts, options, &mut flat)?;
        Ok(Embeddings {
            vectors: rows_of(&flat, width),
            truncated,
            tokens,
        })
    }

    /// Embeds texts straight into `out`, row after row in input order: vector `i` is
    /// `out[i * w..(i + 1) * w]`, with `w` the `options.dims` or [`Embedder::dim`]. `out` must
    /// hold exactly `texts.len() * w` values. For callers that own the output memory (a NumPy
    /// array): nothing is allocated per vector and nothing is copied afterwards.
    pub fn embed_into<S: AsRef<str> + Sync>(&self, texts: &[S], options: &EmbedOptions, out: &mut [f32]) -> Result<()> {
        self.embed_flat(texts, options, out).map(|_| ())
    }

    /// The width of the output vectors for `dims` (`None`: the model's), checked.
    fn output_width(&self, dims: Option<usize>) -> Result<usize> {
        match dims {
            None => Ok(self.output_dim),
            Some(d) if d == 0 || d > self.output_dim => Err(Error::Option(format!(
                "dims {d} is not in 1..={} (this model's Matryoshka dims: {:?})",
                self.output_dim,
                self.file.meta().matryoshka_dims
            ))),
            Some(d) => Ok(d),
        }
    }

    /// `embed_detailed` and `embed_into`: checks the options, tokenizes and embeds into the flat
    /// `out`; returns how many texts were truncated and the tokens processed.
    fn embed_flat<S: AsRef<str> + Sync>(
        &self,
        texts: &[S],
        options: &EmbedOptions,
        out: &mut [f32],
    ) -> Result<(usize, usize)> {
        let prompt = self.prompt_prefix(options.prompt.as_deref())?;
        if options.batch_size == 0 {
            return Err(Error::Option("batch size must be at least 1".into()));
        }
        if options.max_batch_tokens == 0 {
            return Err(Error::Option("max_batch_tokens must be at least 1".into()));
        }
        let width = self.output_width(options.dims)?;
        if out.len() != texts.len() * width {
            return Err(Error::Option(format!(
                "the output holds {} values; {} texts of {width} dims need {}",
                out.len(),
                texts.len(),
                texts.len() * width
            )));
        }
        let normalize = options.normalize.unwrap_or(self.file.meta().pooling.normalize);
        self.pool.install(|| {
            let tokens: Vec<Tokens> = texts
                .par_iter()
                .enumerate()
                .map(|(i, text)| {
                    let text = text.as_ref();
                    if prompt.is_empty() {
                        self.tokenizer.encode(i, text, options.truncation)
                    } else {
                        self.tokenizer.encode(i, &format!("{prompt}{text}"), options.truncation)
                    }
                })
                .collect::<Result<_>>()?;
            let seqs: Vec<&[u32]> = tokens.iter().map(|t| t.ids.as_slice()).collect();
            self.embed_sequences(&seqs, options.batch_size, options.max_batch_tokens, normalize, out)?;
            Ok((
                tokens.iter().filter(|t| t.truncated).count(),
                tokens.iter().map(|t| t.ids.len()).sum(),
            ))
        })
    }

    /// Runs token sequences through the bound encoder, sorted by length, in passes of at most
    /// `batch_size` sequences and `max_batch_tokens` tokens, and at most
    /// [`EmbedOptions::PASS_TOKENS_PER_THREAD`] per thread of the pool (a longer sequence gets
    /// a pass of its own), then pools, projects, truncates to the width of `out`'s rows and
    /// normalizes.
    /// Vector `i` goes to row `i` of `out` (`seqs.len()` rows; their width, at most the model's
    /// [`Embedder::dim`], is the Matryoshka truncation). Runs on the calling thread's pool: call
    /// it inside `self.pool.install`.
    fn embed_sequences(
        &self,
        seqs: &[&[u32]],
        batch_size: usize,
        max_batch_tokens: usize,
        normalize: bool,
        out: &mut [f32],
    ) -> Result<()> {
        if seqs.is_empty() {
            return Ok(());
        }
        let width = out.len() / seqs.len();
        if width == 0 || width > self.output_dim || width * seqs.len() != out.len() {
            return Err(Error::Internal(format!(
                "{} output values for {} sequences of at most {} dims",
                out.len(),
                seqs.len(),
                self.output_dim
            )));
        }
        let max_batch_tokens =
            max_batch_tokens.min(EmbedOptions::PASS_TOKENS_PER_THREAD * rayon::current_num_threads());
        let mut order: Vec<usize> = (0..seqs.len()).collect();
        order.sort_by_key(|&i| seqs[i].len());
        let mode = self.file.meta().pooling.mode;
        let hidden = self.encoder.hidden_size();
        let mut scratch = self
            .scratch
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop()
            .unwrap_or_default();
        // The other workers spin between the passes' parallel regions instead of falling
        // asleep (awake.rs): batch-1 passes of short texts gain most.
        let result = awake::with_workers_awake(|| -> Result<()> {
            let mut start = 0;
            while start < order.len() {
                // The next pass: up to batch_size sequences and max_batch_tokens tokens, at least one.
                let (mut end, mut pass_tokens) = (start, 0);
                while end < order.len() && end - start < batch_size {
                    let len = seqs[order[end]].len();
                    if end > start && pass_tokens + len > max_batch_tokens {
                        break;
                    }
                    pass_tokens += len;
                    end += 1;
                }
                let chunk = &order[start..end];
                start = end;
                let batch = PackedBatch::new(chunk.iter().map(|&i| seqs[i]));
                let states = self.encoder.forward(&batch, &mut scratch)?;
                let mut pooled = pooling::pool(mode, states, hidden, &batch.spans);
                if let Some(order) = &self.channel_order {
                    order.restore(&mut pooled);
                }
                for layer in &self.dense {
                    pooled = layer.forward(&pooled, chunk.len())?;
                }
                let pooled_width = pooled.len() / chunk.len();
                for (&i, row) in chunk.iter().zip(pooled.chunks_exact(pooled_width)) {
                    pooling::finish_into(row, normalize, &mut out[i * width..(i + 1) * width]);
                }
            }
            Ok(())
        });
        self.scratch.lock().unwrap_or_else(|e| e.into_inner()).push(scratch);
        result
    }

    /// The prefix a prompt name stands for.
    fn prompt_prefix(&self, name: Option<&str>) -> Result<String> {
        let meta = self.file.meta();
        let name = match name {
            Some(n) => n,
            None => match &meta.default_prompt {
                Some(d) => d.as_str(),
                None => return Ok(String::new()),
            },
        };
        if name.is_empty() {
            return Ok(String::new());
        }
        meta.prompts.get(name).cloned().ok_or_else(|| {
            let mut names: Vec<&str> = meta.prompts.keys().map(String::as_str).collect();
            names.sort_unstable();
            Error::Option(format!(
                "unknown prompt '{name}'; this model has: {}",
                if names.is_empty() {
                    "none".to_string()
                } else {
                    names.join(", ")
                }
            ))
        })
    }
}

/// The rows of a flat row-major buffer of `width`-wide vectors, one `Vec` each.
fn rows_of(flat: &[f32], width: usize) -> Vec<Vec<f32>> {
    if width == 0 {
        return Vec::new();
    }
    flat.chunks_exact(width).map(<[f32]>::to_vec).collect()
}
