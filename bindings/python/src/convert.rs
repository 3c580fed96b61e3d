//! `octet._octet.convert`: the command line's `octet convert` (`octet_tools::convert`), with
//! its recipes, `--keep` patterns and `--report`, and its error messages.

use crate::errors;
use octet_tools::convert::{self as converter, recipe::Recipe};
use octet_tools::exit::CliError;
use octet_tools::report::{self, render::ReportFormat};
use pyo3::exceptions::PyFileNotFoundError;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::path::PathBuf;

/// Converts `source` (a sentence-transformers folder or a `.tflite` file) into the `.octet`
/// file `output` with recipe `quant`, keeping tensors that match a `keep` pattern in f32.
/// Returns a dict (path, architecture, tensors, recipe, bytes). With `report`, compares the
/// recipes in `quant` (default f16,int8-embeddings,int8) with f32 instead and returns the
/// report as JSON text; `output` is then an optional folder to keep the files in. `tflite_exact`
/// is `--tflite-exact`: a `.tflite` BERT encoder's float steps replay TFLite's builtin kernels.
#[pyfunction]
#[pyo3(signature = (source, output=None, quant=None, keep=Vec::new(), report=false, tokenizer=None, threads=0, tflite_exact=false))]
#[allow(clippy::too_many_arguments)]
pub fn convert<'py>(
    py: Python<'py>,
    source: PathBuf,
    output: Option<PathBuf>,
    quant: Option<String>,
    keep: Vec<String>,
    report: bool,
    tokenizer: Option<PathBuf>,
    threads: usize,
    tflite_exact: bool,
) -> PyResult<Bound<'py, PyAny>> {
    if report && tflite_exact {
        return Err(errors::to_py(CliError::usage(
            "tflite_exact=True writes one file; it does not combine with report=True",
        )));
    }
    if report {
        let names = quant.unwrap_or_else(|| "f16,int8-embeddings,int8".to_string());
        let json = py
            .detach(|| errors::guarded(|| run_report(&source, output, &names, keep, threads)))
            .map_err(errors::to_py)?;
        return Ok(json.into_pyobject(py)?.into_any());
    }
    let Some(output) = output else {
        return Err(errors::to_py(CliError::usage(
            "convert needs an output path (the .octet file to write), or report=True",
        )));
    };
    let quant = quant.unwrap_or_else(|| "int8".to_string());
    let done = py
        .detach(|| {
            errors::guarded(|| {
                let recipe = Recipe::parse(&quant, keep, None).map_err(|e| CliError::usage(e.to_string()))?;
                if converter::tflite::is_tflite(&source) {
                    let inputs = converter::tflite::TfliteInputs {
                        tokenizer: tokenizer.as_deref(),
                        mapping: None,
                        exact: tflite_exact,
                    };
                    converter::tflite::convert(&source, &output, &recipe, &inputs)
                } else if tflite_exact {
                    Err(CliError::usage(
                        "tflite_exact=True replays a .tflite file; this source is not one",
                    ))
                } else {
                    converter::convert(&source, &output, &recipe, false)
                }
            })
        })
        .map_err(|e| {
            // The converter calls a missing source "not a folder" (a bad argument to the command
            // line); from Python it is the file error it is.
            if source.exists() {
                errors::to_py(e)
            } else {
                PyFileNotFoundError::new_err(octet_tools::exit::render(&e))
            }
        })?;
    let dict = PyDict::new(py);
    dict.set_item("path", output)?;
    dict.set_item("architecture", done.architecture)?;
    dict.set_item("tensors", done.tensors)?;
    dict.set_item("recipe", done.recipe)?;
    dict.set_item("bytes", done.bytes)?;
    Ok(dict.into_any())
}

/// `octet convert --report --report-format json` on the built-in texts.
fn run_report(
    source: &std::path::Path,
    keep_dir: Option<PathBuf>,
    names: &str,
    keep: Vec<String>,
    threads: usize,
) -> anyhow::Result<String> {
    let mut recipes = Vec::new();
    for name in names.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        recipes.push(Recipe::parse(name, keep.clone(), None).map_err(|e| CliError::usage(e.to_string()))?);
    }
    let options = report::ReportOptions {
        recipes,
        texts: report::builtin_texts(),
        texts_source: "built-in Lee news sentences".to_string(),
        threads,
        rounds: 3,
        keep_dir,
        progress: false,
    };
    let result = report::run(source, &options).map_err(|e| e.context("recipe report"))?;
    Ok(report::render::render(&result, ReportFormat::Json))
}
