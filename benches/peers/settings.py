"""The peer runner's (run.py) paths, models and small helpers, shared by its modules: engines.py
(octet and the peers), measure.py (blocks, CPU accounting, cold start, RSS, quality) and report.py
(tables and plots); python.py takes its paths and helpers from here too."""

import os
import subprocess
import sys
from pathlib import Path

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
PAUSE_S = 0.3  # between blocks: lets the previous engine's worker threads (ORT, OpenMP, ggml, rayon) stop spinning
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


def wait_idle(script):
    """Runs the wait-for-a-quiet-machine `script` (--waitidle) and returns its last line, marked
    "not quiet" when it failed."""
    done = subprocess.run(["bash", script], capture_output=True, text=True)
    said = (done.stdout.strip() or done.stderr.strip() or "(no output)").splitlines()[-1]
    waitidle = said if done.returncode == 0 else f"{said} (exit code {done.returncode}: not quiet)"
    log(f"waitidle: {waitidle}")
    return waitidle
