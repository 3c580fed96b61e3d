"""Serving benchmark: `octet serve` (int8 MiniLM) against llama.cpp's `llama-server` (MiniLM Q8_0,
--embeddings), both on the same number of threads, under the same closed-loop load
(benches/serve/load.py) at 1, 8 and 64 clients with requests of 1 and 16 texts from the Lee corpus.

Reports texts/s, p50 / p99 latency, the cold start to a healthy /health, and each server's peak
RSS (VmHWM, read from /proc when its run ends); writes benches/serve/results/serve.json and a plot
of throughput against clients (benches/plots/serve-throughput.png, if matplotlib is importable).
The load generator shares the machine with the server: on a small machine, run it with fewer
threads than the machine has, or pin it with taskset.

Setup: cargo build --release -p octet-tools; bash scripts/quickstart.sh (the int8 MiniLM);
benches/peers/setup.sh then benches/serve/setup-llama-server.sh (llama-server and the GGUF).

Usage: python3 benches/serve/run.py [--quick] [--seconds 10] [--clients 1,8,64] [--texts 1,16]
       [--threads 2] [--skip-llama] [--octet-bin PATH] [--octet-model PATH] [--llama-server PATH] [--gguf PATH]
"""

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import load  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "peers"))
from timer_client import OctetServer  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
LLAMA_ROOT = Path(os.environ.get("LLAMA_ROOT", REPO / "target" / "bench-llama"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def peak_rss_mb(pid):
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def wait_healthy(url, proc, timeout=120):
    """Seconds from now until GET /health answers 200."""
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=1) as r:
                if r.status == 200:
                    return time.perf_counter() - started
        except OSError:
            pass
        time.sleep(0.005)
    raise RuntimeError("the server never became healthy")


def bench_server(name, command, url, model, points, seconds):
    started = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_healthy(url, proc)
        cold = time.perf_counter() - started
        rows = []
        for clients, texts in points:
            row = asyncio.run(load.run_point(url, model, clients, texts, seconds, load.read_corpus()))
            row["server"] = name
            rows.append(row)
            print(f"{name:14} {clients:3} clients x {texts:2} texts: {row['texts_per_s']:8.1f} texts/s  "
                  f"p50 {row['p50_ms']:7.2f} ms  p99 {row['p99_ms']:7.2f} ms  {row['statuses']}", flush=True)
        return {"server": name, "cold_start_s": cold, "peak_rss_mb": peak_rss_mb(proc.pid), "points": rows}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def in_process_ms(timer, model, threads, texts_per_request, corpus, requests=200):
    """Median time of the engine's own `embed` call, in process (`octet-bench-timer serve`), on the
    same requests the load generator sends one client: consecutive corpus texts, N per call."""
    server = OctetServer(timer)
    try:
        server.ask({"op": "load", "name": "m", "model": str(model), "threads": threads})
        times = []
        for i in range(requests):
            batch = [corpus[(i * texts_per_request + k) % len(corpus)] for k in range(texts_per_request)]
            times += server.ask({"op": "time", "name": "m", "texts": batch, "iters": 1})["ms"]
        times.sort()
        return times[len(times) // 2]
    finally:
        server.close()


def plot(results, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not importable: no plot", file=sys.stderr)
        return
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for result in results:
        for texts in sorted({p["texts_per_request"] for p in result["points"]}):
            pts = [p for p in result["points"] if p["texts_per_request"] == texts]
            ax.plot([p["clients"] for p in pts], [p["texts_per_s"] for p in pts], marker="o",
                    label=f"{result['server']}, {texts} text{'s' if texts > 1 else ''}/request")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("concurrent clients (closed loop)")
    ax.set_ylabel("texts / s")
    ax.set_title("Embedding servers, all-MiniLM-L6-v2")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    print(f"plot: {path}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="1 and 8 clients, 2 s per point: proves the setup works")
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--clients", default="1,8,64")
    ap.add_argument("--texts", default="1,16")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--skip-llama", action="store_true")
    ap.add_argument("--skip-octet", action="store_true")
    ap.add_argument("--llama-slots", type=int, help="llama-server's -np (default: the most clients of any point)")
    ap.add_argument("--octet-bin", type=Path, default=TARGET / "release" / "octet")
    ap.add_argument("--octet-model", type=Path, default=Path.home() / ".cache" / "octet" / "models" / "all-MiniLM-L6-v2-int8.octet")
    ap.add_argument("--timer", type=Path, default=TARGET / "release" / "octet-bench-timer",
                    help="for the in-process time of the same requests (cargo build --release -p octet-benches)")
    ap.add_argument("--llama-server", type=Path, default=LLAMA_ROOT / "build-server" / "bin" / "llama-server")
    ap.add_argument("--gguf", type=Path, default=REPO / "target" / "bench-peers" / "minilm-q8_0.gguf")
    ap.add_argument("--out", type=Path, help="default benches/serve/results/serve.json (--quick: under target/bench-serve/)")
    ap.add_argument("--plot", type=Path, help="default benches/plots/serve-throughput.png (--quick: under target/bench-serve/)")
    args = ap.parse_args()
    if args.quick:
        args.seconds, args.clients = 2, "1,8"
    # A --quick run only proves the setup works: its files stay out of the repository.
    home = REPO / "target" / "bench-serve" if args.quick else REPO / "benches"
    args.out = args.out or home / ("quick.json" if args.quick else "serve/results/serve.json")
    args.plot = args.plot or home / ("quick.png" if args.quick else "plots/serve-throughput.png")
    points = [(c, t) for t in map(int, args.texts.split(",")) for c in map(int, args.clients.split(","))]
    results, notes = [], []

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    if not args.skip_octet:
        results.append(bench_server("octet serve", [str(args.octet_bin), "serve", str(args.octet_model), "--port", str(port),
                                                    "--threads", str(args.threads)], url, "minilm", points, args.seconds))
    if args.skip_llama:
        notes.append("llama-server skipped: --skip-llama")
    elif not args.llama_server.exists() or not args.gguf.exists():
        notes.append(f"llama-server skipped: no {args.llama_server} or {args.gguf} (run benches/serve/setup-llama-server.sh)")
    else:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        # One slot per client, each with a 256-token context (octet's MiniLM window); a batch of
        # 2048 tokens (larger ones make ggml's attention buffers grow with its square).
        slots = args.llama_slots or max(int(c) for c in args.clients.split(","))
        command = [str(args.llama_server), "-m", str(args.gguf), "--embeddings", "--pooling", "mean",
                   "-t", str(args.threads), "-tb", str(args.threads), "--host", "127.0.0.1", "--port", str(port),
                   "-np", str(slots), "-c", str(256 * slots), "-b", "2048", "-ub", "2048", "--log-disable"]
        name = "llama-server" if args.llama_slots is None else f"llama-server -np {slots}"
        results.append(bench_server(name, command, url, "minilm", points, args.seconds))
    in_process = {}
    if args.timer.exists() and not args.skip_octet:
        for texts in sorted({t for _, t in points}):
            in_process[str(texts)] = in_process_ms(args.timer, args.octet_model, args.threads, texts, load.read_corpus())
            print(f"octet in process, {texts:2} texts per call: median {in_process[str(texts)]:7.2f} ms", flush=True)
    else:
        notes.append(f"no in-process time: no {args.timer}")
    for note in notes:
        print(note)
    for r in results:
        print(f"{r['server']}: cold start to healthy {r['cold_start_s'] * 1e3:.0f} ms, peak RSS {r['peak_rss_mb']:.0f} MB")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"quick": args.quick, "threads": args.threads, "seconds": args.seconds,
                                    "notes": notes, "in_process_ms": in_process, "results": results}, indent=1))
    print(f"results: {args.out}")
    plot(results, args.plot)


if __name__ == "__main__":
    main()
