//! `octet search`: rank a corpus by cosine similarity to one or more queries.
//!
//! The corpus is embedded once into a cache file next to it (`CORPUS.octet-vectors`, format in
//! [`crate::output::CACHE_MAGIC`]). The cache is keyed by a sha256 over the model's identity
//! (the `meta_sha256` of its header, which covers the metadata and, through `data_sha256`, every
//! weight), the embedding options (document prompt, dims, normalization, how the corpus is
//! read) and the corpus bytes, and its header holds a sha256 of its vectors, checked on every
//! load. Any change re-embeds and replaces it; a cache that cannot be written next to the
//! corpus goes to the temporary folder for this run only. Each run writes its cache under a
//! temporary name of its own and renames it into place, and searches the file it wrote, so
//! concurrent runs never mix their vectors. A corpus that can be read only once (standard
//! input `-`, a pipe, `<(...)`) is copied once to a temporary file and not cached; a cache path
//! that is a device or pipe is not used.

use crate::cmd_similarity::clip;
use crate::input::{open_input, InputKind, TextReader};
use crate::load;
use crate::output::{VectorWriter, CACHE_HEADER_LEN, CACHE_MAGIC, CACHE_VERSION};
use crate::sink;
use crate::stream::{self, Progress};
use anyhow::Result;
use clap::Args;
use octet::{EmbedOptions, Embedder};
use octet_tools::exit::{self, CliError};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Search a corpus for the texts most similar to a query.
///
/// The corpus is a file of texts read like `octet embed --input` reads it (plain text, one
/// text per line; --field for JSON lines; --column for CSV). It is embedded once and cached
/// next to it as CORPUS.octet-vectors; the cache is used again while the model, the options
/// and the corpus's bytes are unchanged, and rebuilt when any of them changes.
///
/// Prompts: queries use the model's `query` prompt and corpus texts its `document` prompt
/// when the model has them (EmbeddingGemma does, MiniLM has none); --query-prompt and
/// --document-prompt choose others, and '' means none.
///
/// Output: for each query, the top-k texts with rank, cosine score and line number; --json
/// prints one JSON object per result instead.
///
/// Examples:
///   octet search minilm-int8.octet --corpus faq.txt "how do I reset my password"
///   octet search minilm-int8.octet --corpus docs.jsonl --field body -k 3 "cats" "stock markets"
///   octet search gemma.octet --corpus papers.csv --column abstract --json "sparse attention"
#[derive(Args)]
#[command(verbatim_doc_comment)]
pub struct SearchArgs {
    /// The .octet model file.
    model: PathBuf,
    /// One or more queries.
    #[arg(required = true)]
    queries: Vec<String>,
    /// The texts to search.
    #[arg(long, value_name = "FILE")]
    corpus: PathBuf,
    /// The corpus is JSON lines; search the string in this field.
    #[arg(long, value_name = "NAME")]
    field: Option<String>,
    /// The corpus is CSV with a header row; search this column.
    #[arg(long, value_name = "NAME")]
    column: Option<String>,
    /// How many results per query.
    #[arg(short = 'k', long, default_value_t = 5)]
    top_k: usize,
    /// Prompt for the queries [default: `query` if the model has it].
    #[arg(long)]
    query_prompt: Option<String>,
    /// Prompt for the corpus texts [default: `document` if the model has it].
    #[arg(long)]
    document_prompt: Option<String>,
    /// Keep only the first N dimensions (Matryoshka truncation).
    #[arg(long)]
    dims: Option<usize>,
    /// Where to cache the corpus vectors [default: CORPUS.octet-vectors].
    #[arg(long, value_name = "FILE")]
    cache: Option<PathBuf>,
    /// Do not read or write a cache: embed the corpus for this run only.
    #[arg(long, conflicts_with = "cache")]
    no_cache: bool,
    /// Print one JSON object per result: {"query", "rank", "score", "id", "line", "text"}.
    #[arg(long)]
    json: bool,
    /// Texts per forward pass.
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    /// Compute threads (0: one per core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Replace invalid UTF-8 in the corpus with U+FFFD instead of failing.
    #[arg(long)]
    lossy: bool,
    /// Hide the progress bar and notes.
    #[arg(short, long)]
    quiet: bool,
}

