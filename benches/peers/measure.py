"""Measurement for the peer runner (run.py): timed blocks and rounds, the CPUs other processes
used meanwhile, cold start, peak RSS, quality (cosines) and the CPU's description."""

import gc
import json
import os
import statistics
import subprocess
import time
from pathlib import Path

from ort_worker import OrtEngine, OrtWorker, RemoteOrtEngine, normalize
from settings import CORPUS, MODELS, PAUSE_S, WORK

# ---------------------------------------------------------------------------------------- measurement


class CpuMeter:
    """CPUs used by anything but the engine being timed: /proc/stat busy ticks minus the ticks of the timed
    engine's process (the runner itself for the engines it runs in process: PyTorch, llama.cpp). The run's
    other processes count, and so does the runner while an out-of-process engine is timed (it only waits
    on a pipe then): an ORT worker, octet server, OpenMP or ggml pool whose threads still spin after its
    own block takes CPU from the next engine as surely as a stranger does."""

    def __init__(self):
        self.pids = {os.getpid()}
        self.cpus = sum(1 for line in open("/proc/stat") if line[:3] == "cpu" and line[3:4].isdigit()) or 1

    def snapshot(self):
        """(total ticks, busy ticks, {pid: ticks}) for the run's processes."""
        fields = [int(v) for v in open("/proc/stat").readline().split()[1:9]]
        total = sum(fields)
        busy = total - fields[3] - fields[4]
        own = {}
        for pid in self.pids:
            try:
                after = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
                own[pid] = int(after[11]) + int(after[12])
                if pid == os.getpid():  # children it waited for: the cold-start and corpus processes
                    own[pid] += int(after[13]) + int(after[14])
            except (OSError, IndexError, ValueError):
                pass
        return total, busy, own

    ALL = "all"  # `ticks` charges every process of the run to the work being measured

    @staticmethod
    def ticks(a, b, engine_pid=ALL):
        """(other busy ticks, total ticks) between two snapshots: busy ticks less those of `engine_pid`, the
        process of the engine being timed (None: it runs in the runner; ALL: every process of the run, for
        the cold-start and memory figures, which span several)."""
        if engine_pid == CpuMeter.ALL:
            mine = set(b[2])
        else:
            mine = {os.getpid() if engine_pid is None else engine_pid}
        used = sum(b[2].get(p, 0) - a[2].get(p, 0) for p in mine)
        return max(0, (b[1] - a[1]) - used), b[0] - a[0]


def block(engine, texts, seconds):
    """Median ms per call over one block. A call longer than `seconds` (batch 32, the corpus) is the block
    on its own (every engine was warmed up by the quality pass); shorter calls get one more warm-up call,
    then as many calls as fit in `seconds` (at least 2). `time_calls` answers in milliseconds: until
    2026-12-07 this compared them with `seconds` unconverted, so every call over 0.4 ms was its block on its
    own, the first call after the pause, and every batch-1 figure before then was a cold call. Until the
    next stop the count was also capped at 50 calls, so a block of 1 ms calls lasted 50 ms, not the 0.4 s
    the docs said, and mostly measured the vCPUs waking up after the pause."""
    first = engine.time_calls(texts, 1)[0]
    if first >= seconds * 1e3:
        return first
    calls = max(2, int(seconds * 1e3 / max(first, 1e-3)))
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
            other[name].append(meter.ticks(before, meter.snapshot(), getattr(engines[name], "pid", None)))
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


def drop_cached_pages(path):
    """Flushes `path` and asks the kernel to drop its cached pages (no root needed).

    octet maps its model, and what a mapped file adds to RSS depends on how the page cache
    holds it, not on the engine: the same EmbeddingGemma run peaked at 375 MB right after the
    converter wrote the file (large folios: each fault maps a whole one), 260 MB after `cat`
    read it, and 210 MB from a cold cache (kernel 6.18). Measuring from a cold cache counts only
    the pages the engine touches, the same every run."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def corpus_rss(timer, path, threads, prompt):
    """Peak RSS of a fresh `octet-bench-timer corpus` process, the model's pages dropped
    from the page cache first (`drop_cached_pages`)."""
    if prompt:  # the same prompted corpus as the quality pass
        corpus = WORK / "corpus-prompted.txt"
        corpus.write_text("".join(prompt + l.strip() + "\n" for l in CORPUS.read_text().splitlines() if l.strip()))
    else:
        corpus = CORPUS
    drop_cached_pages(path)
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
