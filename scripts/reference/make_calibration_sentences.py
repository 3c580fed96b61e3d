"""Writes tools/data/calibration-sentences.txt: the texts `octet convert` runs through the f32
model to calibrate its int8 weights (tools/src/convert/calibrate.rs).

Every English news sentence (1,290 of at least three words) of the Lee corpus background
documents that ship in the gensim 4.4.0 wheel (lee_background.cor, LGPL-2.1; fetched by
scripts/fetch-gensim-data.sh), in order from document 150 on, so that none comes from the
documents of
tools/data/lee-sentences.txt (lee.cor and the first documents of lee_background.cor), the
corpus the recipes are measured on. Split as lee-sentences.txt was (tools/data/README.md).

Usage: python3 scripts/reference/make_calibration_sentences.py
"""

import os
import re

import common

FIRST_DOC = 150
OUT = os.path.join(os.path.dirname(__file__), "..", "..", "tools", "data", "calibration-sentences.txt")
HELD_OUT = os.path.join(os.path.dirname(__file__), "..", "..", "tools", "data", "lee-sentences.txt")

# After ., ! or ? (and an optional closing quote), before a word that starts with a capital or a quote.
SPLIT = re.compile(r"(?<=[.!?])[\"']?\s+(?=[A-Z\"'])")


def sentences(doc):
    out, start = [], 0
    for m in SPLIT.finditer(doc):
        out.append(doc[start : m.end()])
        start = m.end()
    out.append(doc[start:])
    return [" ".join(s.split()) for s in out]


def main():
    held_out = set(open(HELD_OUT, encoding="utf-8").read().splitlines())
    seen, picked = set(), []
    for doc in common.read_lee_docs("lee_background.cor")[FIRST_DOC:]:
        for s in sentences(doc):
            if len(s.split()) < 3 or s in seen or s in held_out:
                continue
            seen.add(s)
            picked.append(s)
    with open(OUT, "w", encoding="utf-8") as f:
        f.write("\n".join(picked) + "\n")
    print(f"wrote {len(picked)} sentences to {os.path.normpath(OUT)}")


if __name__ == "__main__":
    main()
