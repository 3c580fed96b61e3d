#!/usr/bin/env python3
"""Embeds the text column of a Parquet file with octet on Ray Data and writes the rows, with a
vector column added, as Parquet.

    python examples/ray_embed.py IN.parquet OUT.parquet --model minilm-int8.octet --column text

OUT.parquet is a folder of Parquet files (Ray writes one file per block). On a laptop this
starts a local Ray; on a cluster, run it on the head node (or with RAY_ADDRESS=auto) and every
node must see the model at the same path. Needs `pip install octet ray[data] pyarrow`.
"""

from __future__ import annotations

import argparse
import sys
from typing import List, Optional


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("input", help="Parquet file (or folder) with a text column")
    parser.add_argument("output", help="output folder of Parquet files")
    parser.add_argument("--model", required=True, help="the .octet file (same path on every node)")
    parser.add_argument("--column", default="text", help="the text column [text]")
    parser.add_argument("--output-column", default="embedding", help="the vector column to add [embedding]")
    parser.add_argument("--actors", type=int, default=2, help="embedding actors [2]")
    parser.add_argument(
        "--cpus-per-actor",
        type=float,
        default=1,
        help="CPUs Ray reserves per actor, its compute threads (at least 1) [1]; leave CPUs free for the "
        "read and write tasks, e.g. 0.5 with 2 actors on a 2-CPU Ray",
    )
    parser.add_argument(
        "--blocks", type=int, default=None, help="split the input into this many blocks (spreads one small file)"
    )
    parser.add_argument("--batch-size", type=int, default=256, help="rows per Ray batch [256]")
    parser.add_argument("--prompt-name", default=None, help="a prompt stored in the model (e.g. document)")
    parser.add_argument("--truncate-dim", type=int, default=None, help="Matryoshka truncation")
    args = parser.parse_args(argv)

    import ray

    from octet.ray import OctetEmbedder

    if not ray.is_initialized():
        ray.init()  # a local Ray, or the cluster named by RAY_ADDRESS
    encode_kwargs = {}
    if args.prompt_name is not None:
        encode_kwargs["prompt_name"] = args.prompt_name
    if args.truncate_dim is not None:
        encode_kwargs["truncate_dim"] = args.truncate_dim
    ds = ray.data.read_parquet(args.input)
    if args.blocks:
        ds = ds.repartition(args.blocks)
    ds = ds.map_batches(
        OctetEmbedder,
        fn_constructor_kwargs={
            "model": args.model,
            "column": args.column,
            "output_column": args.output_column,
            **encode_kwargs,
        },
        concurrency=args.actors,
        num_cpus=args.cpus_per_actor,
        batch_size=args.batch_size,
        batch_format="numpy",
    )
    ds.write_parquet(args.output)
    print(f"wrote {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
