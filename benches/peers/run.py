#!/usr/bin/env python3
"""Peer runner: octet side by side with ONNX Runtime, PyTorch and llama.cpp, on all-MiniLM-L6-v2 and EmbeddingGemma-300m.

Every engine embeds the same texts on the same machine in the same run, with the same thread count:

- octet, in process, through `octet-bench-timer serve` (benches/timer.rs), one child process that keeps
  its models loaded and answers JSON requests (no prompt: the runner prepends prompts itself);
- ONNX Runtime (benches/peers/ort_models.py builds the models, benches/peers/ort_worker.py runs them): each
  group of ORT engines lives in a worker process of its own (onnxruntime, numpy and tokenizers only), one plain
  and one under `LD_PRELOAD=noamx.so` (AMX tile permission refused, so MLAS uses its AVX-512 VNNI kernels:
  `ort-int8-noamx`). MiniLM has several int8 candidates (plain, eager-attention and optimizer-fused exports,
  reduce_range); "the fastest peer int8" is chosen per point and round among them and llama.cpp Q8_0;
- PyTorch f32 through sentence-transformers (MiniLM: an engine; both models: the quality reference);
- llama.cpp GGUF (MiniLM f32 / f16 / Q8_0, EmbeddingGemma Q8_0 with its two Dense layers), built by
  benches/peers/setup.sh from the sources vendored in the llama-cpp-python sdist, called through that sdist's
  ctypes binding (skipped, with the reason printed, when the build is missing).

Points (texts of exactly that many tokens by the model's own tokenizer, special tokens included, from
`octet-bench-timer texts`): MiniLM batch 1 at 16, 128 and 256 tokens, batch 32 at 128, and the corpus
tools/data/lee-sentences.txt (400 sentences, batches of 32 sorted by length); EmbeddingGemma batch 1 at 16,
128 and 512, batch 8 at 128, no prompt. For each point and thread count the engines run in rounds: in each
round every engine runs one block (one warm-up call, then calls until about --block-seconds have passed, at
least 2; a call longer than that is a block on its own), in alternating order, with a short pause between
blocks so that no engine's spinning worker threads eat into the next one's time. An engine's figure is the
median over rounds of its blocks' medians; a speed ratio octet/peer is the median over rounds of (peer time /
octet time) within the same round.

Quiet-machine accounting: /proc/loadavg before and after every point, and for every block the CPUs used by
*other* processes (/proc/stat busy time minus the time of this runner, its octet server and its ORT workers).
A figure whose blocks saw more than 0.1 other CPUs on average is marked "does not count" (`~`) in the tables.
`--waitidle` first runs /work/shared/tools/waitidle.sh and keeps its line.

Also: quality of every engine (mean and min cosine against fp32 sentence-transformers on the corpus; with
EmbeddingGemma's `document` prompt prepended for every engine), cold start (octet: a fresh
`octet-bench-timer cold` process, spawn to exit; ORT: session creation plus the first run inside this warm
Python process), peak RSS of an octet corpus run and of an ORT worker that loaded one model and embedded the
corpus, file sizes. Writes <out>/<model>.json, <out>/<model>.md (tables for benches/RESULTS.md) and PNG plots in
benches/plots/ (--replot JSON redoes the tables and plots from a saved run). Not part of CI (needs the ~6 GB
torch venv): see benches/peers/setup.sh.

Usage: .venv-ref/bin/python benches/peers/run.py [--models minilm,gemma] [--threads 1,2] [--rounds 3]
       [--waitidle] [--skip-llama] [--quick]
"""

import argparse
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ort_models  # noqa: E402
from timer_client import OctetServer  # noqa: E402
from ort_worker import FastTokenizer, OrtEngine, OrtWorker, RemoteOrtEngine, normalize  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target" / "bench"))
WORK = REPO / "target" / "bench-peers"
LLAMA_ROOT = REPO / "target" / "bench-llama"
LLAMA_SRC = LLAMA_ROOT / "llama_cpp_python-0.3.36"
LLAMA_LIB = LLAMA_ROOT / "build" / "bin"
NOAMX_SRC = Path(__file__).resolve().parent / "noamx.c"
WAITIDLE = Path("/work/shared/tools/waitidle.sh")
CORPUS = REPO / "tools" / "data" / "lee-sentences.txt"
PLOTS = REPO / "benches" / "plots"
SOURCES = Path(os.environ.get("OCTET_CACHE", Path.home() / ".cache" / "octet")) / "sources"
BATCH = 32  # texts per forward pass on the corpus, for every engine (octet's default)
PAUSE_S = 0.05  # between blocks: lets the previous engine's worker threads stop spinning
OTHER_CPU_LIMIT = 0.1  # figures measured while other processes used more CPUs than this do not count

MODELS = {
    "minilm": {
        "title": "all-MiniLM-L6-v2", "source": SOURCES / "all-MiniLM-L6-v2", "recipes": ["f32", "int8-embeddings", "int8"],
        "points": ["1x16", "1x128", "1x256", "32x128"], "corpus": True, "prompt": "", "max_length": 256,
        "llama_kinds": ["q8_0"], "llama_ctx": 512,  # --llama-kinds f32,f16,q8_0 for all three
        # Rough quiet-machine ms per call at 2 threads of a middling engine, for the time estimate only.
        "expect_ms": {"1x16": 6, "1x128": 25, "1x256": 55, "32x128": 800, "corpus": 2200},
    },
    "gemma": {
        "title": "EmbeddingGemma-300m", "source": SOURCES / "embeddinggemma-300m", "recipes": ["int8"],
        "points": ["1x16", "1x128", "1x512", "8x128"], "corpus": False, "prompt": "title: none | text: ",
        "max_length": 2048, "llama_kinds": ["q8_0"], "llama_ctx": 512,
        "expect_ms": {"1x16": 22, "1x128": 90, "1x512": 420, "8x128": 620},
    },
}


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def run(cmd, **kw):
    log("$", " ".join(str(c) for c in cmd))
    return subprocess.run(cmd, check=True, **kw)


