"""``octet.Embedder``: a ``.octet`` model with the API of sentence-transformers'
``SentenceTransformer`` (``encode``, ``encode_query``, ``encode_document``, ``similarity``,
``tokenize``), so that switching takes one line.

The work happens in the native ``octet._octet.Engine``: texts are checked, then the GIL is
released while they are tokenized and embedded, and the vectors are written straight into the
returned NumPy array. Python threads sharing one ``Embedder`` run in parallel and get the same
vectors as sequential calls.
"""

from __future__ import annotations

import os
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np

from octet import _octet
from octet.quantize import PRECISIONS, quantize_embeddings

PathLike = Union[str, "os.PathLike[str]"]
Sentences = Union[str, Sequence[str], Iterable[str]]


class Embedder:
    """An embedding model loaded from a ``.octet`` file (memory-mapped: processes that open
    the same file share one copy of the weights).

    Args:
        path: the ``.octet`` file (make one with :func:`octet.convert` or ``octet convert``).
        threads: compute threads (``None``: one per core).

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file is not a usable octet model (corrupt, newer format, ...).

    Example::

        >>> model = octet.Embedder("all-MiniLM-L6-v2-int8.octet", threads=4)  # doctest: +SKIP
        >>> model.encode(["The cat sat on the mat."]).shape                   # doctest: +SKIP
        (1, 384)
    """

    def __init__(self, path: PathLike, threads: Optional[int] = None) -> None:
        self._engine = _octet.Engine(os.fspath(path), threads)

    def __repr__(self) -> str:
        return (
            f"octet.Embedder({str(self._engine.path)!r}, dims={self.dims}, "
            f"recipe={self.recipe!r}, threads={self.threads})"
        )

    # Properties ---------------------------------------------------------------------------

    @property
    def dims(self) -> int:
        """Width of the vectors (before any ``truncate_dim``)."""
        return self._engine.dims

    def get_sentence_embedding_dimension(self) -> int:
        """Width of the vectors, as sentence-transformers names it."""
        return self._engine.dims

    @property
    def max_seq_length(self) -> int:
        """The window in tokens (special and prompt tokens included); longer texts are cut."""
        return self._engine.max_seq_length

    @property
    def prompts(self) -> Dict[str, str]:
        """Task prompts stored in the model: name -> prefix (EmbeddingGemma: ``query``, ...)."""
        return self._engine.prompts

    @property
    def default_prompt_name(self) -> Optional[str]:
        """The prompt used when ``encode`` names none, if the model has one."""
        return self._engine.default_prompt_name

    @property
    def matryoshka_dims(self) -> List[int]:
        """Sizes the model was trained to be truncated to (``truncate_dim``); empty if none."""
        return self._engine.matryoshka_dims

    @property
    def recipe(self) -> str:
        """The quantization recipe of the file (``int8``, ``f16``, ``f32``, ...)."""
        return self._engine.recipe

    @property
    def kernels(self) -> str:
        """The instruction set level and kernels this CPU runs."""
        return _octet.kernels()

    @property
    def threads(self) -> int:
        """Compute threads."""
        return self._engine.threads

    @property
    def path(self) -> str:
        """The model file."""
        return str(self._engine.path)

    # Embedding ----------------------------------------------------------------------------

    def encode(
        self,
        sentences: Sentences,
        batch_size: int = 32,
        prompt_name: Optional[str] = None,
        prompt: Optional[str] = None,
        truncate_dim: Optional[int] = None,
        normalize_embeddings: bool = True,
        precision: str = "float32",
        show_progress_bar: bool = False,
        convert_to_numpy: bool = True,
    ) -> Any:
        """Embeds sentences, as ``SentenceTransformer.encode`` does.

        Args:
            sentences: a list (or any iterable) of ``str``, or one ``str``.
            batch_size: texts per forward pass (texts are sorted by length first).
            prompt_name: a prompt stored in the model (see :attr:`prompts`); ``None`` uses the
                model's default prompt if it has one, ``""`` none.
            prompt: a literal prefix put in front of every text; wins over ``prompt_name``.
            truncate_dim: keep the first ``truncate_dim`` values (Matryoshka), then normalize.
            normalize_embeddings: L2-normalize the vectors (cosine = dot product).
            precision: ``"float32"``; ``"int8"`` gives ``(codes, scales)`` (int8 (n, d) and
                float32 (n,), ``v ~ codes * scale``); ``"binary"`` / ``"ubinary"`` pack the
                sign bits as sentence-transformers' ``quantize_embeddings`` does.
            show_progress_bar: show a ``tqdm`` bar (if installed) over chunks of texts.
            convert_to_numpy: ``False`` returns a list of 1-D arrays instead of one array.

        Returns:
            A ``numpy.ndarray`` of shape (n, d), float32 (or as ``precision`` says); a 1-D
            array for a single ``str``.

        Raises:
            ValueError: a text that is ``None`` or not a ``str``, an unknown ``prompt_name``,
                a ``truncate_dim`` outside 1..dims, an unknown ``precision``.

        Example::

            >>> model = octet.Embedder("all-MiniLM-L6-v2-int8.octet")            # doctest: +SKIP
            >>> e = model.encode(["The cat sat.", "A cat was sitting."])          # doctest: +SKIP
            >>> e.shape, e.dtype                                                 # doctest: +SKIP
            ((2, 384), dtype('float32'))
            >>> float(model.similarity(e[0], e[1])[0, 0]) > 0.7                  # doctest: +SKIP
            True
            >>> model.encode("one text").shape                                    # doctest: +SKIP
            (384,)
        """
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}; got {precision!r}")
        single = isinstance(sentences, str)
        texts = [sentences] if single else sentences
        if show_progress_bar:
            vectors = self._encode_with_progress(texts, batch_size, prompt_name, prompt, truncate_dim, normalize_embeddings)
        else:
            vectors = self._engine.embed(texts, batch_size, prompt_name, prompt, truncate_dim, normalize_embeddings)
        result: Any = quantize_embeddings(vectors, precision)
        if single:
            return (result[0][0], result[1][0]) if precision == "int8" else result[0]
        if not convert_to_numpy:
            if precision == "int8":
                return list(result[0]), list(result[1])
            return list(result)
        return result

    def _encode_with_progress(
        self,
        texts: Any,
        batch_size: int,
        prompt_name: Optional[str],
        prompt: Optional[str],
        truncate_dim: Optional[int],
        normalize: bool,
    ) -> np.ndarray:
        """``encode`` in chunks of texts, with a bar: each chunk fills its rows of one array."""
        texts = list(texts)
        try:
            from tqdm.auto import tqdm
        except ImportError:  # no tqdm: no bar
            return self._engine.embed(texts, batch_size, prompt_name, prompt, truncate_dim, normalize)
        step = max(batch_size, 1) * 8
        parts = []
        with tqdm(total=len(texts), desc="Batches", unit="text") as bar:
            for start in range(0, max(len(texts), 1), step):
                chunk = texts[start : start + step]
                parts.append(self._engine.embed(chunk, batch_size, prompt_name, prompt, truncate_dim, normalize))
                bar.update(len(chunk))
        return np.concatenate(parts, axis=0)

    def encode_query(self, sentences: Sentences, **kwargs: Any) -> Any:
        """``encode`` with the model's ``query`` prompt (if it has one; else none).

        Example::

            >>> gemma = octet.Embedder("embeddinggemma-int8.octet")              # doctest: +SKIP
            >>> q = gemma.encode_query("Which planet is known as the red planet?")  # doctest: +SKIP
        """
        return self._encode_task(sentences, "query", kwargs)

    def encode_document(self, sentences: Sentences, **kwargs: Any) -> Any:
        """``encode`` with the model's ``document`` prompt (if it has one; else none).

        Example::

            >>> d = gemma.encode_document(["Mars, known for its reddish appearance, ..."])  # doctest: +SKIP
        """
        return self._encode_task(sentences, "document", kwargs)

    def _encode_task(self, sentences: Sentences, task: str, kwargs: Dict[str, Any]) -> Any:
        if "prompt_name" not in kwargs and "prompt" not in kwargs:
            kwargs["prompt_name"] = task if task in self.prompts else ""
        return self.encode(sentences, **kwargs)

    # Tokens and similarity ------------------------------------------------------------------

    def tokenize(self, texts: Sentences, prompt_name: Optional[str] = None) -> Dict[str, np.ndarray]:
        """Token ids as the model sees them (special tokens included, cut to the window), padded
        with 0 into ``input_ids`` and ``attention_mask`` arrays (int64, (n, longest)), as
        sentence-transformers' ``tokenize`` returns them. No prompt unless ``prompt_name``.

        Example::

            >>> model.tokenize(["The cat sat."])["input_ids"]                    # doctest: +SKIP
            array([[ 101, 1996, 4937, 2938, 1012,  102]])
        """
        ids = self._engine.tokenize([texts] if isinstance(texts, str) else texts, prompt_name)
        longest = max((len(x) for x in ids), default=0)
        input_ids = np.zeros((len(ids), longest), dtype=np.int64)
        attention_mask = np.zeros((len(ids), longest), dtype=np.int64)
        for row, seq in enumerate(ids):
            input_ids[row, : len(seq)] = seq
            attention_mask[row, : len(seq)] = 1
        return {"input_ids": input_ids, "attention_mask": attention_mask}

    def count_tokens(self, texts: Sentences, prompt_name: Optional[str] = None) -> np.ndarray:
        """The number of tokens each text is embedded with: special tokens and the prompt
        (``None``: the model's default) included, at most :attr:`max_seq_length`.

        Example::

            >>> model.count_tokens(["The cat sat.", "word " * 1000])             # doctest: +SKIP
            array([  6, 256])
        """
        counts, _ = self._engine.count_tokens([texts] if isinstance(texts, str) else texts, prompt_name)
        return np.asarray(counts, dtype=np.int64)

    @staticmethod
    def similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Cosine similarity of every row of ``a`` with every row of ``b``: shape (len(a), len(b))
        (1-D inputs count as one row), float32, as sentence-transformers' ``similarity``.

        Example::

            >>> e = model.encode(["cat", "kitten", "tax return"])                # doctest: +SKIP
            >>> model.similarity(e, e).round(2)                                  # doctest: +SKIP
        """
        a = np.atleast_2d(np.asarray(a, dtype=np.float32))
        b = np.atleast_2d(np.asarray(b, dtype=np.float32))
        if a.shape[1] != b.shape[1]:
            raise ValueError(f"similarity needs vectors of one width; got {a.shape[1]} and {b.shape[1]}")
        an = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
        bn = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
        return an @ bn.T
