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
- on a CPU with AMX, MiniLM also runs as `octet-int8-vnni`: the same file in a second timer process under
  OCTET_KERNEL=avx512 (octet's VNNI kernels and AVX-512 BF16 attention, no tiles), the side of the VNNI-only
  target that `ort-int8-noamx` is the other side of;
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
anything but the engine timed (/proc/stat busy time minus the time of that engine's process: the octet server,
the ORT worker, or this runner for PyTorch and llama.cpp; whatever of the run still spins after its own block
counts against the next engine).
A figure whose blocks saw more than 0.1 other CPUs on average is marked "does not count" (`~`) in the tables.
`--waitidle` first runs /work/shared/tools/waitidle.sh and keeps its line.

Also: quality of every engine (mean and min cosine against fp32 sentence-transformers on the corpus; with
EmbeddingGemma's `document` prompt prepended for every engine), cold start (octet: a fresh
`octet-bench-timer cold` process, spawn to exit; ORT: session creation plus the first run inside this warm
Python process), peak RSS of an octet corpus run and of an ORT worker that loaded one model and embedded the
corpus, file sizes. Writes <out>/<model>.json, <out>/<model>.md (tables for benches/RESULTS.md) and PNG plots in
benches/plots/ (--replot JSON redoes the tables and plots from a saved run). Not part of CI (needs the ~6 GB
torch venv): see benches/peers/setup.sh.

Modules: this file runs the points and the command line; settings.py holds the paths, models and small
helpers, engines.py octet and the peers, measure.py the timing and accounting, report.py the tables and plots.

Usage: .venv-ref/bin/python benches/peers/run.py [--models minilm,gemma] [--threads 1,2] [--rounds 3]
       [--waitidle] [--skip-llama] [--quick]
"""

import argparse
import gc
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ort_models  # noqa: E402
from engines import (  # noqa: E402
    InProcessOrtEngine,
    LlamaEngine,
    OctetEngine,
    TorchEngine,
    build_noamx,
    build_octet,
    convert_gguf,
    convert_octet,
    load_llama,
)
from measure import (  # noqa: E402
    CpuMeter,
    cold_start_octet,
    cold_start_ort,
    corpus_rss,
    cosines,
    cpu_description,
    estimate_seconds,
    measure,
    ort_rss,
    other_cpus,
)
from ort_worker import FastTokenizer, OrtWorker, RemoteOrtEngine  # noqa: E402
from report import med, plot, write_report  # noqa: E402
from settings import CORPUS, MODELS, PLOTS, WAITIDLE, WORK, loadavg, log, wait_idle  # noqa: E402
from timer_client import OctetServer  # noqa: E402


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
    if key == "minilm" and ctx["vnni_server"] is not None:
        file_bytes["octet-int8-vnni"] = file_bytes["octet-int8"]
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
        if key == "minilm" and ctx["vnni_server"] is not None:
            engines["octet-int8-vnni"] = OctetEngine(ctx["vnni_server"], f"{key}-int8-vnni", octet_paths["int8"], t)
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

    waitidle = wait_idle(args.waitidle) if args.waitidle else None

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
    counts = {"minilm": 3 + 6 + int(args.ort_quint8) + int(noamx) + int(args.ort_in_process) + 1 + int(amx_cpu)
              + (len(MODELS["minilm"]["llama_kinds"]) if llama[0] else 0),
              "gemma": 1 + 1 + int(noamx) + int(args.ort_in_process) + (1 if llama[0] else 0)}
    eta = estimate_seconds([k for k in keys if k in counts], threads, rounds, seconds, counts)
    log(f"plan: models {keys}, threads {threads}, {rounds} round(s) of {seconds} s blocks; "
        f"estimated ~{eta / 60:.0f} min on a quiet machine (exports and conversions cached)")

    cli, timer = build_octet()
    meter = CpuMeter()
    server = OctetServer(timer)
    meter.pids.add(server.pid)
    vnni_server = None
    if amx_cpu:
        vnni_server = OctetServer(timer, env=dict(os.environ, OCTET_KERNEL="avx512"))
        meter.pids.add(vnni_server.pid)
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
           "vnni_server": vnni_server,
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
        if vnni_server is not None:
            vnni_server.close()
        ort_worker.close()
        if noamx_worker is not None:
            noamx_worker.close()
    log(f"done in {(time.perf_counter() - started) / 60:.1f} min (estimated {eta / 60:.0f} min)")


if __name__ == "__main__":
    main()
