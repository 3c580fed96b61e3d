"""Builds all-MiniLM-L6-v2 as TFLite files with TensorFlow's converter, and (optionally) the
reference fixture of the LiteRT interpreter's embeddings.

  build      <out_dir>/minilm-f32.tflite    float32
             <out_dir>/minilm-int8.tflite   dynamic-range int8 (Optimize.DEFAULT, no dataset)
  reference  tests/fixtures/tflite/reference.json: the LiteRT interpreter's embeddings of the
             MiniLM fixture texts (token ids from tests/fixtures/minilm/reference.json) for both
             files, with the sha256 of each file

The model is the BERT forward written in TensorFlow (transformers 5 has no TF classes), with the
weights of the sentence-transformers folder (model.safetensors):

  input   "input_ids": int32 [1, n], n dynamic (1..512); no attention mask: one unpadded text
          per call, as octet runs it
  body    word + position[:n] + token_type[0] embeddings -> LayerNorm(eps 1e-12), then 6 post-LN
          layers: Q, K, V (x @ W + b, which the converter turns into FULLY_CONNECTED), scaled
          dot-product attention over 12 heads of 32, output projection, residual, LayerNorm,
          GELU (erf) FFN 384 -> 1536 -> 384, residual, LayerNorm
  output  "embedding": float32 [1, 384]: mean over the n tokens, then L2 normalisation, as
          sentence-transformers' Pooling + Normalize modules (pooling lives in the model, like
          the browser's embedding model whose output is [1, 768])

Run (venv: scripts/reference/setup-tf-venv.sh; the weights: scripts/fetch-minilm.sh):
  .venv-tf/bin/python scripts/reference/make_tflite_minilm.py build [--out DIR]
  .venv-tf/bin/python scripts/reference/make_tflite_minilm.py reference [--out DIR]
DIR defaults to ${OCTET_CACHE:-~/.cache/octet}/sources/all-MiniLM-L6-v2-tflite.
"""

import argparse
import importlib.metadata
import json
import os
import platform
import sys

from env import CACHE, REPO, cosines, quiet_tensorflow, sha256_file, write_compact_json

quiet_tensorflow()

import numpy as np  # noqa: E402
import tf_bert  # noqa: E402

SOURCE = os.path.join(CACHE, "sources", "all-MiniLM-L6-v2")
DEFAULT_OUT = os.path.join(CACHE, "sources", "all-MiniLM-L6-v2-tflite")
MINILM_FIXTURE = os.path.join(REPO, "tests", "fixtures", "minilm", "reference.json")
FIXTURE = os.path.join(REPO, "tests", "fixtures", "tflite", "reference.json")
FILES = {"f32": "minilm-f32.tflite", "int8": "minilm-int8.tflite"}

HIDDEN, LAYERS, HEADS, EPS = 384, 6, 12, 1e-12


def load_weights():
    return tf_bert.load_weights(SOURCE)


def build_module(w):
    """The module at this file's sizes (HIDDEN, LAYERS, HEADS: make_tflite_fuzz_seeds.py shrinks
    them before calling)."""
    import tensorflow as tf

    class MiniLM(tf.Module):
        def __init__(self):
            super().__init__()
            tf_bert.attach_weights(self, w, LAYERS)

        @tf.function(input_signature=[tf.TensorSpec([1, None], tf.int32, name="input_ids")])
        def embed(self, input_ids):
            ids = tf.reshape(input_ids, [-1])
            n = tf.shape(ids)[0]
            x = tf.gather(self.word, ids) + self.position[:n] + self.token_type[0]
            x = tf_bert.layer_norm(x, self.norm, EPS)
            x = tf_bert.encoder_layers(self, x, HIDDEN, HEADS, EPS)
            pooled = tf.reduce_mean(x, axis=0, keepdims=True)
            return {"embedding": tf.math.l2_normalize(pooled, axis=-1)}

    return MiniLM()


def build(out_dir):
    tf_bert.write_files(build_module(load_weights()), FILES, out_dir, sha256_file)


def run_interpreter(path, token_ids, delegates):
    """Embeds each token-id list; `delegates`: LiteRT's default (XNNPACK), else its builtin
    reference kernels only (BUILTIN_WITHOUT_DEFAULT_DELEGATES)."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    kwargs = {} if delegates else {"experimental_op_resolver_type": OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES}
    interp = Interpreter(model_path=path, num_threads=1, **kwargs)
    inp = interp.get_input_details()[0]
    out = interp.get_output_details()[0]
    embeddings = []
    for ids in token_ids:
        interp.resize_tensor_input(inp["index"], [1, len(ids)])
        interp.allocate_tensors()
        interp.set_tensor(inp["index"], np.array([ids], dtype=np.int32))
        interp.invoke()
        embeddings.append(interp.get_tensor(out["index"])[0].astype(np.float32))
    return np.stack(embeddings)


def reference(out_dir):
    with open(MINILM_FIXTURE) as f:
        minilm = json.load(f)
    texts = minilm["texts"]
    ids = [t["token_ids"] for t in texts]
    st = np.array([t["embedding"] for t in texts], dtype=np.float32)
    models = {}
    for kind, name in FILES.items():
        path = os.path.join(out_dir, name)
        emb = run_interpreter(path, ids, delegates=False)
        xnn = run_interpreter(path, ids, delegates=True)
        cos = cosines(emb, st)
        cos_xnn = cosines(xnn, emb)
        print(f"{kind}: vs sentence-transformers cosine mean {cos.mean():.6f} min {cos.min():.6f}; "
              f"XNNPACK vs builtin kernels mean {cos_xnn.mean():.6f} min {cos_xnn.min():.6f}", file=sys.stderr)
        models[kind] = {
            "file": name,
            "bytes": os.path.getsize(path),
            "sha256": sha256_file(path),
            "vs_sentence_transformers": {"mean_cosine": float(cos.mean()), "min_cosine": float(cos.min())},
            "xnnpack_vs_builtin": {"mean_cosine": float(cos_xnn.mean()), "min_cosine": float(cos_xnn.min())},
            # The builtin kernels' embeddings (float32 printed with 9 significant digits
            # round-trips exactly); the XNNPACK run is summarised above only.
            "embeddings": [[float(f"{v:.9g}") for v in row] for row in emb.tolist()],
        }
    doc = {
        "schema": "octet-tflite-reference/1",
        "generator": "scripts/reference/make_tflite_minilm.py",
        "model": "sentence-transformers/all-MiniLM-L6-v2 as a TensorFlow BERT, converted with tf.lite.TFLiteConverter",
        "input": "input_ids int32 [1, n], n = the text's token count (no padding, no mask)",
        "output": "embedding float32 [1, 384], mean-pooled and L2-normalised inside the model",
        "interpreter": "ai_edge_litert.interpreter.Interpreter(num_threads=1): 'embeddings' with the builtin kernels only "
        "(OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES, the reference hybrid kernels); "
        "'xnnpack_vs_builtin' compares the default run (XNNPACK delegate) with them",
        "versions": {
            "python": platform.python_version(),
            **{p: importlib.metadata.version(p) for p in ("tensorflow-cpu", "ai-edge-litert", "numpy")},
        },
        "texts": [{"id": t["id"], "token_ids": t["token_ids"]} for t in texts],
        "models": models,
    }
    write_compact_json(FIXTURE, doc)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["build", "reference"])
    ap.add_argument("--out", default=DEFAULT_OUT, help="folder of the .tflite files")
    args = ap.parse_args()
    if args.what == "build":
        build(args.out)
    else:
        reference(args.out)


if __name__ == "__main__":
    main()
