"""octet: fast int8 inference for text-embedding models, with the API of sentence-transformers.

Quick start::

    import octet
    vectors = octet.Embedder("all-MiniLM-L6-v2-int8.octet").encode(["The cat sat.", "A dog barked."])
    # numpy.ndarray, shape (2, 384), float32, L2-normalized

Make a ``.octet`` file from a sentence-transformers folder with :func:`convert` (or the
``octet convert`` command line). For Ray Data, see :mod:`octet.ray`.
"""

from __future__ import annotations

from octet._octet import __version__, kernels
from octet._convert import convert
from octet.embedder import Embedder
from octet.quantize import quantize_embeddings

__all__ = ["Embedder", "convert", "quantize_embeddings", "kernels", "__version__"]
