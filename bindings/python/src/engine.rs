//! [`Engine`], the Python class `octet._octet.Engine`: one opened model. `octet.Embedder`
//! (python/octet/embedder.py) wraps it; this is the part that touches the engine.
//!
//! Every call reads its texts with the GIL held (`texts::read`), then releases the GIL
//! (`Python::detach`) for tokenization and compute, so Python threads sharing one `Engine`
//! run in parallel; the embedder is `Sync` and keeps one scratch per concurrent caller.
//! `embed` allocates the NumPy array first and the engine writes every vector straight into
//! it (`Embedder::embed_into`): no copy of the output.

use crate::{errors, texts};
use numpy::{PyArray2, PyArrayMethods};
use octet::{EmbedOptions, Embedder, Truncation};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// More threads than this per CPU only add overhead (the command line caps `--threads` alike).
const THREADS_PER_CPU: usize = 4;

/// An opened `.octet` model: `Engine(path, threads=None)`.
#[pyclass(frozen, module = "octet._octet")]
pub struct Engine {
    embedder: Embedder,
    path: PathBuf,
}

#[pymethods]
impl Engine {
    #[new]
    #[pyo3(signature = (path, threads=None))]
    fn new(py: Python<'_>, path: PathBuf, threads: Option<i64>) -> PyResult<Engine> {
        let threads = match threads {
            None => 0,
            Some(n) if n < 1 => {
                return Err(PyValueError::new_err(format!(
                    "threads must be at least 1, got {n} (None: one per core)"
                )))
            }
            Some(n) => {
                let cpus = std::thread::available_parallelism().map_or(1, |c| c.get());
                (n as usize).min(THREADS_PER_CPU * cpus)
            }
        };
        let opened = py.detach(|| {
            errors::guarded(|| {
                octet_tools::model_path::check(&path)?;
                Embedder::open_with_threads(&path, threads)
                    .map_err(|e| anyhow::Error::new(e).context(format!("cannot use the model {}", path.display())))
            })
        });
        let embedder = opened.map_err(errors::to_py)?;
        Ok(Engine { embedder, path })
    }

    /// The model file's path.
    #[getter]
    fn path(&self) -> PathBuf {
        self.path.clone()
    }

    /// Width of the vectors (before any Matryoshka truncation).
    #[getter]
    fn dims(&self) -> usize {
        self.embedder.dim()
    }

    /// The window in tokens, special and prompt tokens included.
    #[getter]
    fn max_seq_length(&self) -> usize {
        self.embedder.window()
    }

    /// Task prompts stored in the model: name -> prefix.
    #[getter]
    fn prompts(&self) -> BTreeMap<String, String> {
        self.embedder.file().meta().prompts.clone()
    }

    /// The prompt used when none is named, if the model has one.
    #[getter]
    fn default_prompt_name(&self) -> Option<String> {
        self.embedder.file().meta().default_prompt.clone()
    }

    /// Output sizes the model was trained to be truncated to (empty if none).
    #[getter]
    fn matryoshka_dims(&self) -> Vec<usize> {
        self.embedder.file().meta().matryoshka_dims.clone()
    }

    /// The quantization recipe the file was converted with (`int8`, `f16`, ...).
    #[getter]
    fn recipe(&self) -> String {
        self.embedder.file().meta().quantization.recipe.to_string()
    }

    /// The encoder architecture (`bert`, `gemma3`, `t5`).
    #[getter]
    fn architecture(&self) -> String {
        self.embedder.file().meta().architecture.as_str().to_string()
    }

    /// Compute threads.
    #[getter]
    fn threads(&self) -> usize {
        self.embedder.threads()
    }

