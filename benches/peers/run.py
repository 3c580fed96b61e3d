#!/usr/bin/env python3
"""Peer runner: octet f32 / int8-embeddings / int8 side by side with ONNX Runtime, PyTorch and llama.cpp.

Every engine embeds the same texts on the same machine in the same run, with the same thread count:

- octet, in process, through `octet-bench-timer serve` (benches/timer.rs), one child process that keeps
  its models loaded and answers JSON requests;
- ONNX Runtime f32 (torch.onnx.export of the sentence-transformers model, then ORT's BERT graph
  optimizer), and ONNX Runtime int8 by `onnxruntime.quantization.quantize_dynamic` per channel,
  QInt8 and QUInt8 weights (the faster one counts as "the" ORT int8);
- PyTorch f32 through sentence-transformers (also the quality reference);
- llama.cpp f32 / f16 / Q8_0 GGUF, built by benches/peers/setup.sh from the sources vendored in the
  llama-cpp-python sdist, called through that sdist's ctypes binding (skipped, with the reason printed,
  when the build is missing).

Points: batch 1 at 16, 128 and 256 tokens, batch 32 at 128 tokens (texts of exactly that many tokens,
special tokens included, from `octet-bench-timer texts`, the same texts as the criterion bench), and the
fixed corpus tools/data/lee-sentences.txt (400 sentences, batches of 32 sorted by length). For each point
and thread count the engines run in rounds: in each round every engine runs one block (one warm-up call,
then calls until about --block-seconds have passed, at least 2; a call longer than that is a block on
its own), engine after engine, with a short pause
between blocks so that no engine's spinning worker threads eat into the next one's time. A block gives
the median per-call time; an engine's figure is the median over rounds, and a speed ratio octet/peer is
the median over rounds of (peer time / octet time) within the same round.

Also: quality of every variant (mean and min cosine against fp32 sentence-transformers on the corpus),
cold start (octet: a fresh `octet-bench-timer cold` process, spawn to exit; ORT: session creation plus
the first run, inside this already warm Python process), peak RSS of an octet corpus run, file sizes.
Writes <out>/minilm.json, <out>/minilm.md (tables for benches/RESULTS.md) and PNG plots in
benches/plots/ (--replot JSON redoes the tables and plots from a saved run). Not part of CI (needs the ~6 GB torch venv): see benches/peers/setup.sh.

Usage: .venv-ref/bin/python benches/peers/run.py [--threads 1,2] [--rounds 3] [--skip-llama] [--quick]
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

REPO = Path(__file__).resolve().parents[2]
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target" / "bench"))
WORK = REPO / "target" / "bench-peers"
LLAMA_ROOT = REPO / "target" / "bench-llama"
LLAMA_SRC = LLAMA_ROOT / "llama_cpp_python-0.3.36"
LLAMA_LIB = LLAMA_ROOT / "build" / "bin"
CORPUS = REPO / "tools" / "data" / "lee-sentences.txt"
PLOTS = REPO / "benches" / "plots"
SOURCE = Path.home() / ".cache" / "octet" / "sources" / "all-MiniLM-L6-v2"
RECIPES = ["f32", "int8-embeddings", "int8"]
POINTS = ["1x16", "1x128", "1x256", "32x128"]
BATCH = 32  # texts per forward pass on the corpus, for every engine (octet's default)
PAUSE_S = 0.05  # between blocks: lets the previous engine's worker threads stop spinning


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def run(cmd, **kw):
    log("$", " ".join(str(c) for c in cmd))
    return subprocess.run(cmd, check=True, **kw)


# ---------------------------------------------------------------------------------------------- octet


def build_octet():
    env = dict(os.environ, CARGO_TARGET_DIR=str(TARGET))
    run(["cargo", "build", "--release", "-p", "octet-tools", "--bin", "octet",
         "-p", "octet-benches", "--bin", "octet-bench-timer"], cwd=REPO, env=env)
    return TARGET / "release" / "octet", TARGET / "release" / "octet-bench-timer"


def convert_octet(cli, reconvert):
    paths = {}
    for recipe in RECIPES:
        out = WORK / f"minilm-{recipe}.octet"
        if reconvert or not out.exists():
            run([cli, "convert", SOURCE, "-o", out, "--quant", recipe], stdout=subprocess.DEVNULL)
        paths[recipe] = out
    return paths


class OctetServer:
    """`octet-bench-timer serve` in a child process."""

    def __init__(self, timer):
        self.proc = subprocess.Popen([timer, "serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def ask(self, request):
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        answer = json.loads(self.proc.stdout.readline())
        if "error" in answer:
            raise RuntimeError(f"octet-bench-timer: {answer['error']}")
        return answer

    def close(self):
        self.proc.stdin.write('{"op":"quit"}\n')
        self.proc.stdin.flush()
        self.proc.wait()


class OctetEngine:
    def __init__(self, server, name, path, threads):
        self.server, self.name = server, f"{name}/t{threads}"
        server.ask({"op": "load", "name": self.name, "model": str(path), "threads": threads})

    def time_calls(self, texts, calls):
        return self.server.ask({"op": "time", "name": self.name, "texts": texts, "iters": calls})["ms"]

    def embed(self, texts):
        return self.server.ask({"op": "embed", "name": self.name, "texts": texts})["vectors"]


# ------------------------------------------------------------------------------------------- the peers


def normalize(x):
    import numpy as np

    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


class PyEngine:
    """A Python-side engine: `embed_batch(texts) -> np.ndarray` of normalized vectors."""

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


class OrtEngine(PyEngine):
    def __init__(self, path, tokenizer, threads):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.tokenizer, self.threads = tokenizer, threads
        self.inputs = {i.name for i in self.session.get_inputs()}

    def embed_batch(self, texts):
        import numpy as np

        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = [None] * len(texts)
        for start in range(0, len(order), BATCH):
            chunk = order[start:start + BATCH]
            enc = self.tokenizer([texts[i] for i in chunk], padding=True, truncation=True, max_length=256,
                                 return_tensors="np")
            feed = {k: v.astype(np.int64) for k, v in enc.items() if k in self.inputs}
            hidden = self.session.run(None, feed)[0]
            mask = enc["attention_mask"][..., None].astype(np.float32)
            pooled = normalize((hidden * mask).sum(1) / np.maximum(mask.sum(1), 1e-9))
            for i, v in zip(chunk, pooled):
                out[i] = v
        return np.stack(out)


class LlamaEngine(PyEngine):
    """The sdist's `Llama.embed`, which packs whole sequences into decodes of up to n_batch tokens. The
    context is the model's own 512 tokens, with flash attention: a 4096-token context (all of batch 32 x 128
    in one decode) made every sequence attend over the whole unified KV cache, masked (~50 s per call
    here); 512 without flash attention took 4.5 s, with it 1.3-1.6 s (2 threads)."""

    def __init__(self, llama_cpp, path, threads):
        self.llm = llama_cpp.Llama(model_path=str(path), embedding=True, n_threads=threads, n_threads_batch=threads,
                                   n_ctx=512, n_batch=512, n_ubatch=512, verbose=False, flash_attn=True,
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


def export_onnx(st_model, tokenizer, optimizer):
    """f32 ONNX (the plain export; with `optimizer`, ORT's offline BERT fusions) and quantize_dynamic int8
    variants of it. ORT's session applies its own graph optimizations (level ALL) either way."""
    import onnx
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic

    raw = WORK / "minilm-f32-raw.onnx"
    f32 = WORK / "minilm-f32.onnx"
    if not raw.exists():
        bert = st_model[0].auto_model.eval()
        enc = tokenizer(["a short example", "and a second, longer example text"], padding=True, return_tensors="pt")
        args = (enc["input_ids"], enc["attention_mask"], enc["token_type_ids"])
        names = ["input_ids", "attention_mask", "token_type_ids"]
        axes = {n: {0: "batch", 1: "sequence"} for n in names}
        axes["last_hidden_state"] = {0: "batch", 1: "sequence"}

        class Wrapper(torch.nn.Module):
            def __init__(self, m):
                super().__init__()
                self.m = m

            def forward(self, input_ids, attention_mask, token_type_ids):
                return self.m(input_ids=input_ids, attention_mask=attention_mask,
                              token_type_ids=token_type_ids).last_hidden_state

        with torch.no_grad():
            torch.onnx.export(Wrapper(bert), args, str(raw), input_names=names, output_names=["last_hidden_state"],
                              dynamic_axes=axes, opset_version=17, dynamo=False)
    notes = []
    if not f32.exists():
        if optimizer:
            from onnxruntime.transformers.optimizer import optimize_model

            cfg = st_model[0].auto_model.config
            opt = optimize_model(str(raw), model_type="bert", num_heads=cfg.num_attention_heads,
                                 hidden_size=cfg.hidden_size, opt_level=1)
            opt.save_model_to_file(str(f32))
        else:
            f32.write_bytes(raw.read_bytes())
    if optimizer:
        notes.append("ONNX models passed through onnxruntime.transformers.optimizer (BERT fusions) before quantization")
    variants = {"ort-f32": f32}
    for name, weight_type in (("ort-int8-qint8", QuantType.QInt8), ("ort-int8-quint8", QuantType.QUInt8)):
        out = WORK / f"minilm-{name}.onnx"
        if not out.exists():
            # DefaultTensorType: the fused com.microsoft ops of the optimized graph defeat shape inference.
            quantize_dynamic(str(f32), str(out), per_channel=True, weight_type=weight_type,
                             extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
        variants[name] = out
    return variants, notes


def convert_gguf():
    """f32 / f16 / Q8_0 GGUF with the sdist's convert_hf_to_gguf.py."""
    out = {}
    for kind in ("f32", "f16", "q8_0"):
        path = WORK / f"minilm-{kind}.gguf"
        if not path.exists():
            run([sys.executable, LLAMA_SRC / "vendor" / "llama.cpp" / "convert_hf_to_gguf.py", SOURCE,
                 "--outtype", kind, "--outfile", path], stdout=subprocess.DEVNULL)
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


# ---------------------------------------------------------------------------------------- measurement


def block(engine, texts, seconds):
    """Median ms per call over one block. A call longer than `seconds` (batch 32, the corpus) is the block
    on its own (every engine was warmed up by the quality pass); shorter calls get one more warm-up call,
    then as many calls as fit in `seconds` (at least 2, at most 50)."""
    first = engine.time_calls(texts, 1)[0]
    if first >= seconds:
        return first
    calls = max(2, min(50, int(seconds * 1e3 / max(first, 1e-3))))
    return statistics.median(engine.time_calls(texts, calls))


def measure(engines, texts, rounds, seconds):
    """{engine: [median ms per round]}, engines interleaved round by round."""
    times = {name: [] for name in engines}
    for r in range(rounds):
        names = list(engines) if r % 2 == 0 else list(reversed(engines))  # no engine always goes first
        for name in names:
            time.sleep(PAUSE_S)
            times[name].append(block(engines[name], texts, seconds))
    return times


def cold_start_octet(timer, path, repeats=5):
    text = "The quick brown fox jumps over the lazy dog."
    walls = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([timer, "cold", str(path), "0", text], check=True, stdout=subprocess.DEVNULL)
        walls.append((time.perf_counter() - start) * 1e3)
    return statistics.median(walls)


def cold_start_ort(path, tokenizer, threads, repeats=5):
    """Session creation + first run (tokenizer already loaded, Python and ORT already imported)."""
    walls = []
    for _ in range(repeats):
        gc.collect()
        start = time.perf_counter()
        OrtEngine(path, tokenizer, threads).embed_batch(["The quick brown fox jumps over the lazy dog."])
        walls.append((time.perf_counter() - start) * 1e3)
    return statistics.median(walls)


def corpus_rss(timer, path, threads):
    out = subprocess.run([timer, "corpus", str(path), str(threads), str(CORPUS), "1"], check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out)


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
    keep = ["avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx_vnni", "amx_int8", "avx512_bf16"]
    return model, " ".join(f if f in flags else f"-{f}" for f in keep)


# ------------------------------------------------------------------------------------------- reporting


def med(xs):
    return statistics.median(xs) if xs else float("nan")


def speed_ratio(times, fast, slow):
    """Median over rounds of slow-time / fast-time (> 1: `fast` is faster)."""
    return med([s / f for f, s in zip(times[fast], times[slow])])


INT8_PEERS = ("ort-int8-qint8", "ort-int8-quint8", "llama-q8_0")


def vs_fastest_peer_int8(times, octet="octet-int8"):
    """Median over rounds of (fastest int8 peer's time in that round / octet's time), and that peer's name."""
    peers = [p for p in INT8_PEERS if times.get(p)]
    if not peers or not times.get(octet):
        return None, None
    ratios, winners = [], []
    for r, o in enumerate(times[octet]):
        best = min(peers, key=lambda p: times[p][r])
        ratios.append(times[best][r] / o)
        winners.append(best)
    return med(ratios), max(set(winners), key=winners.count)


def targets(res):
    """The issue's targets with the measured figures."""
    rows = []

    def row(target, measured, ok):
        verdict = "not measured" if measured == "n/a" else ("met" if ok else "**missed**")
        rows.append(f"| {target} | {measured} | {verdict} |")

    def ratio_cells(fast, slow, point):
        out = {}
        for t in res["threads"]:
            times = res["times"].get(f"{t}/{point}", {})
            if times.get(fast) and times.get(slow):
                out[t] = speed_ratio(times, fast, slow)
        return out

    def fmt(cells):
        return ", ".join(f"{v:.2f}x ({t}T)" for t, v in cells.items()) or "n/a"

    for point, goal in (("32x128", 2.5), ("1x128", 1.8)):
        c = ratio_cells("octet-int8", "octet-f32", point)
        row(f"octet int8 >= {goal}x octet f32 at b{point}", fmt(c), bool(c) and min(c.values()) >= goal)
    for point in res["points"] + ["corpus"]:
        goal = {"32x128": 2.0, "1x16": 3.0}.get(point, 1.5)
        cells, names = {}, set()
        for t in res["threads"]:
            v, who = vs_fastest_peer_int8(res["times"].get(f"{t}/{point}", {}))
            if v is not None:
                cells[t] = v
                names.add(who)
        row(f"octet int8 >= {goal}x the fastest peer int8 at {point} ({', '.join(sorted(names))})", fmt(cells),
            bool(cells) and min(cells.values()) >= goal)
    cells = {}
    for point in res["points"] + ["corpus"]:
        for t, v in ratio_cells("octet-f32", "ort-f32", point).items():
            cells[f"{point}/{t}T"] = v
    worst = min(cells.items(), key=lambda kv: kv[1]) if cells else None
    row("octet f32 >= ORT f32 everywhere",
        f"{sum(v >= 1 for v in cells.values())} of {len(cells)} points; worst {worst[1]:.2f}x at {worst[0]}" if worst else "n/a",
        bool(cells) and min(cells.values()) >= 1.0)
    cold = res["cold"].get("octet-int8 process start to first vector (spawn to exit, 2 threads)")
    ort_cold = {k.split(" ")[0]: v for k, v in res["cold"].items() if k.startswith("ort-int8")}
    if cold is not None:
        row("cold start MiniLM int8 <= 50 ms", f"{cold:.1f} ms", cold <= 50)
    if cold is not None and ort_cold:
        best = min(ort_cold, key=ort_cold.get)
        row("cold start >= 5x faster than ORT session creation + first run",
            f"{ort_cold[best] / cold:.2f}x ({best}: {ort_cold[best]:.1f} ms)", ort_cold[best] / cold >= 5)
    rss = res["rss"].get("octet-int8 corpus run, 2 threads")
    if rss:
        extra = (rss["peak_rss_bytes"] - rss["file_bytes"]) / 1e6
        row("peak RSS, MiniLM int8 corpus run <= file size + 40 MB",
            f"{rss['peak_rss_bytes'] / 1e6:.1f} MB = file {rss['file_bytes'] / 1e6:.1f} MB + {extra:.1f} MB", extra <= 40)
    q = res["quality"]
    if "octet-int8" in q:
        peers = {p: q[p][0] for p in INT8_PEERS if p in q}
        row("octet int8 mean cosine >= ORT int8's and llama.cpp Q8_0's",
            f"octet {q['octet-int8'][0]:.5f}; " + ", ".join(f"{p} {v:.5f}" for p, v in peers.items()),
            all(q["octet-int8"][0] >= v for v in peers.values()))
    head = ["### Targets", "", "| target | measured | verdict |", "|---|---|---|"]
    return "\n".join(head + rows) + "\n"


def write_report(res, out_md):
    lines = []
    add = lines.append
    engines = res["engines"]
    for t in res["threads"]:
        add(f"### MiniLM, {t} thread{'s' if t > 1 else ''}: ms per call (median of {res['rounds']} interleaved rounds)")
        add("")
        cols = POINTS + ["corpus"]
        add("| engine | " + " | ".join(c if c != "corpus" else "corpus texts/s" for c in cols) + " |")
        add("|---|" + "---:|" * len(cols))
        for e in engines:
            cells = []
            for p in cols:
                ms = res["times"].get(f"{t}/{p}", {}).get(e)
                if not ms:
                    cells.append("n/a")
                elif p == "corpus":
                    cells.append(f"{res['corpus_size'] / (med(ms) / 1e3):.0f}")
                else:
                    cells.append(f"{med(ms):.2f}")
            add(f"| {e} | " + " | ".join(cells) + " |")
        add("")
        add(f"Speed ratios, {t} thread{'s' if t > 1 else ''} (peer time / octet time, median over rounds; > 1: octet faster)")
        add("")
        pairs = [(o, p) for o in ("octet-int8", "octet-f32") for p in engines if not p.startswith("octet")]
        pairs += [("octet-int8", "octet-f32"), ("octet-int8", "octet-int8-embeddings")]
        add("| octet vs peer | " + " | ".join(cols) + " |")
        add("|---|" + "---:|" * len(cols))
        for o, p in pairs:
            cells = []
            for c in cols:
                times = res["times"].get(f"{t}/{c}", {})
                cells.append(f"{speed_ratio(times, o, p):.2f}x" if times.get(o) and times.get(p) else "n/a")
            add(f"| {o} vs {p} | " + " | ".join(cells) + " |")
        cells = []
        for c in cols:
            v, who = vs_fastest_peer_int8(res["times"].get(f"{t}/{c}", {}))
            cells.append(f"{v:.2f}x ({who})" if v is not None else "n/a")
        add("| octet-int8 vs the fastest peer int8 (per round) | " + " | ".join(cells) + " |")
        add("")
    add(targets(res))
    add("### Quality on the corpus (cosine vs fp32 sentence-transformers, 400 sentences)")
    add("")
    add("| engine | mean cosine | min cosine | file MB |")
    add("|---|---:|---:|---:|")
    for e in engines:
        q = res["quality"].get(e)
        size = res["file_bytes"].get(e)
        add(f"| {e} | {q[0]:.5f} | {q[1]:.5f} | {size / 1e6:.1f} |" if q else f"| {e} | n/a | n/a | n/a |")
    add("")
    add("### Cold start and memory")
    add("")
    for k, v in res["cold"].items():
        add(f"- {k}: {v:.1f} ms")
    for k, v in res["rss"].items():
        add(f"- {k}: peak RSS {v['peak_rss_bytes'] / 1e6:.1f} MB for a {v['file_bytes'] / 1e6:.1f} MB file "
            f"(RSS - file = {(v['peak_rss_bytes'] - v['file_bytes']) / 1e6:.1f} MB), corpus {v['texts_per_s']:.0f} texts/s")
    add("")
    for n in res["notes"]:
        add(f"Note: {n}")
    out_md.write_text("\n".join(lines) + "\n")
    return "\n".join(lines)


def plot(res):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    PLOTS.mkdir(parents=True, exist_ok=True)
    lengths = [16, 128, 256]
    written = []
    for t in res["threads"]:
        fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
        for e in res["engines"]:
            ys = [med(res["times"].get(f"{t}/1x{n}", {}).get(e, [])) for n in lengths]
            style = "-" if e.startswith("octet") else "--"
            left.plot(lengths, ys, style, marker="o", label=e)
        left.set_xlabel("tokens (batch 1)")
        left.set_ylabel("ms per call (log)")
        left.set_yscale("log")
        left.set_title(f"MiniLM latency vs sequence length, {t} thread(s)")
        left.grid(True, alpha=0.3)
        left.legend(fontsize=7)
        names = res["engines"]
        tput = [res["corpus_size"] / (med(res["times"].get(f"{t}/corpus", {}).get(e, [])) / 1e3) for e in names]
        colors = ["tab:blue" if e.startswith("octet") else "tab:gray" for e in names]
        right.barh(names, tput, color=colors)
        right.set_xlabel("texts/s on the 400-sentence corpus (higher is better)")
        right.set_title("corpus throughput")
        right.invert_yaxis()
        right.tick_params(axis="y", labelsize=7)
        fig.tight_layout()
        path = PLOTS / f"minilm-t{t}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written.append(path)
    return written


# ----------------------------------------------------------------------------------------------- main


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--block-seconds", type=float, default=0.4)
    ap.add_argument("--skip-llama", action="store_true")
    ap.add_argument("--llama-kinds", default="f32,f16,q8_0")
    ap.add_argument("--ort-optimizer", action="store_true",
                    help="run onnxruntime.transformers.optimizer on the export first (delete target/bench-peers/*.onnx)")
    ap.add_argument("--reconvert", action="store_true")
    ap.add_argument("--quick", action="store_true", help="1 round, short blocks, 1x16 and 1x128 only (smoke test)")
    ap.add_argument("--out", default=str(WORK))
    ap.add_argument("--replot", metavar="JSON", help="only rewrite the tables and plots from a saved minilm.json")
    args = ap.parse_args()
    if args.replot:
        res = json.loads(Path(args.replot).read_text())
        print(write_report(res, Path(args.replot).with_suffix(".md")))
        for path in plot(res):
            log(f"wrote {path}")
        return
    threads = [int(t) for t in args.threads.split(",")]
    points = ["1x16", "1x128"] if args.quick else POINTS
    rounds = 1 if args.quick else args.rounds
    seconds = 0.1 if args.quick else args.block_seconds
    # Every runtime's pool is capped at the largest count; each engine then sets its own.
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(max(threads))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    WORK.mkdir(parents=True, exist_ok=True)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)

    import numpy as np  # noqa: F401
    import torch
    from sentence_transformers import SentenceTransformer
    from transformers import AutoTokenizer

    cli, timer = build_octet()
    octet_paths = convert_octet(cli, args.reconvert)
    notes = []
    corpus = [l.strip() for l in CORPUS.read_text().splitlines() if l.strip()]
    point_texts = {p["point"]: p["texts"] for p in json.loads(subprocess.run(
        [timer, "texts", octet_paths["f32"], *points], check=True, capture_output=True, text=True).stdout)["points"]}

    torch.set_num_threads(max(threads))
    st = SentenceTransformer(str(SOURCE), device="cpu")
    tokenizer = AutoTokenizer.from_pretrained(str(SOURCE))
    onnx_paths, onnx_notes = export_onnx(st, tokenizer, args.ort_optimizer)
    notes += onnx_notes
    llama_cpp, why = (None, "--skip-llama") if args.skip_llama else load_llama()
    gguf_paths = {}
    if llama_cpp is not None:
        try:
            gguf_paths = {k: v for k, v in convert_gguf().items() if k.split("-", 1)[1] in args.llama_kinds.split(",")}
        except Exception as e:  # noqa: BLE001
            why = f"GGUF conversion failed: {e}"
            llama_cpp = None
    if llama_cpp is None:
        notes.append(f"llama.cpp skipped: {why}")
        log(notes[-1])

    file_bytes = {f"octet-{r}": p.stat().st_size for r, p in octet_paths.items()}
    file_bytes.update({k: v.stat().st_size for k, v in onnx_paths.items()})
    file_bytes.update({k: v.stat().st_size for k, v in gguf_paths.items()})
    file_bytes["pytorch-f32"] = (SOURCE / "model.safetensors").stat().st_size

    server = OctetServer(timer)
    res = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "threads": threads, "rounds": rounds,
           "points": points, "corpus_size": len(corpus), "times": {}, "quality": {}, "cold": {}, "rss": {},
           "file_bytes": file_bytes, "notes": notes, "cpu": cpu_description(), "python": platform.python_version(),
           "uptime_start": open("/proc/loadavg").read().strip()}
    engines_per_thread = {}
    for t in threads:
        engines = {f"octet-{r}": OctetEngine(server, r, octet_paths[r], t) for r in RECIPES}
        engines.update({k: OrtEngine(p, tokenizer, t) for k, p in onnx_paths.items()})
        engines["pytorch-f32"] = TorchEngine(st, t)
        engines.update({k: LlamaEngine(llama_cpp, p, t) for k, p in gguf_paths.items()})
        engines_per_thread[t] = engines
    res["engines"] = list(engines_per_thread[threads[0]])

    # Quality first (also warms every engine up).
    reference = engines_per_thread[threads[-1]]["pytorch-f32"].embed(corpus)
    for name, engine in engines_per_thread[threads[-1]].items():
        res["quality"][name] = cosines(engine.embed(corpus), reference)
        log(f"quality {name}: mean {res['quality'][name][0]:.5f} min {res['quality'][name][1]:.5f}")

    for t in threads:
        for p in points + ["corpus"]:
            texts = corpus if p == "corpus" else point_texts[p]
            log(f"measuring {p} on {t} thread(s), load {open('/proc/loadavg').read().split()[0]}")
            res["times"][f"{t}/{p}"] = measure(engines_per_thread[t], texts, rounds, seconds)
            for e, ms in res["times"][f"{t}/{p}"].items():
                log(f"  {e}: {med(ms):.2f} ms")
            (out_dir / "minilm.partial.json").write_text(json.dumps(res, indent=1))

    for r, path in octet_paths.items():
        res["cold"][f"octet-{r} process start to first vector (spawn to exit, 2 threads)"] = cold_start_octet(timer, path)
        res["rss"][f"octet-{r} corpus run, 2 threads"] = corpus_rss(timer, path, 2)
    for k in ("ort-f32", "ort-int8-qint8", "ort-int8-quint8"):
        res["cold"][f"{k} session creation + first run (in a warm Python process, 2 threads)"] = \
            cold_start_ort(onnx_paths[k], tokenizer, 2)
    server.close()
    res["uptime_end"] = open("/proc/loadavg").read().strip()

    (out_dir / "minilm.json").write_text(json.dumps(res, indent=1))
    text = write_report(res, out_dir / "minilm.md")
    print(text)
    for path in plot(res):
        log(f"wrote {path}")


if __name__ == "__main__":
    main()
