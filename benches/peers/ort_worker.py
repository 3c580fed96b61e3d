"""ONNX Runtime engines of the peer runner, each group in a child process of its own.

The runner starts one worker per preload setting: a plain one, and one under `LD_PRELOAD=noamx.so`
(benches/peers/noamx.c: `arch_prctl(ARCH_REQ_XCOMP_PERM)` fails, so MLAS cannot get AMX tiles and uses its
AVX-512 VNNI kernels). A worker imports only onnxruntime, numpy and `tokenizers`, never torch or llama.cpp,
so ORT runs as in a process of its own, as a user runs it; its blocks are still interleaved with the other
engines' in the same rounds. Protocol, one JSON line each way (like `octet-bench-timer serve`):

    {"op":"hello"} -> {"ort":VERSION,"amx_permission":"granted|refused (...)|...","pid":PID}
    {"op":"load","name":N,"model":PATH,"tokenizer":DIR,"threads":T,"output":"hidden|sentence",
     "max_length":L,"spin":true} -> {"load_ms":..}
    {"op":"time","name":N,"texts":[..],"iters":K} -> {"ms":[..]}
    {"op":"embed","name":N,"texts":[..]} -> {"vectors":[[..],..]}
    {"op":"rss"} -> {"peak_rss_bytes":..}      {"op":"quit"}

An error answers {"error":".."} and the loop goes on. `OrtEngine` is also used in the runner's own
process for the cold-start figure (session creation plus first run).
"""

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from timer_client import JsonLinesChild  # noqa: E402

BATCH = 32  # texts per forward pass, as for every engine


def time_calls(embed_batch, texts, calls):
    """Milliseconds of each of `calls` runs of `embed_batch(texts)` (every engine's timing loop)."""
    ms = []
    for _ in range(calls):
        start = time.perf_counter()
        embed_batch(texts)
        ms.append((time.perf_counter() - start) * 1e3)
    return ms


def normalize(x):
    import numpy as np

    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


class FastTokenizer:
    """The model's tokenizer.json through the `tokenizers` library (transformers would import torch into the
    worker): padding to the longest text of a batch, truncation at `max_length`, special tokens as the file
    says. Gives the same ids as transformers' fast tokenizer for MiniLM and EmbeddingGemma."""

    def __init__(self, folder, max_length):
        from tokenizers import Tokenizer

        self.tok = Tokenizer.from_file(os.path.join(str(folder), "tokenizer.json"))
        pad = self.tok.padding
        if pad:
            pad_id, pad_token = pad["pad_id"], pad["pad_token"]
        else:
            pad_token = next((t for t in ("[PAD]", "<pad>") if self.tok.token_to_id(t) is not None), None)
            pad_id = self.tok.token_to_id(pad_token) if pad_token else 0
        self.tok.enable_padding(pad_id=pad_id, pad_token=pad_token or "")
        self.tok.enable_truncation(max_length)

    def __call__(self, texts):
        import numpy as np

        encs = self.tok.encode_batch(list(texts))
        return {"input_ids": np.array([e.ids for e in encs], dtype=np.int64),
                "attention_mask": np.array([e.attention_mask for e in encs], dtype=np.int64),
                "token_type_ids": np.array([e.type_ids for e in encs], dtype=np.int64)}


class OrtEngine:
    """One session: texts sorted by length, batches of 32 padded to the longest, tokenization included.
    "hidden" graphs are mean-pooled and normalized in numpy; "sentence" graphs return finished vectors."""

    def __init__(self, path, tokenizer, threads, output="hidden", spin=True):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        if not spin:
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.tokenizer, self.threads, self.output = tokenizer, threads, output
        self.inputs = {i.name for i in self.session.get_inputs()}

    def embed_batch(self, texts):
        import numpy as np

        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = [None] * len(texts)
        for start in range(0, len(order), BATCH):
            chunk = order[start:start + BATCH]
            enc = self.tokenizer([texts[i] for i in chunk])
            feed = {k: v for k, v in enc.items() if k in self.inputs}
            result = self.session.run(None, feed)[0]
            if self.output == "hidden":
                mask = enc["attention_mask"][..., None].astype(np.float32)
                result = normalize((result * mask).sum(1) / np.maximum(mask.sum(1), 1e-9))
            for i, v in zip(chunk, result):
                out[i] = v
        return np.stack(out)

    def time_calls(self, texts, calls):
        return time_calls(self.embed_batch, texts, calls)


def amx_permission():
    """What the kernel answers to arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) through libc's syscall(),
    the way MLAS asks: shows whether the noamx shim is active (and whether AMX exists at all)."""
    import ctypes
    import errno

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.syscall(ctypes.c_long(158), ctypes.c_long(0x1023), ctypes.c_long(18)) == 0:  # SYS_arch_prctl
        return "granted"
    e = ctypes.get_errno()
    return f"refused ({errno.errorcode.get(e, e)})"


def peak_rss_bytes():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def serve():
    # The protocol owns the real stdout; anything a library prints goes to stderr.
    proto = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    import onnxruntime as ort

    engines, tokenizers = {}, {}
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            req = json.loads(line)
            op = req.get("op")
            if op == "quit":
                break
            if op == "hello":
                answer = {"ort": ort.__version__, "amx_permission": amx_permission(), "pid": os.getpid()}
            elif op == "load":
                which = (req["tokenizer"], req.get("max_length", 256))
                tok = tokenizers.get(which)
                if tok is None:
                    tok = tokenizers[which] = FastTokenizer(*which)
                start = time.perf_counter()
                engines[req["name"]] = OrtEngine(req["model"], tok, req["threads"], req.get("output", "hidden"),
                                                 req.get("spin", True))
                answer = {"load_ms": (time.perf_counter() - start) * 1e3}
            elif op == "time":
                answer = {"ms": engines[req["name"]].time_calls(req["texts"], max(1, int(req.get("iters", 1))))}
            elif op == "embed":
                answer = {"vectors": engines[req["name"]].embed_batch(req["texts"]).tolist()}
            elif op == "rss":
                answer = {"peak_rss_bytes": peak_rss_bytes()}
            else:
                answer = {"error": f"unknown op {op!r}"}
        except Exception as e:  # noqa: BLE001
            answer = {"error": f"{type(e).__name__}: {e}"}
        proto.write(json.dumps(answer) + "\n")
        proto.flush()


class OrtWorker(JsonLinesChild):
    """The runner's side: a worker process, optionally under LD_PRELOAD."""

    def __init__(self, python, preload=None):
        env = dict(os.environ)
        if preload:
            env["LD_PRELOAD"] = str(preload)
        super().__init__([python, os.path.abspath(__file__)], "ORT worker", env)
        self.hello = self.ask({"op": "hello"})


class RemoteOrtEngine:
    """An engine living in an `OrtWorker`; same interface as the runner's other engines."""

    def __init__(self, worker, name, path, tokenizer_dir, threads, output, max_length, spin=True):
        self.worker, self.name = worker, f"{name}/t{threads}"
        self.pid = worker.pid  # the process the meter charges this engine's work to
        worker.ask({"op": "load", "name": self.name, "model": str(path), "tokenizer": str(tokenizer_dir),
                    "threads": threads, "output": output, "max_length": max_length, "spin": spin})

    def time_calls(self, texts, calls):
        return self.worker.ask({"op": "time", "name": self.name, "texts": texts, "iters": calls})["ms"]

    def embed(self, texts):
        return self.worker.ask({"op": "embed", "name": self.name, "texts": texts})["vectors"]


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    serve()