    /// Embeds `texts` into a new float32 array of shape (len(texts), dims or `dims`).
    /// `prompt_name` names a stored prompt (None: the model's default, "": none); `prompt`,
    /// a literal prefix, wins over it. `normalize` None follows the model.
    #[pyo3(signature = (texts, batch_size=32, prompt_name=None, prompt=None, dims=None, normalize=None))]
    // The keyword arguments of sentence-transformers' `encode`, one Rust argument each.
    #[allow(clippy::too_many_arguments)]
    fn embed<'py>(
        &self,
        py: Python<'py>,
        texts: &Bound<'py, PyAny>,
        batch_size: i64,
        prompt_name: Option<String>,
        prompt: Option<String>,
        dims: Option<i64>,
        normalize: Option<bool>,
    ) -> PyResult<Bound<'py, PyArray2<f32>>> {
        if batch_size < 1 {
            return Err(PyValueError::new_err(format!(
                "batch_size must be at least 1, got {batch_size}"
            )));
        }
        let dims = match dims {
            None => None,
            Some(d) if d < 1 || d as usize > self.embedder.dim() => {
                let meta = self.embedder.file().meta();
                return Err(PyValueError::new_err(format!(
                    "truncate_dim {d} is not in 1..={} (this model's Matryoshka dims: {:?})",
                    self.embedder.dim(),
                    meta.matryoshka_dims
                )));
            }
            Some(d) => Some(d as usize),
        };
        let (texts, prompt_name) = match prompt {
            Some(p) => (texts::read(texts, "sentences", Some(&p))?, Some(String::new())),
            None => (texts::read(texts, "sentences", None)?, prompt_name),
        };
        let options = EmbedOptions {
            batch_size: batch_size as usize,
            prompt: prompt_name,
            dims,
            normalize,
            ..EmbedOptions::default()
        };
        let width = dims.unwrap_or(self.embedder.dim());
        let array = PyArray2::<f32>::zeros(py, [texts.len(), width], false);
        {
            let mut view = array.readwrite();
            let out = view
                .as_slice_mut()
                .map_err(|e| PyValueError::new_err(format!("internal error: new array not contiguous: {e}")))?;
            let embedder = &self.embedder;
            py.detach(|| errors::guarded(|| embedder.embed_into(&texts, &options, out).map_err(anyhow::Error::new)))
                .map_err(errors::to_py)?;
        }
        Ok(array)
    }

    /// The token ids of each text, special tokens included, as `embed` sees them (prompt
    /// prepended, cut to the window).
    #[pyo3(signature = (texts, prompt_name=None))]
    fn tokenize(
        &self,
        py: Python<'_>,
        texts: &Bound<'_, PyAny>,
        prompt_name: Option<String>,
    ) -> PyResult<Vec<Vec<u32>>> {
        let texts = texts::read(texts, "texts", None)?;
        let embedder = &self.embedder;
        let tokens = py
            .detach(|| {
                errors::guarded(|| {
                    embedder
                        .tokenize(&texts, Some(prompt_name.as_deref().unwrap_or("")), Truncation::Truncate)
                        .map_err(anyhow::Error::new)
                })
            })
            .map_err(errors::to_py)?;
        Ok(tokens.into_iter().map(|t| t.ids).collect())
    }

    /// The number of tokens of each text as `embed` sees it (special tokens included, cut to
    /// the window), and whether it was cut.
    #[pyo3(signature = (texts, prompt_name=None))]
    fn count_tokens(
        &self,
        py: Python<'_>,
        texts: &Bound<'_, PyAny>,
        prompt_name: Option<String>,
    ) -> PyResult<(Vec<usize>, Vec<bool>)> {
        let texts = texts::read(texts, "texts", None)?;
        let embedder = &self.embedder;
        let tokens = py
            .detach(|| {
                errors::guarded(|| {
                    embedder
                        .tokenize(&texts, prompt_name.as_deref(), Truncation::Truncate)
                        .map_err(anyhow::Error::new)
                })
            })
            .map_err(errors::to_py)?;
        Ok((
            tokens.iter().map(|t| t.ids.len()).collect(),
            tokens.iter().map(|t| t.truncated).collect(),
        ))
    }

    fn __repr__(&self) -> String {
        format!(
            "Engine('{}', dims={}, recipe='{}', threads={})",
            self.path.display(),
            self.embedder.dim(),
            self.recipe(),
            self.embedder.threads()
        )
    }
}