def loadavg():
    return open("/proc/loadavg").read().strip()


# ---------------------------------------------------------------------------------------------- octet


def build_octet():
    env = dict(os.environ, CARGO_TARGET_DIR=str(TARGET))
    run(["cargo", "build", "--release", "-p", "octet-tools", "--bin", "octet",
         "-p", "octet-benches", "--bin", "octet-bench-timer"], cwd=REPO, env=env)
    return TARGET / "release" / "octet", TARGET / "release" / "octet-bench-timer"


def convert_octet(cli, key, spec, reconvert):
    paths = {}
    for recipe in spec["recipes"]:
        out = WORK / f"{key}-{recipe}.octet"
        if reconvert or not out.exists():
            tmp = out.with_suffix(".tmp")  # an interrupted conversion never looks cached
            run([cli, "convert", spec["source"], "-o", tmp, "--quant", recipe], stdout=subprocess.DEVNULL)
            os.replace(tmp, out)
        paths[recipe] = out
    return paths


class OctetEngine:
    def __init__(self, server, name, path, threads):
        self.server, self.name = server, f"{name}/t{threads}"
        server.ask({"op": "load", "name": self.name, "model": str(path), "threads": threads})

    def time_calls(self, texts, calls):
        return self.server.ask({"op": "time", "name": self.name, "texts": texts, "iters": calls})["ms"]

    def embed(self, texts):
        return self.server.ask({"op": "embed", "name": self.name, "texts": texts})["vectors"]


# ------------------------------------------------------------------------------------------- the peers


class PyEngine:
    """A Python-side engine in this process: `embed_batch(texts) -> np.ndarray` of normalized vectors."""

    threads = 1

    def set_threads(self):
        pass

    def time_calls(self, texts, calls):
        self.set_threads()
        ms = []
        for _ in range(calls):
            start = time.perf_counter()
            self.embed_batch(texts)
            ms.append((time.perf_counter() - start) * 1e3)
        return ms

    def embed(self, texts):
        self.set_threads()
        return self.embed_batch(texts).tolist()


class TorchEngine(PyEngine):
    def __init__(self, model, threads):
        self.model, self.threads = model, threads

    def set_threads(self):
        import torch

        torch.set_num_threads(self.threads)

    def embed_batch(self, texts):
        import torch

        with torch.inference_mode():
            return self.model.encode(texts, batch_size=BATCH, normalize_embeddings=True, convert_to_numpy=True)


class InProcessOrtEngine(PyEngine):
    """An ORT session in the runner's own process (--ort-in-process: compares with the worker processes)."""

    def __init__(self, path, tokenizer, threads, output):
        self.engine, self.threads = OrtEngine(path, tokenizer, threads, output), threads

    def embed_batch(self, texts):
        return self.engine.embed_batch(texts)


class LlamaEngine(PyEngine):
    """The sdist's `Llama.embed`, which packs whole sequences into decodes of up to n_batch tokens. The
    context is 512 tokens, with flash attention: a 4096-token context (all of batch 32 x 128 in one decode)
    made every sequence attend over the whole unified KV cache, masked (~50 s per call here); 512 without
    flash attention took 4.5 s, with it 1.3-1.6 s (MiniLM, 2 threads)."""

    def __init__(self, llama_cpp, path, threads, n_ctx):
        self.llm = llama_cpp.Llama(model_path=str(path), embedding=True, n_threads=threads, n_threads_batch=threads,
                                   n_ctx=n_ctx, n_batch=n_ctx, n_ubatch=n_ctx, verbose=False, flash_attn=True,
                                   pooling_type=llama_cpp.LLAMA_POOLING_TYPE_MEAN)
        self.threads = threads

    def embed_batch(self, texts):
        import numpy as np

        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = [None] * len(texts)
        for start in range(0, len(order), BATCH):
            chunk = order[start:start + BATCH]
            for i, v in zip(chunk, self.llm.embed([texts[i] for i in chunk], normalize=True)):
                out[i] = v
        return np.asarray(out, dtype=np.float32)


def convert_gguf(key, spec):
    """GGUF files with the sdist's convert_hf_to_gguf.py (EmbeddingGemma with its Dense layers)."""
    out = {}
    for kind in spec["llama_kinds"]:
        path = WORK / f"{key}-{kind}.gguf"
        if not path.exists():
            extra = ["--sentence-transformers-dense-modules"] if key == "gemma" else []
            tmp = path.with_suffix(".tmp")  # an interrupted conversion never looks cached
            run([sys.executable, LLAMA_SRC / "vendor" / "llama.cpp" / "convert_hf_to_gguf.py", spec["source"],
                 "--outtype", kind, "--outfile", tmp, *extra], stdout=subprocess.DEVNULL)
            os.replace(tmp, path)
        out[f"llama-{kind}"] = path
    return out


