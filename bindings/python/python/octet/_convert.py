"""``octet.convert``: the ``octet convert`` command line's converter, from Python."""

from __future__ import annotations

import json
import os
from typing import Any, Dict, Optional, Sequence, Union

from octet import _octet

PathLike = Union[str, "os.PathLike[str]"]


def convert(
    source: PathLike,
    output: Optional[PathLike] = None,
    quant: Optional[str] = None,
    keep: Sequence[str] = (),
    report: bool = False,
    tokenizer: Optional[PathLike] = None,
    threads: int = 0,
    tflite_exact: bool = False,
) -> Dict[str, Any]:
    """Converts a sentence-transformers folder (or a ``.tflite`` encoder) into a ``.octet`` file.

    The same converter as ``octet convert SOURCE -o OUTPUT --quant QUANT --keep ...``.

    Args:
        source: a sentence-transformers / Hugging Face model folder (config.json,
            model.safetensors, tokenizer.json, ...) or a ``.tflite`` file.
        output: the ``.octet`` file to write (written to a temporary file, then renamed).
            With ``report=True``: an optional folder to keep the converted files in.
        quant: the recipe: ``"f32"``, ``"f16"``, ``"int8-embeddings"`` or ``"int8"`` (default).
            With ``report=True``: a comma-separated list (default ``"f16,int8-embeddings,int8"``).
        keep: patterns of tensors to keep in f32 (``*`` is a wildcard), e.g. ``("layers.0.*",)``.
        report: compare the recipes with f32 on 400 built-in sentences instead of writing one
            file (``octet convert --report``); returns the report.
        tokenizer: for a ``.tflite`` source, its ``tokenizer.json`` (default: the file's own).
        threads: compute threads for ``report`` (0: one per core).
        tflite_exact: for a ``.tflite`` BERT encoder, ``octet convert --tflite-exact``: the
            float steps between its int8 layers (LayerNorm, attention, GELU) run as TFLite's
            builtin kernels run them, so the vectors match the LiteRT interpreter's to its
            rounding, at some cost in speed. Not with ``report=True``.

    Returns:
        ``{"path", "architecture", "tensors", "recipe", "bytes"}``, or with ``report=True``
        the report (``{"recipes": [...], ...}``, as ``--report-format json`` prints it).

    Raises:
        ValueError: an unknown recipe or a bad pattern; a source the converter cannot read.
        OSError: a source that does not exist, an output that cannot be written.

    Example::

        >>> octet.convert("all-MiniLM-L6-v2", "minilm-int8.octet")           # doctest: +SKIP
        {'path': 'minilm-int8.octet', 'architecture': 'bert', 'tensors': 60, 'recipe': 'int8', ...}
    """
    if isinstance(keep, str):
        keep = (keep,)
    result = _octet.convert(
        os.fspath(source),
        None if output is None else os.fspath(output),
        quant,
        list(keep),
        report,
        None if tokenizer is None else os.fspath(tokenizer),
        threads,
        tflite_exact,
    )
    if report:
        return json.loads(result)
    result["path"] = str(result["path"])
    return result