/// `flag`, else the model's prompt called `name` if it has one, else none.
fn prompt_or_default(embedder: &Embedder, flag: Option<String>, name: &str) -> Option<String> {
    flag.or_else(|| {
        embedder
            .file()
            .meta()
            .prompts
            .contains_key(name)
            .then(|| name.to_string())
    })
}

pub fn run(args: SearchArgs) -> Result<()> {
    let kind = InputKind::from_flags(args.field.clone(), args.column.clone())?;
    if args.top_k == 0 {
        return Err(CliError::usage("-k must be at least 1"));
    }
    let embedder = load::open_model(&args.model, args.threads)?;
    let query_options = load::embed_options(
        args.batch_size,
        false,
        prompt_or_default(&embedder, args.query_prompt.clone(), "query"),
        args.dims,
        false,
    );
    let doc_options = load::embed_options(
        args.batch_size,
        false,
        prompt_or_default(&embedder, args.document_prompt.clone(), "document"),
        args.dims,
        false,
    );
    load::check_options(&embedder, &query_options)?;
    load::check_options(&embedder, &doc_options)?;
    let dims = load::output_dims(&embedder, &doc_options);

    // A corpus that can be read only once (standard input, a pipe, `<(...)`, a device) is copied
    // once into a temporary file, which is searched and then removed; it is not cached.
    let spooled = Spool::corpus_if_stream(&args.corpus, args.quiet)?;
    let corpus = spooled.as_ref().map_or(args.corpus.as_path(), |s| s.path.as_path());
    let cache = if args.no_cache || spooled.is_some() {
        None
    } else {
        let cache = args.cache.clone().unwrap_or_else(|| {
            let mut name = args.corpus.file_name().unwrap_or_default().to_os_string();
            name.push(".octet-vectors");
            args.corpus.with_file_name(name)
        });
        sink::refuse_same_file(
            "--cache",
            &cache,
            &[],
            &[("model", &args.model), ("corpus", &args.corpus)],
        )?;
        if sink::is_special(&cache) {
            if !args.quiet {
                eprintln!(
                    "note: the cache {} is not a regular file (a device, pipe or socket); the corpus is embedded for this run only",
                    cache.display()
                );
            }
            None
        } else {
            Some(sink::resolve(&cache))
        }
    };
    let (key, cached) = match &cache {
        Some(cache) => {
            let key = cache_key(&args.model, &doc_options, &kind, args.lossy, corpus)?;
            (key, load_cache(cache, &key, dims))
        }
        None => ([0; 32], None),
    };
    let map = match cached {
        Some(map) => map,
        None => build_cache(&embedder, &args, &kind, &doc_options, corpus, cache, key, dims)?,
    };
    search_cache(&embedder, &args, &kind, &query_options, corpus, &map, dims)
}