def load_llama():
    """The sdist's binding on the cmake-built libllama, or (None, reason)."""
    if not (LLAMA_LIB / "libllama.so").exists():
        return None, f"no {LLAMA_LIB}/libllama.so: run benches/peers/setup.sh (its llama.cpp build failed or was not run)"
    os.environ["LLAMA_CPP_LIB_PATH"] = str(LLAMA_LIB)
    sys.path.insert(0, str(LLAMA_SRC))
    try:
        import llama_cpp

        return llama_cpp, None
    except Exception as e:  # noqa: BLE001
        return None, f"cannot load llama_cpp: {e}"


def build_noamx():
    """target/bench-peers/noamx.so from benches/peers/noamx.c (a copy of /work/shared/tools/noamx.c)."""
    out = WORK / "noamx.so"
    if not out.exists() or out.stat().st_mtime < NOAMX_SRC.stat().st_mtime:
        run(["gcc", "-shared", "-fPIC", "-O2", "-o", out, NOAMX_SRC, "-ldl"])
    return out


# ---------------------------------------------------------------------------------------- measurement


class CpuMeter:
    """CPUs used by other processes: /proc/stat busy ticks minus the ticks of our own processes."""

    def __init__(self):
        self.pids = {os.getpid()}
        self.cpus = sum(1 for line in open("/proc/stat") if line[:3] == "cpu" and line[3:4].isdigit()) or 1

    def snapshot(self):
        fields = [int(v) for v in open("/proc/stat").readline().split()[1:9]]
        total = sum(fields)
        busy = total - fields[3] - fields[4]
        own = 0
        for pid in self.pids:
            try:
                after = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
                own += int(after[11]) + int(after[12])
                if pid == os.getpid():  # children it waited for: the cold-start and corpus processes
                    own += int(after[13]) + int(after[14])
            except (OSError, IndexError, ValueError):
                pass
        return total, busy, own

    @staticmethod
    def ticks(a, b):
        """(other busy ticks, total ticks) between two snapshots."""
        return max(0, (b[1] - a[1]) - (b[2] - a[2])), b[0] - a[0]


def block(engine, texts, seconds):
    """Median ms per call over one block. A call longer than `seconds` (batch 32, the corpus) is the block
    on its own (every engine was warmed up by the quality pass); shorter calls get one more warm-up call,
    then as many calls as fit in `seconds` (at least 2, at most 50)."""
    first = engine.time_calls(texts, 1)[0]
    if first >= seconds:
        return first
    calls = max(2, min(50, int(seconds * 1e3 / max(first, 1e-3))))
    return statistics.median(engine.time_calls(texts, calls))


def measure(engines, texts, rounds, seconds, meter):
    """({engine: [median ms per round]}, {engine: [[other ticks, total ticks] per round]}), interleaved."""
    times = {name: [] for name in engines}
    other = {name: [] for name in engines}
    for r in range(rounds):
        names = list(engines) if r % 2 == 0 else list(reversed(engines))  # no engine always goes first
        for name in names:
            time.sleep(PAUSE_S)
            before = meter.snapshot()
            times[name].append(block(engines[name], texts, seconds))
            other[name].append(meter.ticks(before, meter.snapshot()))
    return times, other


def other_cpus(ticks, cpus):
    """Average other CPUs over blocks given as [[other, total], ...] (pooled, not averaged per block)."""
    o, t = sum(x[0] for x in ticks), sum(x[1] for x in ticks)
    return o / t * cpus if t else float("nan")


def cold_start_octet(timer, path, repeats):
    text = "The quick brown fox jumps over the lazy dog."
    walls = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([timer, "cold", str(path), "0", text], check=True, stdout=subprocess.DEVNULL)
        walls.append((time.perf_counter() - start) * 1e3)
    return statistics.median(walls)


def cold_start_ort(path, tokenizer, threads, output, repeats):
    """Session creation + first run (tokenizer already loaded, Python and ORT already imported)."""
    walls = []
    for _ in range(repeats):
        gc.collect()
        start = time.perf_counter()
        OrtEngine(path, tokenizer, threads, output).embed_batch(["The quick brown fox jumps over the lazy dog."])
        walls.append((time.perf_counter() - start) * 1e3)
    return statistics.median(walls)


def corpus_rss(timer, path, threads, prompt):
    if prompt:  # the same prompted corpus as the quality pass
        corpus = WORK / "corpus-prompted.txt"
        corpus.write_text("".join(prompt + l.strip() + "\n" for l in CORPUS.read_text().splitlines() if l.strip()))
    else:
        corpus = CORPUS
    out = subprocess.run([timer, "corpus", str(path), str(threads), str(corpus), "1"], check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out)


def ort_rss(python, name, path, tokenizer_dir, output, max_length, texts, threads):
    """Peak RSS of a fresh ORT worker that loaded one model and embedded `texts`."""
    worker = OrtWorker(python)
    try:
        engine = RemoteOrtEngine(worker, name, path, tokenizer_dir, threads, output, max_length)
        start = time.perf_counter()
        engine.embed(texts)
        seconds = time.perf_counter() - start
        return {"peak_rss_bytes": worker.ask({"op": "rss"})["peak_rss_bytes"], "file_bytes": Path(path).stat().st_size,
                "texts_per_s": len(texts) / seconds}
    finally:
        worker.close()


def cosines(vectors, reference):
    import numpy as np

    a = normalize(np.asarray(vectors, dtype=np.float64))
    b = normalize(np.asarray(reference, dtype=np.float64))
    c = (a * b).sum(1)
    return float(c.mean()), float(c.min())


