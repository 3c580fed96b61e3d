#!/usr/bin/env python3
"""Python-side benchmark (issue 14): octet's Python package against fastembed and
sentence-transformers, in one Python process, same texts and thread count for every engine.

Engines, all on all-MiniLM-L6-v2:
- `octet-py`: `octet.Embedder(minilm-int8.octet, threads=T).encode(texts, batch_size=32)`, the
  wheel built with `maturin build --release` from this tree and installed into this venv;
- `octet-rust`: the Rust API on the same file and texts (`Embedder::embed_with`, batch 32), timed in
  process by `octet-bench-timer serve` (benches/timer.rs), a child process: the reference for
  "Python within 5% of Rust";
- `fastembed`: fastembed 0.9 `TextEmbedding` on the local ONNX int8 MiniLM that benches/peers/run.py
  uses (`ort_models.minilm_models`, cached under target/bench-peers/; `--fastembed-onnx` picks the
  variant, default ort-int8-qint8), registered with `add_custom_model` (mean pooling, normalized) and
  loaded from a local folder (`specific_model_path`): nothing is downloaded;
- `st-fp32`: sentence-transformers `encode(batch_size=32)`, PyTorch fp32 (`torch.set_num_threads(T)`),
  also the quality reference.

Points: the 400-sentence corpus (tools/data/lee-sentences.txt), and 1,000 texts of exactly 128
tokens (`octet-bench-timer texts MODEL 1000x128`), each as one call per pass at batch 32. In each of
--rounds rounds every engine does one warm pass per point, in rotating order; an engine's figure
is its median texts/s over rounds. Quality: mean and min cosine of each engine's corpus vectors
against st-fp32; and the largest difference between octet-py's and octet-rust's vectors.
Ratios printed: octet-py / octet-rust (target >= 0.95), octet-py / fastembed (>= 1.5),
octet-py / st-fp32 (>= 3).

Needs the reference venv with torch, sentence-transformers and onnxruntime (benches/peers/setup.sh);
the octet wheel and fastembed 0.9 go into target/bench-peers/python-overlay/ (first on sys.path), so that
venv is not changed. Writes target/bench-peers/python.json.
Run it on a quiet machine:

    .venv-ref/bin/python benches/peers/python.py --threads 2 --rounds 5 --waitidle
    .venv-ref/bin/python benches/peers/python.py --quick      # smoke test: tiny sizes, 1 round
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from settings import BATCH, CORPUS, REPO, SOURCES, TARGET, WAITIDLE, WORK, log, wait_idle  # noqa: E402
from timer_client import OctetServer  # noqa: E402

MINILM = SOURCES / "all-MiniLM-L6-v2"
FASTEMBED = "fastembed>=0.9,<0.10"


def run(cmd, **kw):
    log("$ " + " ".join(str(c) for c in cmd))
    return subprocess.run([str(c) for c in cmd], check=True, **kw)


OVERLAY = WORK / "python-overlay"  # octet's wheel and fastembed, beside (not in) the reference venv
FASTEMBED_DEPS = ("loguru>=0.7.2,<0.8", "mmh3>=4.1.0,<6", "py-rust-stemmers>=0.1.0,<0.2")


def pip_install(*specs):
    """Installs into OVERLAY (put first on sys.path), so the reference venv itself is never changed."""
    run([sys.executable, "-m", "pip", "install", "--quiet", "--no-input", "--disable-pip-version-check",
         "--no-deps", "--upgrade", "--target", OVERLAY, *specs], stdin=subprocess.DEVNULL)


def build(skip, bin_dir):
    """Release binaries (octet, octet-bench-timer) and the release wheel, installed into OVERLAY with
    fastembed 0.9 (its other dependencies, numpy, onnxruntime, tokenizers, are the venv's)."""
    env = dict(os.environ, CARGO_TARGET_DIR=str(TARGET))
    bin_dir = Path(bin_dir) if bin_dir else TARGET / "release"
    cli, timer = bin_dir / "octet", bin_dir / "octet-bench-timer"
    sys.path.insert(0, str(OVERLAY))
    if skip:
        return cli, timer
    run(["cargo", "build", "--release", "-p", "octet-tools", "--bin", "octet", "-p", "octet-benches", "--bin",
         "octet-bench-timer"], cwd=REPO, env=env)
    maturin = WORK / "maturin-venv" / "bin" / "maturin"
    if not maturin.exists():
        run([sys.executable, "-m", "venv", WORK / "maturin-venv"])
        run([WORK / "maturin-venv" / "bin" / "pip", "install", "--quiet", "maturin>=1.9,<2"], stdin=subprocess.DEVNULL)
    wheels = WORK / "wheels"
    for old in wheels.glob("octet-*.whl"):
        old.unlink()
    run([maturin, "build", "--release", "-m", REPO / "bindings/python/Cargo.toml", "-o", wheels], cwd=REPO, env=env,
        stdin=subprocess.DEVNULL)
    pip_install(*wheels.glob("octet-*.whl"))
    if not (OVERLAY / "fastembed").exists():
        pip_install(FASTEMBED, *FASTEMBED_DEPS)
    return cli, timer


def fastembed_folder(onnx_path):
    """A local model folder for fastembed: the ORT int8 graph plus MiniLM's tokenizer files."""
    folder = WORK / f"fastembed-{onnx_path.stem}"
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "config.json"):
        (folder / name).write_bytes((MINILM / name).read_bytes())
    link = folder / "model.onnx"
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(onnx_path.resolve())
    return folder