/// Embeds the corpus into `cache` (`None`: a temporary file for this run only) and maps it.
#[allow(clippy::too_many_arguments)]
fn build_cache(
    embedder: &Embedder,
    args: &SearchArgs,
    kind: &InputKind,
    doc_options: &EmbedOptions,
    corpus: &Path,
    cache: Option<PathBuf>,
    key: [u8; 32],
    dims: usize,
) -> Result<memmap2::Mmap> {
    let temp_cache = std::env::temp_dir().join(format!("octet-search-{}.octet-vectors", std::process::id()));
    let mut reader = TextReader::open(Some(corpus), kind.clone(), args.lossy)?;
    let mut path = cache.clone().unwrap_or_else(|| temp_cache.clone());
    let mut writer = match VectorWriter::create_cache(&path, dims, key) {
        Ok(w) => w,
        Err(e) if exit::code_for(&e) == exit::CANT_CREATE && cache.is_some() && args.cache.is_none() => {
            if !args.quiet {
                eprintln!(
                    "note: {}; caching in {} for this run only",
                    exit::render(&e),
                    temp_cache.display()
                );
            }
            path = temp_cache.clone();
            VectorWriter::create_cache(&path, dims, key)?
        }
        Err(e) => return Err(e),
    };
    let progress = Progress::new(args.quiet, reader.total_bytes(), "embedding the corpus");
    let result = stream::embed_all(embedder, doc_options, &mut reader, &mut writer, &progress);
    progress.finish();
    if let Err(e) = result {
        writer.discard();
        return Err(e);
    }
    if writer.count() == 0 {
        writer.discard();
        return Err(CliError::bad_input(format!(
            "the corpus {} holds no texts",
            args.corpus.display()
        )));
    }
    let file = writer
        .finish()?
        .ok_or_else(|| CliError::internal("the cache writer kept no file"))?;
    if path == temp_cache {
        let _ = std::fs::remove_file(&temp_cache);
    }
    // SAFETY: this handle is the file this run just wrote and renamed into place; octet replaces
    // caches only by rename, never in place, so its bytes do not change while mapped.
    let map = unsafe { memmap2::Mmap::map(&file) }
        .map_err(|e| CliError::io(format!("cannot map {}: {e}", path.display())))?;
    check_cache(&map, Some(&key), dims)
        .map(|_| map)
        .ok_or_else(|| CliError::internal(format!("the cache {} just written does not check", path.display())))
}

/// A temporary copy of a corpus that can be read only once, removed when dropped.
struct Spool {
    path: PathBuf,
}

