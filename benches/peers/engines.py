"""The engines the peer runner (run.py) times: octet through `octet-bench-timer serve`, and the
Python-side peers (PyTorch through sentence-transformers, ONNX Runtime in process, llama.cpp through
the llama-cpp-python sdist's binding), with the builds and conversions they need."""

import os
import subprocess
import sys

from ort_worker import OrtEngine, time_calls
from settings import BATCH, LLAMA_LIB, LLAMA_SRC, NOAMX_SRC, REPO, TARGET, WORK, run

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
        self.pid = server.pid  # the process the meter charges this engine's work to
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
        return time_calls(self.embed_batch, texts, calls)

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
