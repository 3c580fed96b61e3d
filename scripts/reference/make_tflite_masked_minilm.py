"""Builds all-MiniLM-L6-v2 as a masked, fixed-length TFLite BERT, the form MediaPipe's text
embedder and Model Maker export, and (optionally) the reference fixture of the LiteRT
interpreter's embeddings.

  build      <out_dir>/minilm-masked-f32.tflite    float32
             <out_dir>/minilm-masked-int8.tflite   dynamic-range int8 (Optimize.DEFAULT, no dataset)
  metadata   <out_dir>/minilm-masked-{f32,int8}-metadata.tflite: the same files with the TFLite
             Support metadata MediaPipe's MetadataWriter writes for a BERT text model
             (add_bert_text_input: a BertTokenizer over the three inputs, vocab.txt packed);
             needs the mediapipe venv (scripts/reference/setup-mediapipe-venv.sh)
  tiny-*     tests/fixtures/tflite_masked/tiny-{mean,cls,none}-{f32,int8}.tflite, committed: tiny
             masked BERTs (random weights, 32 tokens) pooling by masked mean, row 0, or not at all,
             with MediaPipe metadata (tiny-metadata, mediapipe venv), and tiny.json, LiteRT's
             vectors of them (tiny-reference)
  tiny-onehot  tests/fixtures/tflite_masked/tiny-onehot-mean-{f32,int8}.tflite, committed: the tiny
             mean-pooling model with token-type rows made as one_hot(segment ids) @ table (TF Model
             Garden / Model Maker BERT with use_one_hot_embeddings) instead of a GATHER, no
             metadata; and tiny-onehot.json, LiteRT's vectors of the tiny texts
  reference  tests/fixtures/tflite_masked/reference.json: the LiteRT interpreter's embeddings
             (builtin kernels, and XNNPACK summarised) of texts of 5-128 tokens, each padded to
             128 with its mask, for the f32 and int8 files, with the sha256 of each file

The model is make_tflite_minilm.py's TensorFlow BERT with the weights of the sentence-transformers
folder, changed to take what MediaPipe's BERT preprocessor feeds:

  inputs  "input_word_ids" int32 [1, 128] (token ids, 0 = [PAD] after the text),
          "input_mask" int32 [1, 128] (1 for the text's tokens, 0 for padding),
          "input_type_ids" int32 [1, 128] (segment ids, 0 for a single text)
  body    word rows + position[:128] + GATHER(token_type table [2, 384], segment ids) -> LayerNorm;
          each attention adds (1 - cast(mask)) * -10000 to its scores (BERT's extended mask)
  output  "embedding" float32 [1, 384]: the masked mean sum(x * mask) / sum(mask), then L2
          normalisation (sentence-transformers' Pooling + Normalize over the real tokens)

Run (venv: scripts/reference/setup-tf-venv.sh; the weights: scripts/fetch-minilm.sh):
  .venv-tf/bin/python scripts/reference/make_tflite_masked_minilm.py build [--out DIR]
  .venv-mediapipe/bin/python scripts/reference/make_tflite_masked_minilm.py metadata [--out DIR]
  .venv-tf/bin/python scripts/reference/make_tflite_masked_minilm.py reference [--out DIR]
DIR defaults to ${OCTET_CACHE:-~/.cache/octet}/sources/all-MiniLM-L6-v2-tflite-masked.
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
DEFAULT_OUT = os.path.join(CACHE, "sources", "all-MiniLM-L6-v2-tflite-masked")
MINILM_FIXTURE = os.path.join(REPO, "tests", "fixtures", "minilm", "reference.json")
FIXTURE = os.path.join(REPO, "tests", "fixtures", "tflite_masked", "reference.json")
FILES = {"f32": "minilm-masked-f32.tflite", "int8": "minilm-masked-int8.tflite"}
INPUTS = ("input_word_ids", "input_mask", "input_type_ids")

SEQ = 128
HIDDEN, LAYERS, HEADS, EPS = 384, 6, 12, 1e-12
# The pooling inside the graph: "mean" (masked mean), "cls" (row 0), "none" (the token vectors).
POOLING = "mean"
TINY_DIR = os.path.join(REPO, "tests", "fixtures", "tflite_masked")
TINY_FIXTURE = os.path.join(TINY_DIR, "tiny.json")
TINY_POOLINGS = ("mean", "cls", "none")
# How the token-type rows are made: "gather" (a look-up by segment id) or "one_hot" (a one-hot
# matrix times the table; only tiny-onehot-*).
SEGMENTS = "gather"
TINY_ONE_HOT_FILES = {k: os.path.join(TINY_DIR, f"tiny-onehot-mean-{k}.tflite") for k in FILES}
TINY_ONE_HOT_FIXTURE = os.path.join(TINY_DIR, "tiny-onehot.json")
# Digests of this script's build on other CPUs (see scripts/fetch-tflite-masked-minilm.sh): the
# reference keeps them so the test accepts any known build of the files it was run on.
OTHER_BUILDS_SHA256 = {
    "f32": ["e92f8bf09a91779bb4dcad88fb13791a8289c527338da5458ff3479e134c75d0",
            "d169d699daa1d7691d50092f00b5300a69efe2efe974bb7ad1f14cec68f94adb"],
    "int8": ["c778366062bfbc557406e5bacd2454fd999cbe6fbbd0af233f3941af2aab2286",
             "da0f10d7c2c31c1adb52aaae6e8a751247004c9753617f90ad1f0a1d97867db6"],
}
# 1980-01-01 00:00:00 UTC, the earliest time a zip entry can record (pins the metadata's zip).
ZIP_EPOCH = 315532800


def load_weights():
    return tf_bert.load_weights(SOURCE)


def build_module(w):
    """make_tflite_minilm.py's BERT at this file's sizes (SEQ, HIDDEN, LAYERS, HEADS) with the
    three masked inputs and the POOLING in force."""
    import tensorflow as tf

    class MaskedMiniLM(tf.Module):
        def __init__(self):
            super().__init__()
            tf_bert.attach_weights(self, w, LAYERS)

        @tf.function(
            input_signature=[
                tf.TensorSpec([1, SEQ], tf.int32, name=INPUTS[0]),
                tf.TensorSpec([1, SEQ], tf.int32, name=INPUTS[1]),
                tf.TensorSpec([1, SEQ], tf.int32, name=INPUTS[2]),
            ]
        )
        def embed(self, input_word_ids, input_mask, input_type_ids):
            ids = tf.reshape(input_word_ids, [-1])
            segments = tf.reshape(input_type_ids, [-1])
            mask = tf.cast(tf.reshape(input_mask, [-1]), tf.float32)
            if SEGMENTS == "one_hot":
                # TF Model Garden / Model Maker BERT with use_one_hot_embeddings: one-hot rows times
                # the token-type table instead of a look-up.
                types = self.token_type.shape[0]
                token_type = tf.matmul(tf.one_hot(segments, types, dtype=tf.float32), self.token_type)
            else:
                token_type = tf.gather(self.token_type, segments)
            x = tf.gather(self.word, ids) + self.position[:SEQ] + token_type
            x = tf_bert.layer_norm(x, self.norm, EPS)
            # BERT's extended attention mask: 0 for real keys, -10000 for padding.
            bias = tf.reshape((1.0 - mask) * -10000.0, [1, 1, SEQ])
            x = tf_bert.encoder_layers(self, x, HIDDEN, HEADS, EPS, bias)
            if POOLING == "none":
                return {"hidden_states": tf.reshape(x, [1, SEQ, HIDDEN])}
            if POOLING == "cls":
                return {"embedding": tf.math.l2_normalize(x[:1], axis=-1)}
            weights = tf.reshape(mask, [-1, 1])
            pooled = tf.reduce_sum(x * weights, axis=0, keepdims=True) / tf.maximum(tf.reduce_sum(weights), 1e-9)
            return {"embedding": tf.math.l2_normalize(pooled, axis=-1)}

    return MaskedMiniLM()


def build(out_dir):
    tf_bert.write_files(build_module(load_weights()), FILES, out_dir, sha256_file)


def metadata(out_dir):
    """Writes the *-metadata.tflite files with MediaPipe's MetadataWriter (BERT text input)."""
    import time
    from unittest import mock

    os.environ["TZ"] = "UTC"
    time.tzset()
    from mediapipe.tasks.python.metadata.metadata_writers import metadata_writer as mw

    vocab = os.path.join(SOURCE, "vocab.txt")
    for kind, name in FILES.items():
        with open(os.path.join(out_dir, name), "rb") as f:
            model = bytearray(f.read())
        writer = mw.MetadataWriter.create(model)
        writer.add_general_info(
            "all-MiniLM-L6-v2 (masked, fixed length 128)",
            "Sentence embedding model: masked mean-pooled, L2-normalised 384-d vectors.",
        )
        # TensorFlow names the inputs after the signature: serving_default_<name>:0.
        writer.add_bert_text_input(mw.BertTokenizer(vocab), *(f"serving_default_{n}:0" for n in INPUTS))
        writer.add_feature_output(name="embedding", description="The sentence embedding.")
        with mock.patch("time.time", return_value=float(ZIP_EPOCH)):
            out, _ = writer.populate()
        dest = os.path.join(out_dir, name.replace(".tflite", "-metadata.tflite"))
        with open(dest + ".tmp", "wb") as f:
            f.write(out)
        os.replace(dest + ".tmp", dest)
        print(f"wrote {dest} ({len(out)} bytes, sha256 {sha256_file(dest)})", file=sys.stderr)