def cpu_description():
    model, flags = "unknown", []
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name") and model == "unknown":
                model = line.split(":", 1)[1].strip()
            if line.startswith("flags") and not flags:
                flags = line.split(":", 1)[1].split()
    except OSError:
        pass
    keep = ["avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx_vnni", "amx_tile", "amx_int8",
            "avx512_bf16"]
    return model, " ".join(f if f in flags else f"-{f}" for f in keep)


def estimate_seconds(keys, threads, rounds, seconds, engine_counts):
    """A rough duration for the plan, from MODELS' expected call times (quiet machine)."""
    total = 60.0  # build, imports, texts
    for key in keys:
        spec = MODELS[key]
        total += {"minilm": 90, "gemma": 150}[key]  # loads, quality pass, cold start, RSS (exports cached)
        for t in threads:
            for point, ms in spec["expect_ms"].items():
                if point == "corpus" and not spec["corpus"]:
                    continue
                c = ms / 1e3 * (1.7 if t == 1 else 1.0)
                per_block = c if c >= seconds else c + max(2 * c, seconds)
                total += rounds * engine_counts[key] * (per_block + PAUSE_S + 0.01)
    return total


# ------------------------------------------------------------------------------------------- reporting


def med(xs):
    return statistics.median(xs) if xs else float("nan")


def speed_ratio(times, fast, slow):
    """Median over rounds of slow-time / fast-time (> 1: `fast` is faster)."""
    return med([s / f for f, s in zip(times[fast], times[slow])])


def is_int8_peer(name):
    """Peers that compete as "the fastest peer int8": every ORT int8 variant with AMX allowed, llama.cpp Q8_0.
    The AMX-denied line is reported on its own."""
    return (name.startswith("ort-int8") and "noamx" not in name and "inproc" not in name) or name == "llama-q8_0"


def vs_fastest(times, octet, pick):
    """Median over rounds of (fastest picked peer's time in that round / octet's time), and that peer's name."""
    peers = [p for p in times if pick(p) and times.get(p)]
    if not peers or not times.get(octet):
        return None, None
    ratios, winners = [], []
    for r, o in enumerate(times[octet]):
        best = min(peers, key=lambda p: times[p][r])
        ratios.append(times[best][r] / o)
        winners.append(best)
    return med(ratios), max(set(winners), key=winners.count)


def point_quiet(res, key, names):
    """True when every named engine's blocks at point `key` saw <= OTHER_CPU_LIMIT other CPUs."""
    other = res.get("other", {}).get(key, {})
    vals = [other_cpus(other[n], res["cpus"]) for n in names if n in other]
    return all(v <= OTHER_CPU_LIMIT for v in vals)


def mark(text, quiet):
    return text if quiet else f"{text}~"


def targets(res):
    """Issue 13's targets with the measured figures; a figure from a busy block does not count."""
    rows = []
    model = res["model"]
    cols = res["points"] + (["corpus"] if res["corpus"] else [])

    def row(target, cells, goal_ok):
        """cells: {label: (value, quiet)}; the verdict counts only quiet cells."""
        if not cells:
            rows.append(f"| {target} | n/a | not measured |")
            return
        text = ", ".join(mark(f"{v:.2f}x ({k})", q) for k, (v, q) in cells.items())
        counted = [v for v, q in cells.values() if q]
        if len(counted) < len(cells):
            verdict = "**does not count** (busy)" if not counted else (
                "met where quiet" if all(goal_ok(v) for v in counted) else "**missed**")
        else:
            verdict = "met" if all(goal_ok(v) for v in counted) else "**missed**"
        rows.append(f"| {target} | {text} | {verdict} |")

    def ratio_cells(fast, slow_pick, points):
        cells, names = {}, set()
        for p in points:
            for t in res["threads"]:
                key = f"{t}/{p}"
                times = res["times"].get(key, {})
                v, who = vs_fastest(times, fast, slow_pick)
                if v is not None:
                    cells[f"{p} {t}T"] = (v, point_quiet(res, key, [fast] + [n for n in times if slow_pick(n)]))
                    names.add(who)
        return cells, ", ".join(sorted(names))

    if model == "minilm":
        for point, goal in [(p, {"1x16": 3.0}.get(p, 1.5)) for p in cols]:
            cells, who = ratio_cells("octet-int8", is_int8_peer, [point])
            row(f"octet int8 >= {goal}x the fastest peer int8 at {point} ({who})", cells, lambda v, g=goal: v >= g)
        cells, who = ratio_cells("octet-int8", is_int8_peer, ["32x128"])
        row(f"octet int8 >= 3x the fastest peer int8 at 32x128 with AMX ({who + '; ' if who else ''}octet's kernel as dispatched)",
            cells, lambda v: v >= 3)
        cells, who = ratio_cells("octet-int8", lambda n: n == "ort-int8-noamx", ["32x128"])
        row("octet int8 >= 2x at 32x128, VNNI only (octet under OCTET_KERNEL=avx512 vs ORT with AMX denied)", cells,
            lambda v: v >= 2)
        cells, who = ratio_cells("octet-f32", lambda n: n.startswith("ort-f32"), cols)
        row(f"octet f32 >= the fastest ORT f32 everywhere ({who})", cells, lambda v: v >= 1)
        cells, _ = ratio_cells("octet-int8", lambda n: n == "octet-f32", ["32x128"])
        row("octet int8 >= 3x octet f32 at 32x128", cells, lambda v: v >= 3)
    else:
        cells, who = ratio_cells("octet-int8", lambda n: is_int8_peer(n) and n.startswith("ort"), cols)
        row(f"octet int8 >= 1.5x ORT int8 (with AMX where the CPU has it) at every point ({who})", cells,
            lambda v: v >= 1.5)
        cells, who = ratio_cells("octet-int8", lambda n: n == "llama-q8_0", cols)
        row("octet int8 >= 4x llama.cpp Q8_0 at every point", cells, lambda v: v >= 4)
    q = res["quality"].get("octet-int8")
    if q and model == "gemma":
        ok = q[0] >= 0.999 and q[1] >= 0.998
        rows.append(f"| octet int8 quality on the corpus with prompts >= 0.999 mean / 0.998 min | {q[0]:.5f} / {q[1]:.5f} | "
                    f"{'met' if ok else '**missed**'} |")
    cold_goal = {"minilm": 25, "gemma": 400}[model]
    cold = res["cold"].get("octet-int8 process start to first vector (spawn to exit, 2 threads)")
    cold_label = "octet-int8 process start to first vector (spawn to exit, 2 threads)"
    if cold is not None:
        quiet = res.get("cold_other", {}).get(cold_label, 0.0) <= OTHER_CPU_LIMIT
        verdict = ("met" if cold <= cold_goal else "**missed**") if quiet else "**does not count** (busy)"
        rows.append(f"| cold start {model} int8 <= {cold_goal} ms | {mark(f'{cold:.1f} ms', quiet)} | {verdict} |")
    rss = res["rss"].get("octet-int8 corpus run, 2 threads")
    if rss:
        extra = (rss["peak_rss_bytes"] - rss["file_bytes"]) / 1e6
        rows.append(f"| peak RSS, {model} int8 corpus run <= file size + 40 MB | {rss['peak_rss_bytes'] / 1e6:.1f} MB = "
                    f"file {rss['file_bytes'] / 1e6:.1f} MB + {extra:.1f} MB | {'met' if extra <= 40 else '**missed**'} |")
    head = ["### Targets", "", "| target | measured | verdict |", "|---|---|---|"]
    return "\n".join(head + rows) + "\n"


