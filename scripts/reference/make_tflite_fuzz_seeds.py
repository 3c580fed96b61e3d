"""Writes small TFLite seeds for the `tflite` fuzz target (scripts/fuzz.sh): the MiniLM-shaped
BERT of make_tflite_minilm.py at a tiny size with seeded random weights (vocabulary 64, hidden
32, 2 layers of 2 heads, FFN 64, 32 positions), converted by TensorFlow's converter in float32
and dynamic-range int8. Each file is a few tens of kilobytes, so libFuzzer can mutate it, and it
is a graph the importer recognises, so mutations reach the graph walk and the tensor planning
instead of stopping at the flatbuffer verifier. Both have int8 tensors in the int8 file: the
converter quantizes constants of at least 1024 elements, and 32 x 32 is 1024.

Run (venv: scripts/reference/setup-tf-venv.sh):
  .venv-tf/bin/python scripts/reference/make_tflite_fuzz_seeds.py OUT_DIR
"""

import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
import make_tflite_minilm as minilm  # noqa: E402
import tf_bert  # noqa: E402

VOCAB, HIDDEN, LAYERS, HEADS, INNER, POSITIONS = 64, 32, 2, 2, 64, 32


def random_weights(seed=7):
    rng = np.random.default_rng(seed)

    def normal(*shape, scale=0.2):
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    w = {
        "embeddings.word_embeddings.weight": normal(VOCAB, HIDDEN, scale=1.0),
        "embeddings.position_embeddings.weight": normal(POSITIONS, HIDDEN),
        "embeddings.token_type_embeddings.weight": normal(2, HIDDEN),
        "embeddings.LayerNorm.weight": 1 + normal(HIDDEN, scale=0.1),
        "embeddings.LayerNorm.bias": normal(HIDDEN, scale=0.1),
    }
    for i in range(LAYERS):
        p = f"encoder.layer.{i}"
        for name, (n, k) in {
            "attention.self.query": (HIDDEN, HIDDEN),
            "attention.self.key": (HIDDEN, HIDDEN),
            "attention.self.value": (HIDDEN, HIDDEN),
            "attention.output.dense": (HIDDEN, HIDDEN),
            "intermediate.dense": (INNER, HIDDEN),
            "output.dense": (HIDDEN, INNER),
        }.items():
            w[f"{p}.{name}.weight"] = normal(n, k)
            w[f"{p}.{name}.bias"] = normal(n, scale=0.05)
        for norm in ("attention.output.LayerNorm", "output.LayerNorm"):
            w[f"{p}.{norm}.weight"] = 1 + normal(HIDDEN, scale=0.1)
            w[f"{p}.{norm}.bias"] = normal(HIDDEN, scale=0.1)
    return w


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    minilm.HIDDEN, minilm.LAYERS, minilm.HEADS = HIDDEN, LAYERS, HEADS
    module = minilm.build_module(random_weights())
    concrete = module.embed.get_concrete_function()
    for kind in ("f32", "int8"):
        data = tf_bert.convert(module, kind, concrete)
        path = os.path.join(out, f"seed-tiny-bert-{kind}.tflite")
        with open(path, "wb") as f:
            f.write(data)
        print(f"wrote {path} ({len(data)} bytes)", file=sys.stderr)


if __name__ == "__main__":
    main()