def texts():
    """Texts of 5 to 128 tokens: the MiniLM fixture's texts (longer ones cut at 128 tokens by the
    tokenizer; sentence-transformers' embedding is kept only for the ones not cut), and word
    prefixes of all of them joined, as long as fits in 8, 16, ..., 128 tokens."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(os.path.join(SOURCE, "tokenizer.json"))
    tok.enable_truncation(SEQ)
    tok.no_padding()
    with open(MINILM_FIXTURE) as f:
        minilm = json.load(f)
    out = []
    for t in minilm["texts"]:
        ids = tok.encode(t["text"]).ids
        if len(ids) < 5:
            continue
        item = {"id": t["id"], "text": t["text"], "token_ids": ids}
        if ids == t["token_ids"]:
            item["st_embedding"] = t["embedding"]
        out.append(item)
    words = " ".join(t["text"] for t in minilm["texts"]).split()
    for k, target in enumerate(range(8, SEQ + 1, 8)):
        start = (k * 37) % (len(words) - 200)
        n = 1
        while len(tok.encode(" ".join(words[start : start + n + 1])).ids) <= target and n < 200:
            n += 1
        text = " ".join(words[start : start + n])
        out.append({"id": f"joined-{target}", "text": text, "token_ids": tok.encode(text).ids})
    return out


def run_interpreter(path, token_ids, delegates):
    """Embeds each token-id list padded to SEQ with its mask and zero segment ids."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    kwargs = {} if delegates else {"experimental_op_resolver_type": OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES}
    interp = Interpreter(model_path=path, num_threads=1, **kwargs)
    interp.allocate_tensors()
    by_name = {d["name"]: d["index"] for d in interp.get_input_details()}
    index = {role: next(i for n, i in by_name.items() if role in n) for role in INPUTS}
    out = interp.get_output_details()[0]
    embeddings = []
    for ids in token_ids:
        n = len(ids)
        padded = np.zeros([1, SEQ], np.int32)
        padded[0, :n] = ids
        mask = np.zeros([1, SEQ], np.int32)
        mask[0, :n] = 1
        interp.set_tensor(index[INPUTS[0]], padded)
        interp.set_tensor(index[INPUTS[1]], mask)
        interp.set_tensor(index[INPUTS[2]], np.zeros([1, SEQ], np.int32))
        interp.invoke()
        embeddings.append(interp.get_tensor(out["index"])[0].astype(np.float32))
    return np.stack(embeddings)