def write_report(res, out_md):
    lines = []
    add = lines.append
    engines = res["engines"]
    cols = res["points"] + (["corpus"] if res["corpus"] else [])
    title = MODELS[res["model"]]["title"]
    add(f"Run {res['date']}; CPU {res['cpu'][0]} ({res['cpu'][1]}); ONNX Runtime {res.get('ort_version', '?')}; "
        f"AMX permission in the plain ORT worker: {res.get('amx', {}).get('plain', '?')}, in the noamx worker: "
        f"{res.get('amx', {}).get('noamx', 'not run')}.")
    if res.get("waitidle"):
        add(f"waitidle.sh: `{res['waitidle']}`")
    add(f"Load average at the start `{res['load_start']}`, at the end `{res['load_end']}`. "
        f"`~` marks a figure whose blocks saw more than {OTHER_CPU_LIMIT} other CPUs on average: it does not count.")
    add("")
    for t in res["threads"]:
        add(f"### {title}, {t} thread{'s' if t > 1 else ''}: ms per call (median of {res['rounds']} interleaved rounds)")
        add("")
        add("| engine | " + " | ".join(c if c != "corpus" else "corpus texts/s" for c in cols) + " |")
        add("|---|" + "---:|" * len(cols))
        for e in engines:
            cells = []
            for p in cols:
                key = f"{t}/{p}"
                ms = res["times"].get(key, {}).get(e)
                if not ms:
                    cells.append("n/a")
                    continue
                text = f"{res['corpus_size'] / (med(ms) / 1e3):.0f}" if p == "corpus" else f"{med(ms):.2f}"
                cells.append(mark(text, point_quiet(res, key, [e])))
            add(f"| {e} | " + " | ".join(cells) + " |")
        others, loads = [], []
        for p in cols:
            key = f"{t}/{p}"
            o = res.get("other", {}).get(key, {})
            vals = [other_cpus(v, res["cpus"]) for v in o.values()]
            others.append(f"{max(vals):.2f}" if vals else "n/a")
            ld = res.get("load", {}).get(key)
            loads.append(f"{ld[0].split()[0]} -> {ld[1].split()[0]}" if ld else "n/a")
        add("| *other CPUs (worst engine)* | " + " | ".join(others) + " |")
        add("| *load average before -> after* | " + " | ".join(loads) + " |")
        add("")
        add(f"Speed ratios, {t} thread{'s' if t > 1 else ''} (peer time / octet time, median over rounds; > 1: octet faster)")
        add("")
        octets = [o for o in ("octet-int8", "octet-f32") if o in engines]
        pairs = [(o, p) for o in octets for p in engines if not p.startswith("octet")]
        pairs += [("octet-int8", o) for o in engines if o.startswith("octet") and o != "octet-int8"]
        add("| octet vs peer | " + " | ".join(cols) + " |")
        add("|---|" + "---:|" * len(cols))
        for o, p in pairs:
            cells = []
            for c in cols:
                key = f"{t}/{c}"
                times = res["times"].get(key, {})
                cells.append(mark(f"{speed_ratio(times, o, p):.2f}x", point_quiet(res, key, [o, p]))
                             if times.get(o) and times.get(p) else "n/a")
            add(f"| {o} vs {p} | " + " | ".join(cells) + " |")
        cells = []
        for c in cols:
            key = f"{t}/{c}"
            times = res["times"].get(key, {})
            v, who = vs_fastest(times, "octet-int8", is_int8_peer)
            quiet = point_quiet(res, key, ["octet-int8"] + [n for n in times if is_int8_peer(n)])
            cells.append(mark(f"{v:.2f}x ({who})", quiet) if v is not None else "n/a")
        add("| octet-int8 vs the fastest peer int8 (per round) | " + " | ".join(cells) + " |")
        add("")
    add(targets(res))
    prompt = MODELS[res["model"]]["prompt"]
    add(f"### Quality on the corpus (cosine vs fp32 sentence-transformers, {res['quality_texts']} sentences"
        + (f", prompt `{prompt}` prepended for every engine)" if prompt else ")"))
    add("")
    add("| engine | mean cosine | min cosine | file MB |")
    add("|---|---:|---:|---:|")
    for e in engines:
        q = res["quality"].get(e)
        size = res["file_bytes"].get(e)
        size_text = f"{size / 1e6:.1f}" if size else "n/a"
        add(f"| {e} | {q[0]:.5f} | {q[1]:.5f} | {size_text} |" if q else f"| {e} | n/a | n/a | {size_text} |")
    add("")
    add("### Cold start and memory")
    add("")
    busy = {k for k, v in res.get("cold_other", {}).items() if not v <= OTHER_CPU_LIMIT}
    for k, v in res["cold"].items():
        add(f"- {k}: {mark(f'{v:.1f} ms', k not in busy)}")
    for k, v in res["rss"].items():
        add(f"- {k}: {'(other CPUs busy) ' if k in busy else ''}peak RSS {v['peak_rss_bytes'] / 1e6:.1f} MB for a {v['file_bytes'] / 1e6:.1f} MB file "
            f"(RSS - file = {(v['peak_rss_bytes'] - v['file_bytes']) / 1e6:.1f} MB), corpus {v['texts_per_s']:.0f} texts/s")
    add("")
    for n in res["notes"]:
        add(f"Note: {n}")
    out_md.write_text("\n".join(lines) + "\n")
    return "\n".join(lines)