class OctetPy:
    name = "octet-py"

    def __init__(self, path, threads):
        import octet

        self.model = octet.Embedder(path, threads=threads)

    def embed(self, texts):
        return self.model.encode(texts, batch_size=BATCH)


class OctetRust:
    """The Rust API in `octet-bench-timer serve`: `time` runs embed_with in process."""

    name = "octet-rust"

    def __init__(self, timer, path, threads):
        self.server = OctetServer(timer)
        self.server.ask({"op": "load", "name": "m", "model": str(path), "threads": threads})

    def seconds(self, texts):
        return self.server.ask({"op": "time", "name": "m", "texts": texts, "iters": 1})["ms"][0] / 1e3

    def embed(self, texts):
        import numpy as np

        return np.asarray(self.server.ask({"op": "embed", "name": "m", "texts": texts})["vectors"], dtype=np.float32)

    def close(self):
        self.server.close()


class FastEmbed:
    name = "fastembed"

    def __init__(self, folder, threads):
        from fastembed import TextEmbedding
        from fastembed.common.model_description import ModelSource, PoolingType

        model_name = "octet-bench/all-MiniLM-L6-v2-ort-int8"
        try:
            TextEmbedding.add_custom_model(model=model_name, pooling=PoolingType.MEAN, normalization=True,
                                           sources=ModelSource(hf="octet-bench/local-only"), dim=384,
                                           model_file="model.onnx")
        except ValueError:  # already registered in this process
            pass
        self.model = TextEmbedding(model_name, specific_model_path=str(folder), threads=threads,
                                   local_files_only=True)

    def embed(self, texts):
        import numpy as np

        return np.stack(list(self.model.embed(texts, batch_size=BATCH)))


class SentenceTransformers:
    name = "st-fp32"

    def __init__(self, threads):
        import torch
        from sentence_transformers import SentenceTransformer

        torch.set_num_threads(threads)
        self.model = SentenceTransformer(str(MINILM), device="cpu")

    def embed(self, texts):
        return self.model.encode(texts, batch_size=BATCH, convert_to_numpy=True)


def seconds(engine, texts):
    if hasattr(engine, "seconds"):
        return engine.seconds(texts)
    start = time.perf_counter()
    engine.embed(texts)
    return time.perf_counter() - start