def reference(out_dir):
    items = texts()
    ids = [t["token_ids"] for t in items]
    with_st = [i for i, t in enumerate(items) if "st_embedding" in t]
    st = np.array([items[i]["st_embedding"] for i in with_st], dtype=np.float32)
    models = {}
    for kind, name in FILES.items():
        path = os.path.join(out_dir, name)
        emb = run_interpreter(path, ids, delegates=False)
        xnn = run_interpreter(path, ids, delegates=True)
        cos = cosines(emb[with_st], st)
        cos_xnn = cosines(xnn, emb)
        print(f"{kind}: vs sentence-transformers mean {cos.mean():.6f} min {cos.min():.6f}; "
              f"XNNPACK vs builtin mean {cos_xnn.mean():.6f} min {cos_xnn.min():.6f}", file=sys.stderr)
        models[kind] = {
            "file": name,
            "bytes": os.path.getsize(path),
            "sha256": sha256_file(path),
            # The same build on other CPUs (TensorFlow's converter writes other bytes there).
            "other_builds_sha256": [d for d in OTHER_BUILDS_SHA256[kind] if d != sha256_file(path)],
            "vs_sentence_transformers": {"mean_cosine": float(cos.mean()), "min_cosine": float(cos.min())},
            "xnnpack_vs_builtin": {"mean_cosine": float(cos_xnn.mean()), "min_cosine": float(cos_xnn.min())},
            "embeddings": [[float(f"{v:.9g}") for v in row] for row in emb.tolist()],
            # XNNPACK's embeddings too, so octet can be compared with both.
            "xnnpack_embeddings": [[float(f"{v:.9g}") for v in row] for row in xnn.tolist()],
        }
    doc = {
        "schema": "octet-tflite-masked-reference/1",
        "generator": "scripts/reference/make_tflite_masked_minilm.py",
        "model": "sentence-transformers/all-MiniLM-L6-v2 as a masked, fixed-length (128) TensorFlow BERT "
        "with three int32 inputs, converted with tf.lite.TFLiteConverter",
        "input": "input_word_ids, input_mask, input_type_ids int32 [1, 128]: ids padded with 0, mask 1 on the "
        "text's tokens, segment ids 0",
        "output": "embedding float32 [1, 384], masked mean and L2 normalisation inside the model",
        "interpreter": "ai_edge_litert.interpreter.Interpreter(num_threads=1): 'embeddings' with the builtin kernels "
        "only (OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES); 'xnnpack_embeddings' with the default "
        "XNNPACK delegate",
        "versions": {
            "python": platform.python_version(),
            **{p: importlib.metadata.version(p) for p in ("tensorflow-cpu", "ai-edge-litert", "numpy", "tokenizers")},
        },
        "texts": [
            {
                "id": t["id"],
                "text": t["text"],
                "token_ids": t["token_ids"],
                **({"st_embedding": t["st_embedding"]} if "st_embedding" in t else {}),
            }
            for t in items
        ],
        "models": models,
    }
    write_compact_json(FIXTURE, doc)