def plot(res, folder=PLOTS):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    title = MODELS[res["model"]]["title"]
    singles = [p for p in res["points"] if p.startswith("1x")]
    lengths = [int(p.split("x")[1]) for p in singles]
    batched = [p for p in res["points"] if not p.startswith("1x")]
    wide = "corpus" if res["corpus"] else (batched or res["points"])[-1]
    written = []
    for t in res["threads"]:
        fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
        for e in res["engines"]:
            ys = [med(res["times"].get(f"{t}/{p}", {}).get(e, [])) for p in singles]
            style = "-" if e.startswith("octet") else "--"
            left.plot(lengths, ys, style, marker="o", label=e)
        left.set_xlabel("tokens (batch 1)")
        left.set_ylabel("ms per call (log)")
        left.set_yscale("log")
        left.set_title(f"{title} latency vs sequence length, {t} thread(s)", fontsize=9)
        left.grid(True, alpha=0.3)
        left.legend(fontsize=7)
        names = res["engines"]
        n_texts = res["corpus_size"] if wide == "corpus" else int(wide.split("x")[0])
        tput = [n_texts / (med(res["times"].get(f"{t}/{wide}", {}).get(e, [])) / 1e3) for e in names]
        colors = ["tab:blue" if e.startswith("octet") else "tab:gray" for e in names]
        right.barh(names, tput, color=colors)
        right.set_xlabel(f"texts/s at {wide} (higher is better)")
        right.set_title("throughput")
        right.invert_yaxis()
        right.tick_params(axis="y", labelsize=7)
        fig.tight_layout()
        path = folder / f"{res['model']}-t{t}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written.append(path)
    return written


# ----------------------------------------------------------------------------------------------- main


