#!/usr/bin/env python3
"""Measures the memory of 2 Ray actors that embed with one memory-mapped .octet file.

    python bindings/python/scripts/ray_pss.py MODEL.octet [--actors 2] [--texts 2000]

Starts a local Ray (num_cpus = actors), creates the actors (each an octet.ray.OctetEmbedder
with 1 thread), embeds the same texts in each so every weight page has been read, then reads
each actor's /proc/PID/smaps_rollup (Pss, Private_Clean + Private_Dirty) and, from
/proc/PID/smaps, the Pss and Rss of the model file's mapping. Since the file is mapped
read-only, the actors share its pages: each is charged about half of the file in Pss.

The issue's target: the summed Pss of the actors < 1.5 x the file size + their private
memory, i.e. the weights are not held twice. Pss also charges each actor its share of the
shared libraries (Python, NumPy, Ray, pyarrow: shared with the other Ray processes), which is
neither the model nor private, so the script reports three parts: the model mapping's Pss
(shared weights: about 1 x the file for any number of actors on a node), private memory, and
other shared Pss; and two checks: `ok_weights_shared` (model Pss of all actors < 1.5 x file;
the exit code follows it) and `ok_issue_formula` (the literal total Pss < 1.5 x file + private,
which the libraries' share can miss without any weight being duplicated). Prints one JSON
object. Linux only. Run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Dict


def rollup(pid: int) -> Dict[str, int]:
    """Fields of /proc/PID/smaps_rollup, in bytes."""
    out: Dict[str, int] = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 3 and parts[2] == "kB":
                out[parts[0].rstrip(":")] = int(parts[1]) * 1024
    return out


def mapping(pid: int, path: str) -> Dict[str, int]:
    """Pss and Rss of every mapping of `path` in /proc/PID/smaps, in bytes."""
    real = os.path.realpath(path)
    totals = {"Pss": 0, "Rss": 0}
    inside = False
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            fields = line.split()
            if fields and "-" in fields[0] and len(fields) >= 5 and not fields[0].endswith(":"):
                inside = len(fields) >= 6 and os.path.realpath(fields[-1]) == real
            elif inside and fields and fields[0].rstrip(":") in totals:
                totals[fields[0].rstrip(":")] += int(fields[1]) * 1024
    return totals


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="the .octet file")
    parser.add_argument("--actors", type=int, default=2)
    parser.add_argument("--texts", type=int, default=2000, help="texts each actor embeds first")
    args = parser.parse_args()

    import ray

    from octet.ray import OctetEmbedder

    model = os.path.abspath(args.model)
    size = os.path.getsize(model)

    @ray.remote(num_cpus=1)
    class Actor:
        def __init__(self) -> None:
            self.embedder = OctetEmbedder(model, threads=1)

        def embed(self, texts):
            return self.embedder({"text": texts})["embedding"].shape

        def measure(self):
            pid = os.getpid()
            return {"pid": pid, "rollup": rollup(pid), "model_mapping": mapping(pid, model)}

    ray.init(num_cpus=args.actors, include_dashboard=False, log_to_driver=False)
    try:
        words = "the cat sat on the mat while the market fell sharply after the storm".split()
        texts = [" ".join(words[(i % 7):] + words[: (i % 7)]) * (1 + i % 12) for i in range(args.texts)]
        actors = [Actor.remote() for _ in range(args.actors)]
        ray.get([a.embed.remote(texts) for a in actors])
        figures = ray.get([a.measure.remote() for a in actors])
    finally:
        ray.shutdown()

    pss = sum(f["rollup"].get("Pss", 0) for f in figures)
    private = sum(f["rollup"].get("Private_Clean", 0) + f["rollup"].get("Private_Dirty", 0) for f in figures)
    model_pss = sum(f["model_mapping"]["Pss"] for f in figures)
    limit = 1.5 * size + private
    other_shared = pss - private - model_pss
    report = {
        "model": model,
        "file_bytes": size,
        "actors": [
            {
                "pid": f["pid"],
                "pss": f["rollup"].get("Pss", 0),
                "rss": f["rollup"].get("Rss", 0),
                "private": f["rollup"].get("Private_Clean", 0) + f["rollup"].get("Private_Dirty", 0),
                "model_pss": f["model_mapping"]["Pss"],
                "model_rss": f["model_mapping"]["Rss"],
            }
            for f in figures
        ],
        "pss_total": pss,
        "private_total": private,
        "model_pss_total": model_pss,
        "other_shared_pss_total": other_shared,
        "limit_1_5x_file_plus_private": int(limit),
        "ok_issue_formula": pss < limit,
        "ok_weights_shared": model_pss < 1.5 * size,
    }
    print(json.dumps(report, indent=2))
    mb = 1e6
    print(
        f"{args.actors} actors: Pss {pss / mb:.1f} MB = model mapping {model_pss / mb:.1f} MB (file "
        f"{size / mb:.1f} MB) + private {private / mb:.1f} MB + other shared (libraries) {other_shared / mb:.1f} MB; "
        f"weights shared (model Pss < 1.5 x file): {'yes' if report['ok_weights_shared'] else 'NO'}; "
        f"Pss < 1.5 x file + private = {limit / mb:.1f} MB: {'met' if pss < limit else 'missed'}",
        file=sys.stderr,
    )
    return 0 if report["ok_weights_shared"] else 1


if __name__ == "__main__":
    sys.exit(main())