def tiny_files():
    return {(p, k): os.path.join(TINY_DIR, f"tiny-{p}-{k}.tflite") for p in TINY_POOLINGS for k in FILES}


def tiny_setup():
    """The tiny sizes of make_tflite_fuzz_seeds.py (vocabulary 64, hidden 32, 2 layers of 2
    heads), a fixed length of 32 and its seeded random weights."""
    global SEQ, HIDDEN, LAYERS, HEADS
    sys.path.insert(0, os.path.dirname(__file__))
    import make_tflite_fuzz_seeds as seeds

    SEQ, HIDDEN, LAYERS, HEADS = seeds.POSITIONS, seeds.HIDDEN, seeds.LAYERS, seeds.HEADS
    return seeds.random_weights()


def tiny_build():
    """tests/fixtures/tflite_masked/tiny-{mean,cls,none}-{f32,int8}.tflite: tiny masked BERTs with
    each pooling (the metadata is added by `tiny-metadata`, in the mediapipe venv)."""
    global POOLING
    w = tiny_setup()
    for (pooling, kind), path in tiny_files().items():
        POOLING = pooling
        data = tf_bert.convert(build_module(w), kind)
        with open(path, "wb") as f:
            f.write(data)
        print(f"wrote {path} ({len(data)} bytes)", file=sys.stderr)


