//! The public entry point: [`Embedder`] opens a `.octet` file and turns texts into vectors.
//!
//! `embed` tokenizes every text (with the task prompt, if any, prepended), sorts the texts by
//! token count, and runs them in batches of `batch_size`. A batch holds no padding: its
//! sequences are stored back to back and attention runs per sequence, so no text pays for a
//! longer neighbour, and a text's vector does not depend on which batch it landed in.
//! Vectors come back in the order of the input texts.

use crate::error::{Error, Result};
use crate::format::ModelFile;
use crate::model::{self, PackedBatch};
use crate::pooling::{self, Dense};
use crate::tokenize::{TextTokenizer, Tokens, Truncation};
use rayon::prelude::*;
use std::path::Path;

// `Embedder::tokenize` and `embed_ids`: embed's two halves, for callers that batch.
mod tokens;

/// Per-call options; [`EmbedOptions::default`] gives the model's own defaults.
#[derive(Clone, Debug)]
pub struct EmbedOptions {
    /// Texts per forward pass (sorted by length first). Default 32.
    pub batch_size: usize,
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
        EmbedOptions { batch_size: 32, truncation: Truncation::Truncate, prompt: None, dims: None, normalize: None }
    }
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
    file: ModelFile,
    tokenizer: TextTokenizer,
    pool: rayon::ThreadPool,
    threads: usize,
    output_dim: usize,
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

    /// Wraps an already opened file; validates every tensor the architecture needs.
    pub fn from_file(file: ModelFile, threads: usize) -> Result<Embedder> {
        let threads = if threads == 0 { std::thread::available_parallelism().map_or(1, |n| n.get()) } else { threads };
        let meta = file.meta();
        let mut tokenizer = TextTokenizer::from_file(&file, meta.max_seq_len)?;
        let encoder = model::bind(&file)?;
        // Added tokens past the table (Gemma's `<image_soft_token>`) are refused per text.
        if tokenizer.vocab_size(false) > encoder.vocab_size() {
            return Err(Error::model(meta.architecture.as_str(), format!("the tokenizer has {} tokens but the embedding table only {} rows", tokenizer.vocab_size(false), encoder.vocab_size())));
        }
        tokenizer.limit_ids(encoder.vocab_size());
        let mut output_dim = encoder.hidden_size();
        for dense in Dense::bind_all(&file)? {
            output_dim = dense.out_features();
        }
        drop(encoder);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("octet-{i}"))
            .build()
            .map_err(|e| Error::Option(format!("cannot start {threads} threads: {e}")))?;
        Ok(Embedder { file, tokenizer, pool, threads, output_dim })
    }

    /// The model file.
    pub fn file(&self) -> &ModelFile {
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
        let prompt = self.prompt_prefix(options.prompt.as_deref())?;
        if options.batch_size == 0 {
            return Err(Error::Option("batch size must be at least 1".into()));
        }
        if let Some(d) = options.dims {
            if d == 0 || d > self.output_dim {
                return Err(Error::Option(format!("dims {d} is not in 1..={} (this model's Matryoshka dims: {:?})", self.output_dim, self.file.meta().matryoshka_dims)));
            }
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
            let mut order: Vec<usize> = (0..texts.len()).collect();
            order.sort_by_key(|&i| tokens[i].ids.len());

            let encoder = model::bind(&self.file)?;
            let dense = Dense::bind_all(&self.file)?;
            let mode = self.file.meta().pooling.mode;
            let mut vectors = vec![Vec::new(); texts.len()];
            for chunk in order.chunks(options.batch_size) {
                let batch = PackedBatch::new(chunk.iter().map(|&i| tokens[i].ids.as_slice()));
                let states = encoder.forward(&batch)?;
                let mut pooled = pooling::pool(mode, &states, encoder.hidden_size(), &batch.spans);
                for layer in &dense {
                    pooled = layer.forward(&pooled, chunk.len())?;
                }
                let width = pooled.len() / chunk.len();
                for (&i, row) in chunk.iter().zip(pooled.chunks_exact(width)) {
                    vectors[i] = pooling::finish(row.to_vec(), options.dims, normalize);
                }
            }
            Ok(Embeddings {
                vectors,
                truncated: tokens.iter().filter(|t| t.truncated).count(),
                tokens: tokens.iter().map(|t| t.ids.len()).sum(),
            })
        })
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
            Error::Option(format!("unknown prompt '{name}'; this model has: {}", if names.is_empty() { "none".to_string() } else { names.join(", ") }))
        })
    }
}