def run_model(key, args, ctx):
    """Measures one model; returns its result dict."""
    spec = MODELS[key]
    threads, rounds, seconds, quick = ctx["threads"], ctx["rounds"], ctx["seconds"], args.quick
    import torch
    from sentence_transformers import SentenceTransformer

    cli, timer, server, meter = ctx["cli"], ctx["timer"], ctx["server"], ctx["meter"]
    notes = []
    octet_paths = convert_octet(cli, key, spec, args.reconvert)
    points = spec["points"][:2] if quick else spec["points"]
    corpus = [l.strip() for l in CORPUS.read_text().splitlines() if l.strip()]
    quality_texts = [spec["prompt"] + c for c in (corpus[:64] if quick else corpus)]
    first_recipe = spec["recipes"][0]
    point_texts = {p["point"]: p["texts"] for p in json.loads(subprocess.run(
        [timer, "texts", octet_paths[first_recipe], *points], check=True, capture_output=True, text=True).stdout)["points"]}

    # ONNX Runtime models (cached) and their workers.
    if key == "minilm":
        onnx = ort_models.minilm_models(spec["source"], WORK, quint8=args.ort_quint8)
    else:
        onnx = ort_models.gemma_models(spec["source"], WORK)
    noamx_model = args.noamx_variant if key == "minilm" else "ort-int8"
    tokenizer = FastTokenizer(spec["source"], spec["max_length"])
    st = SentenceTransformer(str(spec["source"]), device="cpu")
    torch.set_num_threads(max(threads))

    llama_cpp, why = ctx["llama"]
    gguf_paths = {}
    if llama_cpp is not None:
        try:
            gguf_paths = convert_gguf(key, spec)
        except Exception as e:  # noqa: BLE001
            why = f"GGUF conversion failed: {e}"
            llama_cpp = None
    if llama_cpp is None:
        notes.append(f"llama.cpp skipped: {why}")
        log(notes[-1])
    if key == "gemma" and gguf_paths:
        notes.append("llama.cpp EmbeddingGemma: GGUF by convert_hf_to_gguf.py --sentence-transformers-dense-modules "
                     "(the two Dense layers run inside llama.cpp after mean pooling); normalized in Python")

    file_bytes = {f"octet-{r}": p.stat().st_size for r, p in octet_paths.items()}
    file_bytes.update({k: p.stat().st_size for k, (p, _) in onnx.items()})
    file_bytes.update({k: v.stat().st_size for k, v in gguf_paths.items()})
    if ctx["noamx_worker"] is not None:
        file_bytes["ort-int8-noamx"] = file_bytes[noamx_model]
    if key == "minilm":
        file_bytes["pytorch-f32"] = (spec["source"] / "model.safetensors").stat().st_size

    res = {"model": key, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "threads": threads,
           "rounds": rounds, "block_seconds": seconds, "points": points, "corpus": spec["corpus"],
           "corpus_size": len(corpus), "quality_texts": len(quality_texts), "times": {}, "other": {}, "load": {},
           "quality": {}, "cold": {}, "rss": {}, "file_bytes": file_bytes, "notes": notes, "cpu": cpu_description(),
           "cpus": meter.cpus, "python": platform.python_version(), "ort_version": ctx["ort_version"],
           "amx": ctx["amx"], "waitidle": ctx["waitidle"], "load_start": loadavg()}
    engines_per_thread = {}
    for t in threads:
        engines = {f"octet-{r}": OctetEngine(server, f"{key}-{r}", octet_paths[r], t) for r in spec["recipes"]}
        for name, (path, output) in onnx.items():
            engines[name] = RemoteOrtEngine(ctx["ort_worker"], f"{key}-{name}", path, spec["source"], t, output,
                                            spec["max_length"])
        if ctx["noamx_worker"] is not None:
            path, output = onnx[noamx_model]
            engines["ort-int8-noamx"] = RemoteOrtEngine(ctx["noamx_worker"], f"{key}-{noamx_model}", path,
                                                        spec["source"], t, output, spec["max_length"])
        if args.ort_in_process:
            path, output = onnx[noamx_model]
            engines[f"{noamx_model}-inproc"] = InProcessOrtEngine(path, tokenizer, t, output)
        if key == "minilm":
            engines["pytorch-f32"] = TorchEngine(st, t)
        engines.update({k: LlamaEngine(llama_cpp, p, t, spec["llama_ctx"]) for k, p in gguf_paths.items()})
        engines_per_thread[t] = engines
    res["engines"] = list(engines_per_thread[threads[0]])
    if ctx["noamx_worker"] is not None:
        notes.append(f"ort-int8-noamx runs the {noamx_model} model in a worker under LD_PRELOAD=noamx.so")

    # Quality first (also warms every engine up).
    log(f"[{key}] quality pass ({len(quality_texts)} texts)")
    reference = TorchEngine(st, max(threads)).embed(quality_texts)
    for name, engine in engines_per_thread[threads[-1]].items():
        res["quality"][name] = cosines(engine.embed(quality_texts), reference)
        log(f"[{key}] quality {name}: mean {res['quality'][name][0]:.5f} min {res['quality'][name][1]:.5f}")
    for t in threads[:-1]:  # warm the other thread counts' engines too
        for engine in engines_per_thread[t].values():
            engine.embed(quality_texts[:8])

    for t in threads:
        for p in points + (["corpus"] if spec["corpus"] else []):
            texts = corpus if p == "corpus" else point_texts[p]
            k = f"{t}/{p}"
            before = loadavg()
            log(f"[{key}] measuring {p} on {t} thread(s), load {before.split()[0]}")
            res["times"][k], res["other"][k] = measure(engines_per_thread[t], texts, rounds, seconds, meter)
            res["load"][k] = [before, loadavg()]
            for e, ms in res["times"][k].items():
                log(f"  {e}: {med(ms):.2f} ms (other CPUs {other_cpus(res['other'][k][e], meter.cpus):.2f})")
            (Path(args.out) / f"{key}.partial.json").write_text(json.dumps(res, indent=1))

    repeats = 1 if quick else 5
    res["cold_other"] = {}  # other CPUs while each cold-start / RSS figure was taken

    def timed(table, label, fn, *a):
        before = meter.snapshot()
        res[table][label] = fn(*a)
        res["cold_other"][label] = other_cpus([meter.ticks(before, meter.snapshot())], meter.cpus)

    for r, path in octet_paths.items():
        timed("cold", f"octet-{r} process start to first vector (spawn to exit, 2 threads)", cold_start_octet, timer,
              path, repeats)
        timed("rss", f"octet-{r} corpus run, 2 threads", corpus_rss, timer, path, 2, spec["prompt"])
    for name, (path, output) in onnx.items():
        if name.startswith("ort-int8") or key == "minilm":
            timed("cold", f"{name} session creation + first run (in a warm Python process, 2 threads)", cold_start_ort,
                  path, tokenizer, 2, output, repeats)
    path, output = onnx[noamx_model]
    timed("rss", f"{noamx_model} worker process (loaded, corpus embedded), 2 threads", ort_rss, ctx["python"],
          noamx_model, path, spec["source"], output, spec["max_length"], quality_texts, 2)
    res["load_end"] = loadavg()
    for engines in engines_per_thread.values():
        for name in [n for n in engines if n.startswith("llama")]:
            engines[name].llm.close()
    del st
    gc.collect()
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default="minilm,gemma", help="comma-separated: minilm, gemma")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--block-seconds", type=float, default=0.4)
    ap.add_argument("--skip-llama", action="store_true")
    ap.add_argument("--llama-kinds", default="q8_0", help="MiniLM GGUF types (f32,f16,q8_0); EmbeddingGemma: q8_0")
    ap.add_argument("--ort-quint8", action="store_true", help="also QUInt8 weights for MiniLM (1.4-2x slower)")
    ap.add_argument("--noamx-variant", default="ort-int8-eager",
                    help="MiniLM ORT int8 model run by the AMX-denied worker (EmbeddingGemma has one)")
    ap.add_argument("--no-noamx", action="store_true", help="skip the AMX-denied ORT line")
    ap.add_argument("--ort-in-process", action="store_true",
                    help="also run that model in the runner's own process (with torch and llama.cpp loaded)")
    ap.add_argument("--waitidle", nargs="?", const=str(WAITIDLE), metavar="SCRIPT",
                    help=f"run SCRIPT (default {WAITIDLE}) first and record its line")
    ap.add_argument("--reconvert", action="store_true")
    ap.add_argument("--quick", action="store_true",
                    help="1 round, short blocks, the first two points, 64 quality sentences (smoke test)")
    ap.add_argument("--out", default=str(WORK))
    ap.add_argument("--replot", metavar="JSON", help="only rewrite the tables and plots from a saved <model>.json")
    args = ap.parse_args()
    if args.replot:
        res = json.loads(Path(args.replot).read_text())
        print(write_report(res, Path(args.replot).with_suffix(".md")))
        for path in plot(res):
            log(f"wrote {path}")
        return
    keys = [k.strip() for k in args.models.split(",") if k.strip()]
    MODELS["minilm"]["llama_kinds"] = [k for k in args.llama_kinds.split(",") if k]
    for k in keys:
        if k not in MODELS:
            sys.exit(f"unknown model '{k}' (have: {', '.join(MODELS)})")
        if not MODELS[k]["source"].is_dir():
            sys.exit(f"no {MODELS[k]['source']}: run scripts/fetch-{'minilm' if k == 'minilm' else 'embeddinggemma'}.sh")
    threads = [int(t) for t in args.threads.split(",")]
    rounds = 1 if args.quick else args.rounds
    seconds = 0.1 if args.quick else args.block_seconds

    waitidle = None
    if args.waitidle:
        done = subprocess.run(["bash", args.waitidle], capture_output=True, text=True)
        said = (done.stdout.strip() or done.stderr.strip() or "(no output)").splitlines()[-1]
        waitidle = said if done.returncode == 0 else f"{said} (exit code {done.returncode}: not quiet)"
        log(f"waitidle: {waitidle}")

    # Every runtime's pool is capped at the largest count; each engine then sets its own.
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(max(threads))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    WORK.mkdir(parents=True, exist_ok=True)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)

    llama = (None, "--skip-llama") if args.skip_llama else load_llama()
    amx_cpu = "amx_int8" in cpu_description()[1].split()
    noamx = not args.no_noamx
    counts = {"minilm": 3 + 6 + int(args.ort_quint8) + int(noamx) + int(args.ort_in_process) + 1
              + (len(MODELS["minilm"]["llama_kinds"]) if llama[0] else 0),
              "gemma": 1 + 1 + int(noamx) + int(args.ort_in_process) + (1 if llama[0] else 0)}
    eta = estimate_seconds([k for k in keys if k in counts], threads, rounds, seconds, counts)
    log(f"plan: models {keys}, threads {threads}, {rounds} round(s) of {seconds} s blocks; "
        f"estimated ~{eta / 60:.0f} min on a quiet machine (exports and conversions cached)")

    cli, timer = build_octet()
    meter = CpuMeter()
    server = OctetServer(timer)
    meter.pids.add(server.pid)
    ort_worker = OrtWorker(sys.executable)
    meter.pids.add(ort_worker.pid)
    noamx_worker = None
    amx = {"plain": ort_worker.hello["amx_permission"]}
    if noamx:
        noamx_worker = OrtWorker(sys.executable, preload=build_noamx())
        meter.pids.add(noamx_worker.pid)
        amx["noamx"] = noamx_worker.hello["amx_permission"]
        if not amx["noamx"].startswith("refused"):
            sys.exit(f"the noamx shim is not active in its worker (arch_prctl answered: {amx['noamx']})")
    log(f"ONNX Runtime {ort_worker.hello['ort']}; AMX permission: {amx}; CPU has amx_int8: {amx_cpu}")
    ctx = {"threads": threads, "rounds": rounds, "seconds": seconds, "cli": cli, "timer": timer, "server": server,
           "meter": meter, "ort_worker": ort_worker, "noamx_worker": noamx_worker, "llama": llama,
           "ort_version": ort_worker.hello["ort"], "amx": amx, "waitidle": waitidle, "python": sys.executable}
    started = time.perf_counter()
    try:
        for key in keys:
            res = run_model(key, args, ctx)
            if not amx_cpu and noamx:
                res["notes"].append("this CPU has no AMX (no amx_int8 flag): ort-int8-noamx runs the same MLAS "
                                    "kernels as the plain ORT line, so the two differ only by noise")
            (out_dir / f"{key}.json").write_text(json.dumps(res, indent=1))
            print(write_report(res, out_dir / f"{key}.md"))
            for path in plot(res, out_dir / "plots" if args.quick else PLOTS):  # a smoke test keeps its plots apart
                log(f"wrote {path}")
    finally:
        server.close()
        ort_worker.close()
        if noamx_worker is not None:
            noamx_worker.close()
    log(f"done in {(time.perf_counter() - started) / 60:.1f} min (estimated {eta / 60:.0f} min)")


if __name__ == "__main__":
    main()