impl Spool {
    /// Copies `corpus` if it is standard input (`-`) or not a regular file; `None` otherwise.
    fn corpus_if_stream(corpus: &Path, quiet: bool) -> Result<Option<Spool>> {
        let stdin = corpus.as_os_str() == "-";
        if !stdin {
            let meta = std::fs::metadata(corpus);
            if meta.as_ref().map_or(true, |m| m.is_file()) {
                // A missing file is reported by the reader, with its usual message.
                if meta.is_err() {
                    open_input(corpus, "corpus")?;
                }
                return Ok(None);
            }
            if meta.is_ok_and(|m| m.is_dir()) {
                open_input(corpus, "corpus")?;
            }
        }
        let mut name = format!("octet-search-{}.corpus", std::process::id());
        if let Some(ext) = corpus.extension().and_then(|e| e.to_str()) {
            name = format!("{name}.{ext}");
        }
        let spool = Spool {
            path: std::env::temp_dir().join(name),
        };
        let mut target = std::fs::File::create(&spool.path).map_err(|e| sink::create_error(&spool.path, e))?;
        let copied = if stdin {
            std::io::copy(&mut std::io::stdin().lock(), &mut target)
        } else {
            std::io::copy(&mut open_input(corpus, "corpus")?, &mut target)
        };
        copied.map_err(|e| {
            CliError::io(format!(
                "cannot copy the corpus {} to {}: {e}",
                corpus.display(),
                spool.path.display()
            ))
        })?;
        if !quiet {
            eprintln!(
                "note: the corpus {} is not a regular file (standard input, a pipe or a device): it is read once and not cached",
                corpus.display()
            );
        }
        Ok(Some(spool))
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn search_cache(
    embedder: &Embedder,
    args: &SearchArgs,
    kind: &InputKind,
    query_options: &EmbedOptions,
    corpus: &Path,
    map: &[u8],
    dims: usize,
) -> Result<()> {
    let count = check_cache(map, None, dims).unwrap_or(0);
    if count == 0 {
        return Err(CliError::bad_input(format!(
            "the corpus {} holds no texts",
            args.corpus.display()
        )));
    }
    let vectors = &map[CACHE_HEADER_LEN..];
    let queries = embedder.embed_with(&args.queries, query_options)?;
    load::check_finite(&queries, &args.queries, &args.model)?;

    let mut doc = vec![0f32; dims];
    let mut best: Vec<Vec<(f32, u64)>> = vec![Vec::with_capacity(args.top_k + 1); queries.len()];
    let query_norms: Vec<f64> = queries.iter().map(|q| norm(q)).collect();
    for (i, row) in vectors.chunks_exact(4 * dims).enumerate() {
        for (d, b) in doc.iter_mut().zip(row.chunks_exact(4)) {
            *d = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        }
        let doc_norm = norm(&doc);
        for ((q, qn), top) in queries.iter().zip(&query_norms).zip(&mut best) {
            let dot: f64 = q.iter().zip(&doc).map(|(&a, &b)| a as f64 * b as f64).sum();
            let score = if *qn == 0.0 || doc_norm == 0.0 {
                0.0
            } else {
                (dot / (qn * doc_norm)) as f32
            };
            insert_top(top, args.top_k, score, i as u64);
        }
    }
    let results = best;

    // Fetch the winners' texts in one more pass over the corpus.
    let wanted: BTreeMap<u64, ()> = results.iter().flatten().map(|&(_, i)| (i, ())).collect();
    let mut texts: BTreeMap<u64, (String, u64)> = BTreeMap::new();
    let mut reader = TextReader::open(Some(corpus), kind.clone(), args.lossy)?;
    let mut index = 0u64;
    while texts.len() < wanted.len() {
        let Some(record) = reader.next_record()? else {
            break;
        };
        if wanted.contains_key(&index) {
            texts.insert(index, (record.text, record.line));
        }
        index += 1;
    }

    let mut out = String::new();
    for (query, top) in args.queries.iter().zip(&results) {
        if !args.json {
            out.push_str(&format!("query: {}\n", clip(query, 100)));
        }
        for (rank, &(score, id)) in top.iter().enumerate() {
            let (text, line) = texts.get(&id).map_or(("", 0), |(t, l)| (t.as_str(), *l));
            if args.json {
                let row = Hit {
                    query,
                    rank: rank + 1,
                    score,
                    id,
                    line,
                    text,
                };
                out.push_str(&serde_json::to_string(&row)?);
                out.push('\n');
            } else {
                out.push_str(&format!(
                    "{:>4}  {score:.4}  line {line:<6} {}\n",
                    rank + 1,
                    clip(text, 100)
                ));
            }
        }
    }
    print!("{out}");
    Ok(())
}

/// One `--json` result line.
#[derive(serde::Serialize)]
struct Hit<'a> {
    query: &'a str,
    rank: usize,
    score: f32,
    id: u64,
    line: u64,
    text: &'a str,
}

fn norm(v: &[f32]) -> f64 {
    v.iter().map(|&x| x as f64 * x as f64).sum::<f64>().sqrt()
}

/// Keeps `top` sorted by descending score (ties: lower id first), at most `k` long.
fn insert_top(top: &mut Vec<(f32, u64)>, k: usize, score: f32, id: u64) {
    if top.len() == k && top.last().is_some_and(|&(s, _)| s >= score) {
        return;
    }
    let at = top.partition_point(|&(s, _)| s >= score);
    top.insert(at, (score, id));
    top.truncate(k);
}

/// The cache key: what the vectors depend on.
fn cache_key(model: &Path, options: &EmbedOptions, kind: &InputKind, lossy: bool, corpus: &Path) -> Result<[u8; 32]> {
    let mut head = [0u8; 128];
    open_input(model, "model")?
        .read_exact(&mut head)
        .map_err(|e| CliError::io(format!("cannot read {}: {e}", model.display())))?;
    let mut h = Sha256::new();
    h.update(b"octet search cache 1\0");
    // meta_sha256 (FORMAT.md 3.2): covers the metadata, which holds data_sha256 of the weights.
    h.update(&head[56..88]);
    h.update(format!(
        "{:?}\0{:?}\0{:?}\0{:?}\0{}\0{lossy}\0",
        options.prompt,
        options.dims,
        options.normalize,
        options.truncation,
        kind.describe()
    ));
    let mut file = open_input(corpus, "corpus")?;
    let mut block = vec![0u8; 1 << 20];
    loop {
        let n = file
            .read(&mut block)
            .map_err(|e| CliError::io(format!("cannot read {}: {e}", corpus.display())))?;
        if n == 0 {
            break;
        }
        h.update(&block[..n]);
    }
    Ok(h.finalize().into())
}

/// The cache at `path` mapped, if it is complete, made for `key` with vectors of `dims` values,
/// and its vectors are the ones it was written with (their sha256 is in the header).
fn load_cache(path: &Path, key: &[u8; 32], dims: usize) -> Option<memmap2::Mmap> {
    let file = std::fs::File::open(path).ok()?;
    let meta = file.metadata().ok()?;
    if !meta.is_file() || (meta.len() as usize) < CACHE_HEADER_LEN {
        return None;
    }
    // SAFETY: octet replaces caches only by rename, never in place, so the mapped bytes do not
    // change; the header and the content hash are checked before any vector is used.
    let map = unsafe { memmap2::Mmap::map(&file) }.ok()?;
    check_cache(&map, Some(key), dims).map(|_| map)
}

/// The count of a cache held in `bytes`, if its header is sound, its vectors hash to the
/// header's content hash (and its key is `key`, if given).
fn check_cache(bytes: &[u8], key: Option<&[u8; 32]>, dims: usize) -> Option<u64> {
    let count = check_cache_header(bytes.get(..CACHE_HEADER_LEN)?, bytes.len() as u64, key, dims)?;
    let content: [u8; 32] = Sha256::digest(&bytes[CACHE_HEADER_LEN..]).into();
    (bytes[56..88] == content).then_some(count)
}

fn check_cache_header(head: &[u8], file_len: u64, key: Option<&[u8; 32]>, dims: usize) -> Option<u64> {
    if head.len() < CACHE_HEADER_LEN || head[..8] != CACHE_MAGIC || head[8..12] != CACHE_VERSION.to_le_bytes() {
        return None;
    }
    if u32::from_le_bytes(head[12..16].try_into().ok()?) as usize != dims {
        return None;
    }
    let count = u64::from_le_bytes(head[16..24].try_into().ok()?);
    if key.is_some_and(|k| head[24..56] != k[..]) {
        return None;
    }
    let expected = count
        .checked_mul(4 * dims as u64)?
        .checked_add(CACHE_HEADER_LEN as u64)?;
    (expected == file_len).then_some(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_keeps_the_best_in_order() {
        let mut top = Vec::new();
        for (i, s) in [0.1f32, 0.9, 0.5, 0.9, 0.7, -1.0].into_iter().enumerate() {
            insert_top(&mut top, 3, s, i as u64);
        }
        assert_eq!(top, [(0.9, 1), (0.9, 3), (0.7, 4)]);
    }

    #[test]
    fn cache_header_checks_length_and_key() {
        let key = [7u8; 32];
        let mut head = CACHE_MAGIC.to_vec();
        head.extend_from_slice(&CACHE_VERSION.to_le_bytes());
        head.extend_from_slice(&4u32.to_le_bytes());
        head.extend_from_slice(&2u64.to_le_bytes());
        head.extend_from_slice(&key);
        head.resize(CACHE_HEADER_LEN, 0);
        let len = (CACHE_HEADER_LEN + 2 * 4 * 4) as u64;
        assert_eq!(check_cache_header(&head, len, Some(&key), 4), Some(2));
        assert_eq!(check_cache_header(&head, len - 1, Some(&key), 4), None);
        assert_eq!(check_cache_header(&head, len, Some(&[0; 32]), 4), None);
        assert_eq!(check_cache_header(&head, len, None, 8), None);
    }
}
