"""Shared helpers of the reference-fixture generators (make_*_fixtures.py).

Everything here is plain Python + numpy/scipy (the reference venv); the generators load the
models with sentence-transformers themselves. The paths and the file hash come from env.py,
which the TF-venv scripts use too: ``${OCTET_CACHE:-$HOME/.cache/octet}/sources/<model>/`` and
``.../data/gensim/``.
"""

import importlib.metadata
import json
import os
import platform
import sys

import numpy as np
from scipy import stats

from env import CACHE, REPO, sha256_file  # noqa: F401 (re-exported for the generators)

GENSIM_DATA = os.path.join(CACHE, "data", "gensim")


def library_versions():
    names = ["torch", "transformers", "sentence-transformers", "tokenizers", "numpy", "scipy"]
    out = {"python": platform.python_version()}
    for n in names:
        out[n] = importlib.metadata.version(n)
    return out


def f32_list(values, significant=None):
    """fp32 values as JSON-ready floats.

    significant=None: the shortest decimal that parses back (as f32) to exactly the same f32.
    significant=k: rounded to k significant digits (parse as f32; error <= 0.5e-(k-1) relative).
    """
    arr = np.asarray(values, dtype=np.float32).ravel()
    if significant is None:
        return [float(np.format_float_positional(v, unique=True, trim="-")) if v != 0 else 0.0 for v in arr]
    return [float(f"{float(v):.{significant - 1}e}") for v in arr]


def write_json(path, obj):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, ensure_ascii=False, indent=1, allow_nan=False)
        f.write("\n")
    print(f"wrote {path} ({os.path.getsize(path)} bytes)", file=sys.stderr)


# ---------------------------------------------------------------------------------------------
# gensim test data (scripts/fetch-gensim-data.sh)


def read_lee_docs(name="lee.cor"):
    """Lee corpus documents: the file is ISO-8859-1 (one byte 0xA3 = '£' in lee.cor), one
    document per line separated by '\\n'; the last line has no trailing newline. Lines are
    returned exactly as they are (no stripping)."""
    with open(os.path.join(GENSIM_DATA, name), "rb") as f:
        text = f.read().decode("latin-1")
    docs = text.split("\n")
    if docs and docs[-1] == "":
        docs.pop()
    return docs


def read_lee_human_upper():
    """similarities0-1.txt: 50 rows of 50 tab-separated floats; only the upper triangle
    (row i < column j) and the diagonal (1) are filled, the lower triangle is 0. Returns the
    1,225 values of the strict upper triangle in row-major order (i < j)."""
    rows = []
    with open(os.path.join(GENSIM_DATA, "similarities0-1.txt"), encoding="ascii") as f:
        for line in f:
            if line.strip():
                rows.append([float(x) for x in line.split()])
    m = np.array(rows, dtype=np.float64)
    assert m.shape == (50, 50), m.shape
    iu = np.triu_indices(50, 1)
    return m[iu], iu


def read_word_pairs(name):
    """wordsim353.tsv / simlex999.txt: '#' lines are comments, then 'word1<TAB>word2<TAB>score'."""
    pairs = []
    with open(os.path.join(GENSIM_DATA, name), encoding="utf-8") as f:
        for line in f:
            if line.startswith("#") or not line.strip():
                continue
            a, b, score = line.rstrip("\n").split("\t")
            pairs.append((a, b, float(score)))
    return pairs