def tiny_metadata():
    """Rewrites the tiny files with MediaPipe's BERT text metadata and a 64-word vocab
    ([PAD] [UNK] [CLS] [SEP] [MASK] w0 .. w58), so they convert with no option."""
    import tempfile
    import time
    from unittest import mock

    os.environ["TZ"] = "UTC"
    time.tzset()
    from mediapipe.tasks.python.metadata.metadata_writers import metadata_writer as mw

    with tempfile.TemporaryDirectory() as tmp:
        vocab = os.path.join(tmp, "vocab.txt")
        with open(vocab, "w") as f:
            f.write("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"w{i}" for i in range(59)]) + "\n")
        for (pooling, _), path in tiny_files().items():
            with open(path, "rb") as f:
                writer = mw.MetadataWriter.create(bytearray(f.read()))
            writer.add_general_info(f"tiny masked BERT ({pooling} pooling)", "Random weights, for tests.")
            writer.add_bert_text_input(mw.BertTokenizer(vocab), *(f"serving_default_{n}:0" for n in INPUTS))
            writer.add_feature_output(name="output", description="The embedding or the token vectors.")
            with mock.patch("time.time", return_value=float(ZIP_EPOCH)):
                out, _ = writer.populate()
            with open(path, "wb") as f:
                f.write(out)
            print(f"wrote {path} with metadata ({len(out)} bytes)", file=sys.stderr)


def tiny_reference():
    """tests/fixtures/tflite_masked/tiny.json: LiteRT (builtin kernels) on seeded random texts of
    the tiny vocab, 1 to 30 words ([CLS] w.. [SEP]), padded to 32 with their mask. For `none`,
    the vector is the mean of the interpreter's token vectors over the text's tokens (what a
    caller pools), unnormalised."""
    tiny_setup()
    texts = tiny_texts()
    doc = {
        "schema": "octet-tflite-masked-tiny/1",
        "generator": "scripts/reference/make_tflite_masked_minilm.py tiny-build, tiny-metadata, tiny-reference",
        "versions": {p: importlib.metadata.version(p) for p in ("tensorflow-cpu", "ai-edge-litert", "numpy")},
        "texts": texts,
        "models": tiny_vectors(tiny_files(), texts),
    }
    write_compact_json(TINY_FIXTURE, doc)


def tiny_texts():
    """Seeded random texts of the tiny vocab, 1 to 30 words ([CLS] w.. [SEP])."""
    rng = np.random.default_rng(11)
    texts = []
    for n in [1, 2, 3, 5, 8, 13, 21, 30] * 2:
        words = rng.integers(0, 59, n)
        texts.append({"text": " ".join(f"w{i}" for i in words), "token_ids": [2] + [5 + int(i) for i in words] + [3]})
    return texts


def tiny_vectors(files, texts):
    """{pooling-kind: file, sha256, LiteRT's vectors} for {(pooling, kind): path} of `files`."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    models = {}
    for (pooling, kind), path in files.items():
        interp = Interpreter(
            model_path=path, num_threads=1, experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        )
        interp.allocate_tensors()
        by_name = {d["name"]: d["index"] for d in interp.get_input_details()}
        index = {role: next(i for n, i in by_name.items() if role in n) for role in INPUTS}
        out = interp.get_output_details()[0]
        vectors = []
        for t in texts:
            ids = t["token_ids"]
            n = len(ids)
            padded, mask = np.zeros([1, SEQ], np.int32), np.zeros([1, SEQ], np.int32)
            padded[0, :n], mask[0, :n] = ids, 1
            interp.set_tensor(index[INPUTS[0]], padded)
            interp.set_tensor(index[INPUTS[1]], mask)
            interp.set_tensor(index[INPUTS[2]], np.zeros([1, SEQ], np.int32))
            interp.invoke()
            y = interp.get_tensor(out["index"]).astype(np.float32)
            v = y[0, :n].mean(axis=0) if pooling == "none" else y[0]
            vectors.append([float(f"{x:.9g}") for x in v])
        models[f"{pooling}-{kind}"] = {"file": os.path.basename(path), "sha256": sha256_file(path), "embeddings": vectors}
    return models


def tiny_onehot():
    """tests/fixtures/tflite_masked/tiny-onehot-mean-{f32,int8}.tflite and tiny-onehot.json: the
    tiny mean-pooling model with its token-type rows made as one_hot(segment ids) @ table (no
    metadata: converted with the tokenizer.json of the tiny files' vocab), and LiteRT's vectors
    of tiny_texts() padded to 32."""
    global POOLING, SEGMENTS
    w = tiny_setup()
    POOLING, SEGMENTS = "mean", "one_hot"
    for kind, path in TINY_ONE_HOT_FILES.items():
        data = tf_bert.convert(build_module(w), kind)
        with open(path, "wb") as f:
            f.write(data)
        print(f"wrote {path} ({len(data)} bytes)", file=sys.stderr)
    texts = tiny_texts()
    doc = {
        "schema": "octet-tflite-masked-tiny/1",
        "generator": "scripts/reference/make_tflite_masked_minilm.py tiny-onehot",
        "versions": {p: importlib.metadata.version(p) for p in ("tensorflow-cpu", "ai-edge-litert", "numpy")},
        "texts": texts,
        "models": tiny_vectors({("onehot-mean", k): p for k, p in TINY_ONE_HOT_FILES.items()}, texts),
    }
    write_compact_json(TINY_ONE_HOT_FIXTURE, doc)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "what", choices=["build", "metadata", "reference", "tiny-build", "tiny-metadata", "tiny-reference", "tiny-onehot"]
    )
    ap.add_argument("--out", default=DEFAULT_OUT, help="folder of the .tflite files")
    args = ap.parse_args()
    tiny = {
        "tiny-build": tiny_build,
        "tiny-metadata": tiny_metadata,
        "tiny-reference": tiny_reference,
        "tiny-onehot": tiny_onehot,
    }
    if args.what in tiny:
        tiny[args.what]()
    else:
        {"build": build, "metadata": metadata, "reference": reference}[args.what](args.out)


if __name__ == "__main__":
    main()
