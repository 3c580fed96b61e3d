"""Quantized forms of float32 embeddings, for ``Embedder.encode(precision=...)``.

- ``"int8"``: symmetric per-vector int8, as ``octet embed --format npy-int8`` writes it: each
  vector ``v`` becomes ``q = round(v / scale)`` with ``scale = max|v| / 127`` (0 for an all-zero
  vector), so ``v ~ q * scale``; returns ``(q, scales)``. Unlike sentence-transformers'
  calibrated int8, a vector's codes do not depend on the other vectors of the call, so the
  results of separate calls (Ray batches, Spark partitions) can be compared.
- ``"binary"`` and ``"ubinary"``: exactly sentence-transformers' ``quantize_embeddings``: the
  sign bits (``v > 0``) packed 8 per byte (``numpy.packbits``), as uint8 for ``"ubinary"`` and
  shifted by -128 into int8 for ``"binary"``; ``ceil(d / 8)`` bytes per vector.
"""

from __future__ import annotations

from typing import Tuple, Union

import numpy as np

PRECISIONS = ("float32", "int8", "binary", "ubinary")


def quantize_embeddings(
    embeddings: np.ndarray, precision: str
) -> Union[np.ndarray, Tuple[np.ndarray, np.ndarray]]:
    """Quantizes float32 embeddings (n, d) or (d,) to ``precision`` (see the module docs).

    Example::

        >>> e = np.array([[0.5, -1.0, 0.0, 0.25]], dtype=np.float32)
        >>> q, scales = quantize_embeddings(e, "int8")
        >>> q.tolist(), scales.tolist()
        ([[64, -127, 0, 32]], [0.007874015718698502])
        >>> quantize_embeddings(e, "ubinary").tolist()  # bits 1,0,0,1 then padding
        [[144]]
    """
    if precision == "float32":
        return embeddings
    if precision == "int8":
        embeddings = np.asarray(embeddings, dtype=np.float32)
        if embeddings.shape[-1]:
            peak = np.max(np.abs(embeddings), axis=-1)
        else:
            peak = np.zeros(embeddings.shape[:-1], dtype=np.float32)
        peak = np.where(np.isfinite(peak), peak, np.float32(0.0))
        scales = (peak / np.float32(127.0)).astype(np.float32)
        safe = np.where(scales == 0, np.float32(1.0), scales)
        x = embeddings / safe[..., None]
        # Rounded half away from zero, as the command line's f32::round.
        q = np.copysign(np.floor(np.abs(x) + np.float32(0.5)), x)
        q = np.clip(np.nan_to_num(q), -127, 127).astype(np.int8)
        return q, scales
    if precision == "ubinary":
        return np.packbits(embeddings > 0, axis=-1)
    if precision == "binary":
        return (np.packbits(embeddings > 0, axis=-1).astype(np.int16) - 128).astype(np.int8)
    raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}; got {precision!r}")