def gensim_figures(embed, significant=8):
    """The three quality figures on the gensim data. embed(list_of_str) -> (n, d) float32 array of
    L2-normalised embeddings (cosine = dot product, computed here in float64)."""
    out = {}

    docs = read_lee_docs()
    assert len(docs) == 50
    human, (ii, jj) = read_lee_human_upper()
    e = np.asarray(embed(docs), dtype=np.float64)
    e /= np.linalg.norm(e, axis=1, keepdims=True)
    cos = np.einsum("nd,nd->n", e[ii], e[jj])
    out["lee"] = {
        "figure": "pearson",
        "value": float(stats.pearsonr(cos, human)[0]),
        "n_docs": 50,
        "n_pairs": int(len(cos)),
        "cosines": f32_list(cos, significant),
    }

    for key, name in (("wordsim353", "wordsim353.tsv"), ("simlex999", "simlex999.txt")):
        pairs = read_word_pairs(name)
        words = sorted({w for a, b, _ in pairs for w in (a, b)})
        ew = np.asarray(embed(words), dtype=np.float64)
        ew /= np.linalg.norm(ew, axis=1, keepdims=True)
        index = {w: k for k, w in enumerate(words)}
        cos = np.array([ew[index[a]] @ ew[index[b]] for a, b, _ in pairs])
        human_scores = np.array([s for _, _, s in pairs])
        out[key] = {
            "figure": "spearman",
            "value": float(stats.spearmanr(cos, human_scores)[0]),
            "n_pairs": len(pairs),
            "n_words": len(words),
            "cosines": f32_list(cos, significant),
        }
    return out


GENSIM_METHOD = {
    "data": "gensim==4.4.0 wheel, gensim/test/test_data/ (scripts/fetch-gensim-data.sh)",
    "lee": (
        "lee.cor decoded as ISO-8859-1, split on '\\n' -> 50 documents (line k = document k, no trailing "
        "newline after the last). Each document (the line exactly as read, no stripping) is embedded on "
        "its own, truncated by sentence-transformers to max_seq_length. Cosine of every pair i<j (1,225 pairs, "
        "row-major: (0,1),(0,2),...,(0,49),(1,2),...,(48,49)) against similarities0-1.txt[i][j], the strict "
        "upper triangle (the lower triangle of that file is 0). Figure: Pearson r (scipy.stats.pearsonr)."
    ),
    "wordsim353": (
        "wordsim353.tsv: skip lines starting with '#', then word1 TAB word2 TAB mean human score; 353 pairs "
        "in file order. Each word is embedded alone, as written (case kept). Cosine per pair vs human score. "
        "Figure: Spearman rho with average ranks for ties (scipy.stats.spearmanr)."
    ),
    "simlex999": "simlex999.txt: same format and method as wordsim353; 999 pairs.",
    "cosines": "listed in pair order, rounded to 8 significant digits; computed in float64 from the fp32 embeddings",
}


# ---------------------------------------------------------------------------------------------
# texts shared by the fixtures


def words_prefix_with_token_count(text, count_fn, target):
    """Longest prefix of `text` ending at a word boundary (split on single spaces) whose
    token count (count_fn) is exactly `target`; None if no word boundary gives that count."""
    words = text.split(" ")
    lo, hi = 1, len(words)
    # Binary search the largest prefix with count <= target, then check equality.
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if count_fn(" ".join(words[:mid])) <= target:
            lo = mid
        else:
            hi = mid - 1
    prefix = " ".join(words[:lo])
    return prefix if count_fn(prefix) == target else None


def exact_length_text(docs, count_fn, target):
    """A real-prose text (consecutive Lee documents joined by a space, cut at a word boundary)
    with exactly `target` tokens as counted by count_fn. Tries successive starting documents."""
    for start in range(len(docs)):
        joined = ""
        for d in docs[start:]:
            joined = (joined + " " + d.strip()).strip()
            if count_fn(joined) > target + 8:
                break
        t = words_prefix_with_token_count(joined, count_fn, target)
        if t is not None:
            return t
    raise RuntimeError(f"no prefix with {target} tokens")


def joined_docs_over(docs, count_fn, minimum, start=0):
    """Consecutive real documents joined by a space until the token count exceeds `minimum`."""
    joined = ""
    for d in docs[start:]:
        joined = (joined + " " + d.strip()).strip()
        if count_fn(joined) > minimum:
            return joined
    raise RuntimeError("corpus too short")
