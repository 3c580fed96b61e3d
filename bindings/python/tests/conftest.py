"""Shared fixtures: the real models, passed in by scripts/test-python.sh.

- OCTET_MINILM: all-MiniLM-L6-v2 converted to int8 (required).
- OCTET_MINILM_SOURCE: its sentence-transformers folder (for convert).
- OCTET_BIN: the `octet` command line (the reference vectors come from it).
- OCTET_GEMMA: EmbeddingGemma-300m in int8 (optional: its tests skip without it).
"""

from __future__ import annotations

import json
import os
import subprocess
from typing import List

import numpy as np
import pytest

import octet


def _required(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        pytest.fail(f"{name} is not set: run the tests with scripts/test-python.sh", pytrace=False)
    return value


@pytest.fixture(scope="session")
def minilm_path() -> str:
    return _required("OCTET_MINILM")


@pytest.fixture(scope="session")
def minilm(minilm_path: str) -> octet.Embedder:
    return octet.Embedder(minilm_path)


@pytest.fixture(scope="session")
def minilm_source() -> str:
    return _required("OCTET_MINILM_SOURCE")


@pytest.fixture(scope="session")
def gemma() -> octet.Embedder:
    path = os.environ.get("OCTET_GEMMA")
    if not path:
        pytest.skip("OCTET_GEMMA not set (scripts/test-python.sh sets it when EmbeddingGemma is cached)")
    return octet.Embedder(path)


@pytest.fixture(scope="session")
def cli_vectors():
    """cli_vectors(model, texts, *flags) -> float32 (n, d): `octet embed` on each text."""
    binary = _required("OCTET_BIN")

    def run(model: str, texts: List[str], *flags: str) -> np.ndarray:
        out = subprocess.run(
            [binary, "embed", model, *flags, "--", *texts], check=True, capture_output=True, text=True
        ).stdout
        rows = [json.loads(line)["embedding"] for line in out.splitlines() if line.strip()]
        return np.asarray(rows, dtype=np.float32)

    return run


def corpus(n: int, seed: int = 7) -> List[str]:
    """n distinct English-like texts of 1 to 60 words (some over MiniLM's 256-token window)."""
    words = (
        "the a cat dog sat on mat house river bank money market rose fell sharply today "
        "government minister said police report storm rain wind city people year new old "
        "school children game team won lost match bridge road car train station music film"
    ).split()
    rng = np.random.default_rng(seed)
    texts = []
    for i in range(n):
        length = int(rng.integers(1, 60)) if i % 50 else 400
        texts.append(f"{i}: " + " ".join(rng.choice(words, size=length)))
    return texts
