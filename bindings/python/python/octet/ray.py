"""``octet.ray.OctetEmbedder``: embed a text column of a Ray Data ``Dataset`` on a cluster.

A callable class for ``Dataset.map_batches``: Ray starts ``concurrency`` actors, each opens
the model once (memory-mapped: actors on one node share one copy of the weights in the page
cache) and embeds batch after batch, adding a vector column and keeping the other columns.

Example::

    import ray
    from octet.ray import OctetEmbedder

    ds = ray.data.read_parquet("texts.parquet")
    ds = ds.map_batches(
        OctetEmbedder,
        fn_constructor_kwargs={"model": "/models/minilm-int8.octet", "column": "text"},
        concurrency=4,      # actors
        num_cpus=2,         # cores per actor: each actor computes on this many threads
        batch_size=256,
    )
    ds.write_parquet("embedded/")

The model path must exist on every node (a shared file system, or the same path on each).
"""

from __future__ import annotations

import os
from typing import Any, Dict, Optional

import numpy as np

from octet.embedder import Embedder


def _assigned_cpus() -> Optional[int]:
    """The CPUs Ray gave this actor (its ``num_cpus``), or None outside Ray."""
    try:
        import ray

        if ray.is_initialized():
            cpus = ray.get_runtime_context().get_assigned_resources().get("CPU")
            if cpus:
                return max(1, int(cpus))
    except Exception:  # not in a Ray worker: one thread per core
        return None
    return None


class OctetEmbedder:
    """Embeds ``column`` into ``output_column`` for ``Dataset.map_batches``.

    Args:
        model: the ``.octet`` file (the same path on every node).
        column: the text column.
        output_column: the vector column to add (float32 (n, d); other precisions as
            ``encode`` gives them; for ``precision="int8"`` a ``<output_column>_scale`` column
            holds the scales).
        threads: compute threads; ``None``: the CPUs Ray assigned the actor (``num_cpus``).
        **encode_kwargs: passed to :meth:`octet.Embedder.encode` (``prompt_name``,
            ``truncate_dim``, ``batch_size``, ``normalize_embeddings``, ``precision``...).
    """

    def __init__(
        self,
        model: str,
        column: str = "text",
        output_column: str = "embedding",
        threads: Optional[int] = None,
        **encode_kwargs: Any,
    ) -> None:
        self.model = Embedder(os.fspath(model), threads=threads if threads is not None else _assigned_cpus())
        self.column = column
        self.output_column = output_column
        self.encode_kwargs = encode_kwargs

    def __call__(self, batch: Any) -> Any:
        """Embeds one batch: a dict of NumPy arrays (Ray's default batch format) or a pandas
        DataFrame; returns the same kind with the vector column added."""
        if isinstance(batch, dict):
            texts = batch[self.column]
            texts = texts.tolist() if isinstance(texts, np.ndarray) else list(texts)
            out = dict(batch)
            self._put(out, self.model.encode(texts, **self.encode_kwargs), list_rows=False)
            return out
        try:
            import pandas as pd
        except ImportError:  # pragma: no cover
            pd = None
        if pd is not None and isinstance(batch, pd.DataFrame):
            out = batch.copy()
            self._put(out, self.model.encode(batch[self.column].tolist(), **self.encode_kwargs), list_rows=True)
            return out
        raise ValueError(
            f"OctetEmbedder takes batches as dicts of NumPy arrays or pandas DataFrames, not {type(batch).__name__}; "
            "use map_batches(..., batch_format='numpy') or 'pandas'"
        )

    def _put(self, out: Any, vectors: Any, list_rows: bool) -> None:
        if isinstance(vectors, tuple):  # precision="int8": (codes, scales)
            codes, scales = vectors
            out[self.output_column] = list(codes) if list_rows else codes
            out[self.output_column + "_scale"] = scales
        else:
            out[self.output_column] = list(vectors) if list_rows else vectors
