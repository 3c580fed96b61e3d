"""The set-up every reference script shares, in the reference venv (common.py builds on it) and
in the TF and mediapipe venvs alike: plain Python (numpy only inside `cosines`), no scipy.

Paths follow scripts/fetch-*.sh: ``${OCTET_CACHE:-$HOME/.cache/octet}/sources/<model>/``.
"""

import hashlib
import json
import os
import sys

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CACHE = os.environ.get("OCTET_CACHE", os.path.join(os.path.expanduser("~"), ".cache", "octet"))
SOURCES = os.path.join(CACHE, "sources")


def quiet_tensorflow():
    """TensorFlow's log noise and oneDNN's float reordering off; call before importing it."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")


def offline_hub():
    """Hugging Face libraries read only the local cache (the fetch scripts fill it)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def cosines(a, b):
    """Row-wise cosines of two [n, d] numpy arrays."""
    import numpy as np

    return np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def write_compact_json(path, doc):
    """Writes `doc` as one line of compact JSON plus a newline (the fixtures' reference.json
    files), through a temporary file."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".tmp", "w") as f:
        json.dump(doc, f, separators=(",", ":"))
        f.write("\n")
    os.replace(path + ".tmp", path)
    print(f"wrote {path}", file=sys.stderr)