def cosines(a, b):
    import numpy as np

    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    c = (a.astype(np.float64) * b).sum(1)
    return float(c.mean()), float(c.min())


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--n128", type=int, default=1000, help="texts of 128 tokens [1000]")
    ap.add_argument("--corpus-texts", type=int, default=400, help="corpus sentences used [all 400]")
    ap.add_argument("--fastembed-onnx", default="ort-int8-qint8", help="which ORT int8 MiniLM fastembed runs")
    ap.add_argument("--engines", default="octet-py,octet-rust,fastembed,st-fp32")
    ap.add_argument("--waitidle", nargs="?", const=str(WAITIDLE), metavar="SCRIPT",
                    help=f"run SCRIPT (default {WAITIDLE}) first and record its line")
    ap.add_argument("--no-build", action="store_true", help="use the wheel in the overlay and the binaries as they are")
    ap.add_argument("--bin-dir", help="where octet and octet-bench-timer are [CARGO_TARGET_DIR/release]")
    ap.add_argument("--quick", action="store_true", help="smoke test: 40 corpus texts, 64 of 128 tokens, 1 round")
    ap.add_argument("--out", default=str(WORK / "python.json"))
    args = ap.parse_args()
    if args.quick:
        args.rounds, args.n128, args.corpus_texts = 1, 64, 40
    wanted = args.engines.split(",")
    WORK.mkdir(parents=True, exist_ok=True)

    cli, timer = build(args.no_build, args.bin_dir)
    octet_path = WORK / "minilm-int8.octet"
    if not octet_path.exists():
        run([cli, "convert", MINILM, "-o", octet_path, "--quant", "int8", "-q"])
    corpus = [line.strip() for line in CORPUS.read_text().splitlines() if line.strip()][: args.corpus_texts]
    points = json.loads(run([timer, "texts", octet_path, f"{args.n128}x128"], capture_output=True,
                            text=True).stdout)["points"]
    sets = {"corpus": corpus, f"{args.n128}x128": points[0]["texts"]}

    waitidle = wait_idle(args.waitidle) if args.waitidle else None

    engines = []
    if "octet-py" in wanted:
        engines.append(OctetPy(octet_path, args.threads))
    if "octet-rust" in wanted:
        engines.append(OctetRust(timer, octet_path, args.threads))
    if "fastembed" in wanted:
        import ort_models

        onnx = dict(ort_models.minilm_models(MINILM, WORK))[args.fastembed_onnx][0]
        engines.append(FastEmbed(fastembed_folder(Path(onnx)), args.threads))
    if "st-fp32" in wanted:
        engines.append(SentenceTransformers(args.threads))

    load_start = open("/proc/loadavg").read().split()[:3]
    rates = {e.name: {point: [] for point in sets} for e in engines}
    for point, texts in sets.items():
        for e in engines:  # warm-up
            seconds(e, texts[: BATCH * 2])
    for r in range(args.rounds):
        order = engines[r % len(engines):] + engines[: r % len(engines)]
        for point, texts in sets.items():
            for e in order:
                rates[e.name][point].append(len(texts) / seconds(e, texts))
        log(f"round {r + 1}/{args.rounds} done")
    load_end = open("/proc/loadavg").read().split()[:3]

    vectors = {e.name: e.embed(corpus) for e in engines}
    result = {
        "threads": args.threads, "rounds": args.rounds, "batch": BATCH, "waitidle": waitidle,
        "load_start": load_start, "load_end": load_end, "points": {p: len(t) for p, t in sets.items()},
        "texts_per_s": {name: {p: statistics.median(v) for p, v in per.items()} for name, per in rates.items()},
        "all_rounds": rates,
    }
    if "st-fp32" in vectors:
        result["cosine_vs_st_fp32"] = {
            name: dict(zip(("mean", "min"), cosines(v, vectors["st-fp32"]))) for name, v in vectors.items()
        }
    if "octet-py" in vectors and "octet-rust" in vectors:
        import numpy as np

        result["octet_py_vs_rust_max_abs_diff"] = float(np.max(np.abs(vectors["octet-py"] - vectors["octet-rust"])))
    tps = result["texts_per_s"]
    ratios = {}
    for other in ("octet-rust", "fastembed", "st-fp32"):
        if "octet-py" in tps and other in tps:
            ratios[f"octet-py/{other}"] = {p: tps["octet-py"][p] / tps[other][p] for p in sets}
    result["ratios"] = ratios
    for e in engines:
        if hasattr(e, "close"):
            e.close()

    Path(args.out).write_text(json.dumps(result, indent=2))
    print(f"threads {args.threads}, batch {BATCH}, {args.rounds} rounds, load {load_start} -> {load_end}")
    print(f"{'engine':<12}" + "".join(f"{p + ' texts/s':>22}" for p in sets) + f"{'mean cos':>11}{'min cos':>10}")
    for name, per in tps.items():
        cos = result.get("cosine_vs_st_fp32", {}).get(name, {})
        print(f"{name:<12}" + "".join(f"{per[p]:>22.1f}" for p in sets)
              + f"{cos.get('mean', float('nan')):>11.5f}{cos.get('min', float('nan')):>10.5f}")
    for k, v in ratios.items():
        print(f"{k:<22}" + "  ".join(f"{p}: {x:.2f}x" for p, x in v.items()))
    if "octet_py_vs_rust_max_abs_diff" in result:
        print(f"octet-py vs octet-rust vectors: max abs diff {result['octet_py_vs_rust_max_abs_diff']:.2e}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
