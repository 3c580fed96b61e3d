"""ONNX Runtime engines of the peer runner, each group in a child process of its own.

The runner starts one worker per preload setting: a plain one, and one under `LD_PRELOAD=noamx.so`
(benches/peers/noamx.c: `arch_prctl(ARCH_REQ_XCOMP_PERM)` fails, so MLAS cannot get AMX tiles and uses its
AVX-512 VNNI kernels). A worker imports only onnxruntime, numpy and the tokenizers, never torch or llama.cpp,
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
import subprocess
import sys
import time

BATCH = 32  # texts per forward pass, as for every engine


def normalize(x):
    import numpy as np

    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


class OrtEngine:
    """One session: texts sorted by length, batches of 32 padded to the longest, tokenization included.
    "hidden" graphs are mean-pooled and normalized in numpy; "sentence" graphs return finished vectors."""

    def __init__(self, path, tokenizer, threads, output="hidden", max_length=256, spin=True):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        if not spin:
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.tokenizer, self.threads, self.output, self.max_length = tokenizer, threads, output, max_length
        self.inputs = {i.name for i in self.session.get_inputs()}

    def embed_batch(self, texts):
        import numpy as np

        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = [None] * len(texts)
        for start in range(0, len(order), BATCH):
            chunk = order[start:start + BATCH]
            enc = self.tokenizer([texts[i] for i in chunk], padding=True, truncation=True,
                                 max_length=self.max_length, return_tensors="np")
            feed = {k: v.astype(np.int64) for k, v in enc.items() if k in self.inputs}
            result = self.session.run(None, feed)[0]
            if self.output == "hidden":
                mask = enc["attention_mask"][..., None].astype(np.float32)
                result = normalize((result * mask).sum(1) / np.maximum(mask.sum(1), 1e-9))
            for i, v in zip(chunk, result):
                out[i] = v
        return np.stack(out)

    def time_calls(self, texts, calls):
        ms = []
        for _ in range(calls):
            start = time.perf_counter()
            self.embed_batch(texts)
            ms.append((time.perf_counter() - start) * 1e3)
        return ms


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
    from transformers import AutoTokenizer

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
                tok = tokenizers.get(req["tokenizer"])
                if tok is None:
                    tok = tokenizers[req["tokenizer"]] = AutoTokenizer.from_pretrained(req["tokenizer"])
                start = time.perf_counter()
                engines[req["name"]] = OrtEngine(req["model"], tok, req["threads"], req.get("output", "hidden"),
                                                 req.get("max_length", 256), req.get("spin", True))
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


class OrtWorker:
    """The runner's side: a worker process, optionally under LD_PRELOAD."""

    def __init__(self, python, preload=None):
        env = dict(os.environ)
        if preload:
            env["LD_PRELOAD"] = str(preload)
        self.proc = subprocess.Popen([python, os.path.abspath(__file__)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, env=env)
        self.hello = self.ask({"op": "hello"})

    @property
    def pid(self):
        return self.proc.pid

    def ask(self, request):
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"ORT worker {self.proc.pid} exited (code {self.proc.poll()})")
        answer = json.loads(line)
        if "error" in answer:
            raise RuntimeError(f"ORT worker: {answer['error']}")
        return answer

    def close(self):
        try:
            self.proc.stdin.write('{"op":"quit"}\n')
            self.proc.stdin.flush()
        except OSError:
            pass
        self.proc.wait()


class RemoteOrtEngine:
    """An engine living in an `OrtWorker`; same interface as the runner's other engines."""

    def __init__(self, worker, name, path, tokenizer_dir, threads, output, max_length, spin=True):
        self.worker, self.name = worker, f"{name}/t{threads}"
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
