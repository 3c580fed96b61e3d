"""Trains a small SentencePiece Unigram model and records its ids on 1,000 strings, for the
SentencePiece-to-tokenizer.json conversion (tflite/src/sentencepiece.rs).

  tests/fixtures/sentencepiece/unigram.model   the trained ModelProto (vocab 1000, nmt_nfkc)
  tests/fixtures/sentencepiece/ids.json        1,000 strings and sentencepiece's ids for each
                                               (sp.encode(text) plus the </s> id T5 appends)

The training text is the MiniLM fixture's texts; the strings mix its sentences, slices of them,
runs of spaces, leading and trailing spaces, NFKC-affected characters (full-width letters,
ligatures, compatibility digits), accents, unseen scripts and digits. Seeded: the same files each
run on the same sentencepiece version.

Run (a venv with sentencepiece, e.g. scripts/reference/setup-mediapipe-venv.sh's):
  python scripts/reference/make_sentencepiece_fixture.py
"""

import importlib.metadata
import io
import json
import os
import random

import sentencepiece as spm

from env import REPO

OUT = os.path.join(REPO, "tests", "fixtures", "sentencepiece")
MINILM_FIXTURE = os.path.join(REPO, "tests", "fixtures", "minilm", "reference.json")
EXTRAS = ["ｆｕｌｌ ｗｉｄｔｈ", "ﬁne ﬂow", "①②③ ½", "café naïve résumé", "Ωμέγα λόγος", "東京 大阪", "😀 emoji",
          "ÀÉÎÕÜ", "x²+y³", "tab\there", "new\nline", "</s> <unk> <pad>", "ｈｅｌｌｏ　ｗｏｒｌｄ", "3.14159", "C++ & C#"]


def main():
    with open(MINILM_FIXTURE) as f:
        texts = [t["text"] for t in json.load(f)["texts"]]
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(texts * 4),
        model_writer=model,
        vocab_size=1000,
        model_type="unigram",
        character_coverage=0.9995,
        normalization_rule_name="nmt_nfkc",
        unk_id=2,
        bos_id=-1,
        eos_id=1,
        pad_id=0,
        num_threads=1,
        seed_sentencepiece_size=100000,
        shuffle_input_sentence=False,
    )
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "unigram.model"), "wb") as f:
        f.write(model.getvalue())
    sp = spm.SentencePieceProcessor(model_proto=model.getvalue())
    rng = random.Random(5)
    strings = []
    words = " ".join(texts).split()
    while len(strings) < 1000:
        k = len(strings) % 5
        if k == 0:
            s = rng.choice(texts)
        elif k == 1:
            i = rng.randrange(len(words))
            s = " ".join(words[i : i + rng.randint(1, 12)])
        elif k == 2:
            s = rng.choice([" ", "  ", "   "]).join(rng.sample(words, rng.randint(1, 6)))
            s = rng.choice(["", " ", "  "]) + s + rng.choice(["", " ", "   "])
        elif k == 3:
            s = rng.choice(EXTRAS) + " " + rng.choice(words) + rng.choice(["", " " + rng.choice(EXTRAS)])
        else:
            s = "".join(rng.choice(words + EXTRAS + ["-", ",", ".", "'", "\"", "(", ")"]) for _ in range(rng.randint(1, 5)))
        strings.append(s)
    doc = {
        "generator": "scripts/reference/make_sentencepiece_fixture.py",
        "sentencepiece": importlib.metadata.version("sentencepiece"),
        "eos_id": sp.eos_id(),
        "strings": [{"text": s, "ids": sp.encode(s) + [sp.eos_id()]} for s in strings],
    }
    with open(os.path.join(OUT, "ids.json"), "w") as f:
        json.dump(doc, f, ensure_ascii=False, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {OUT}/unigram.model ({len(model.getvalue())} bytes) and ids.json")


if __name__ == "__main__":
    main()
