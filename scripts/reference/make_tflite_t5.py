"""Builds T5-style encoders as TFLite files with TensorFlow's converter, shaped like the browser's
embedding model: a [32128, d] token table, one int32 input [1, 64] of token ids padded with 0,
masked attention and masked mean pooling inside the model, an L2-normalised vector out. No T5
weights ship in any package, so the weights are random with a fixed seed.

  build        <out>/t5-<variant>-f32.tflite    float32
               <out>/t5-<variant>-int8.tflite   dynamic-range int8 (Optimize.DEFAULT, no dataset):
                                                int8 token table behind DEQUANTIZE, int8 weights
               <out>/t5-<variant>-hf/           the same weights as a sentence-transformers folder
                                                (T5EncoderModel config + safetensors, the T5 fixture
                                                tokenizer, pooling, Dense, Normalize), which octet's
                                                own T5 path and transformers can read
  reference    tests/fixtures/tflite_t5/reference.json: the token ids of the test inputs and the
               LiteRT interpreter's embeddings of them for each file
  transformers adds transformers' T5EncoderModel + sentence-transformers pooling of the same
               weights to the fixture (run with the reference venv, .venv-ref, which has torch)

Variants:
  gated  T5 v1.1: gated GELU (tanh) FFN, d_model 64, 4 heads of 16, d_ff 128, 2 layers, 32 buckets
         up to distance 128 (the T5 defaults), then a Dense 64 -> 96 (no bias) after pooling, as
         the browser's model goes from its width to a longer vector
  relu   original T5: ReLU FFN, d_model 64, 3 heads of 16 (attention width 48 != 64), d_ff 96,
         2 layers, 16 buckets up to distance 24 (so relative distances inside 64 tokens pass
         max_distance), no Dense

Every variant has vocabulary 32128 (T5's SentencePiece size). The model, written with TensorFlow
ops the way transformers' T5 computes it:

  input   "input_ids" int32 [1, 64]; 0 is padding (T5's pad id), a text fills a prefix
  mask    ids != 0; attention adds (1 - mask) * -1e9 to every key column
  body    gather(table, ids); per layer (pre-norm, residual): RMSNorm (x * rsqrt(mean(x^2) + 1e-6)
          * w), Q, K, V without bias, scores = q k^T (no scaling) + relative-position bias (T5's
          bidirectional buckets of key - query position, one table [buckets, heads] shared by all
          layers) + mask bias, softmax, output projection; RMSNorm, FFN; final RMSNorm
  output  "embedding" float32 [1, d]: the mean over the unmasked tokens, [Dense], L2 normalisation

The relative positions of a fixed-length input are constants, so the converter folds the bucket
arithmetic and the table look-up into one [1, heads, 64, 64] bias constant.

Run (venv: scripts/reference/setup-tf-venv.sh; no download):
  .venv-tf/bin/python scripts/reference/make_tflite_t5.py build [--out DIR]
  .venv-tf/bin/python scripts/reference/make_tflite_t5.py reference [--out DIR]
  HF_HUB_OFFLINE=1 .venv-ref/bin/python scripts/reference/make_tflite_t5.py transformers [--out DIR]
DIR defaults to ${OCTET_CACHE:-~/.cache/octet}/sources/t5-tflite.
"""

import argparse
import importlib.metadata
import json
import math
import os
import platform
import shutil
import sys

from env import CACHE, REPO, cosines, quiet_tensorflow, sha256_file, write_compact_json

quiet_tensorflow()

import numpy as np  # noqa: E402

DEFAULT_OUT = os.path.join(CACHE, "sources", "t5-tflite")
FIXTURE = os.path.join(REPO, "tests", "fixtures", "tflite_t5", "reference.json")
TOKENIZER = os.path.join(REPO, "tests", "fixtures", "t5", "gated", "model", "tokenizer.json")
SENTENCES = os.path.join(REPO, "tools", "data", "lee-sentences.txt")

VOCAB, SEQ, PAD, EPS, NEG = 32128, 64, 0, 1e-6, -1e9
VARIANTS = {
    "gated": dict(seed=6001, ffn="gated-gelu", d_model=64, d_kv=16, heads=4, d_ff=128, layers=2, buckets=32, max_distance=128, dense=96),
    "relu": dict(seed=6002, ffn="relu", d_model=64, d_kv=16, heads=3, d_ff=96, layers=2, buckets=16, max_distance=24, dense=None),
}
KINDS = ("f32", "int8")
TEXTS = 72  # texts cut from the Lee sentences at varied lengths
RANDOM_INPUTS = 16  # id sequences drawn over the whole table


def file_name(variant, kind):
    return f"t5-{variant}-{kind}.tflite"


def random_weights(v):
    """Seeded weights in transformers' T5 names, at sizes where attention is sharp and the position
    bias matters (as scripts/reference/make_t5_fixtures.py draws them), rounded to float16 values
    so the safetensors copy is exact in F16."""
    rng = np.random.default_rng(v["seed"])
    d, inner, ff = v["d_model"], v["heads"] * v["d_kv"], v["d_ff"]

    def normal(shape, std, mean=0.0):
        return (rng.standard_normal(shape) * std + mean).astype(np.float16).astype(np.float32)

    w = {
        "shared.weight": normal((VOCAB, d), 1.0),
        "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight": normal((v["buckets"], v["heads"]), 1.0),
        "encoder.final_layer_norm.weight": normal((d,), 0.2, 1.0),
    }
    for i in range(v["layers"]):
        b = f"encoder.block.{i}.layer"
        w[f"{b}.0.layer_norm.weight"] = normal((d,), 0.2, 1.0)
        for part in ("q", "k"):
            w[f"{b}.0.SelfAttention.{part}.weight"] = normal((inner, d), 0.1)
        w[f"{b}.0.SelfAttention.v.weight"] = normal((inner, d), d**-0.5)
        w[f"{b}.0.SelfAttention.o.weight"] = normal((d, inner), inner**-0.5)
        w[f"{b}.1.layer_norm.weight"] = normal((d,), 0.2, 1.0)
        ffn = f"{b}.1.DenseReluDense"
        if v["ffn"].startswith("gated"):
            w[f"{ffn}.wi_0.weight"] = normal((ff, d), d**-0.5)
            w[f"{ffn}.wi_1.weight"] = normal((ff, d), d**-0.5)
        else:
            w[f"{ffn}.wi.weight"] = normal((ff, d), d**-0.5)
        w[f"{ffn}.wo.weight"] = normal((d, ff), ff**-0.5)
    dense = normal((v["dense"], d), d**-0.5) if v["dense"] else None
    return w, dense


def build_module(v, w, dense):
    import tensorflow as tf

    heads, d_kv = v["heads"], v["d_kv"]
    inner = heads * d_kv
    gated = v["ffn"].startswith("gated")

    def kernel(name):
        # [in, out]: the PyTorch weight transposed, so x @ W is a FULLY_CONNECTED.
        return tf.constant(w[name].T.copy())

    def bucket(relative):
        """transformers' T5Attention._relative_position_bucket, bidirectional, in TF ops."""
        half = v["buckets"] // 2
        base = tf.cast(relative > 0, tf.int32) * half
        distance = tf.abs(relative)
        exact = half // 2
        large = exact + tf.cast(
            tf.math.log(tf.cast(distance, tf.float32) / exact) / math.log(v["max_distance"] / exact) * (half - exact),
            tf.int32,
        )
        large = tf.minimum(large, half - 1)
        return base + tf.where(distance < exact, distance, large)

    class T5(tf.Module):
        def __init__(self):
            super().__init__()
            self.table = tf.constant(w["shared.weight"])
            self.bias_table = tf.constant(w["encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"])
            self.final_norm = tf.constant(w["encoder.final_layer_norm.weight"])
            self.dense = tf.constant(dense.T.copy()) if dense is not None else None
            self.layers = []
            for i in range(v["layers"]):
                b = f"encoder.block.{i}.layer"
                ffn = f"{b}.1.DenseReluDense"
                layer = {
                    "ln1": tf.constant(w[f"{b}.0.layer_norm.weight"]),
                    "q": kernel(f"{b}.0.SelfAttention.q.weight"),
                    "k": kernel(f"{b}.0.SelfAttention.k.weight"),
                    "v": kernel(f"{b}.0.SelfAttention.v.weight"),
                    "o": kernel(f"{b}.0.SelfAttention.o.weight"),
                    "ln2": tf.constant(w[f"{b}.1.layer_norm.weight"]),
                    "wo": kernel(f"{ffn}.wo.weight"),
                }
                if gated:
                    layer["wi_0"], layer["wi_1"] = kernel(f"{ffn}.wi_0.weight"), kernel(f"{ffn}.wi_1.weight")
                else:
                    layer["wi"] = kernel(f"{ffn}.wi.weight")
                self.layers.append(layer)

        @staticmethod
        def rms_norm(x, weight):
            variance = tf.reduce_mean(tf.square(x), axis=-1, keepdims=True)
            return x * tf.math.rsqrt(variance + EPS) * weight

        @tf.function(input_signature=[tf.TensorSpec([1, SEQ], tf.int32, name="input_ids")])
        def embed(self, input_ids):
            ids = tf.reshape(input_ids, [SEQ])
            mask = tf.cast(tf.not_equal(ids, PAD), tf.float32)
            positions = tf.range(SEQ)
            relative = positions[None, :] - positions[:, None]  # key - query
            position_bias = tf.transpose(tf.gather(self.bias_table, bucket(relative)), [2, 0, 1])  # [heads, q, k]
            bias = position_bias + (1.0 - mask)[None, None, :] * NEG
            x = tf.gather(self.table, ids)
            for L in self.layers:
                def split(t):
                    return tf.transpose(tf.reshape(t, [SEQ, heads, d_kv]), [1, 0, 2])

                h = self.rms_norm(x, L["ln1"])
                q, k, val = split(h @ L["q"]), split(h @ L["k"]), split(h @ L["v"])
                scores = tf.matmul(q, k, transpose_b=True) + bias
                context = tf.matmul(tf.nn.softmax(scores, axis=-1), val)
                x = x + tf.reshape(tf.transpose(context, [1, 0, 2]), [SEQ, inner]) @ L["o"]
                h = self.rms_norm(x, L["ln2"])
                if gated:
                    inner_ff = tf.nn.gelu(h @ L["wi_0"], approximate=True) * (h @ L["wi_1"])
                else:
                    inner_ff = tf.nn.relu(h @ L["wi"])
                x = x + inner_ff @ L["wo"]
            x = self.rms_norm(x, self.final_norm)
            pooled = tf.reduce_sum(x * mask[:, None], axis=0, keepdims=True) / tf.reduce_sum(mask)
            if self.dense is not None:
                pooled = pooled @ self.dense
            return {"embedding": tf.math.l2_normalize(pooled, axis=-1)}

    return T5()


def write_hf_folder(path, v, w, dense):
    """The weights as a sentence-transformers folder in the layout of tests/fixtures/t5/."""
    from safetensors.numpy import save_file

    os.makedirs(path, exist_ok=True)

    def dump(rel, obj):
        full = os.path.join(path, rel)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "w", encoding="utf-8") as f:
            json.dump(obj, f, indent=2)
            f.write("\n")

    dump("config.json", {
        "architectures": ["T5EncoderModel"], "model_type": "t5", "d_model": v["d_model"], "d_kv": v["d_kv"],
        "d_ff": v["d_ff"], "num_layers": v["layers"], "num_heads": v["heads"], "vocab_size": VOCAB,
        "relative_attention_num_buckets": v["buckets"], "relative_attention_max_distance": v["max_distance"],
        "layer_norm_epsilon": EPS, "feed_forward_proj": v["ffn"], "is_encoder_decoder": False,
        "use_cache": False, "dropout_rate": 0.0, "pad_token_id": PAD, "eos_token_id": 1,
    })
    save_file({k: t.astype(np.float16) for k, t in w.items()}, os.path.join(path, "model.safetensors"))
    shutil.copyfile(TOKENIZER, os.path.join(path, "tokenizer.json"))
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
    ]
    if dense is not None:
        modules.append({"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"})
        dump("2_Dense/config.json", {
            "in_features": v["d_model"], "out_features": v["dense"], "bias": False,
            "activation_function": "torch.nn.modules.linear.Identity",
        })
        save_file({"linear.weight": dense.astype(np.float16)}, os.path.join(path, "2_Dense", "model.safetensors"))
    modules.append({"idx": len(modules), "name": str(len(modules)), "path": f"{len(modules)}_Normalize", "type": "sentence_transformers.models.Normalize"})
    dump("modules.json", modules)
    dump("sentence_bert_config.json", {"max_seq_length": SEQ, "do_lower_case": False})
    dump("1_Pooling/config.json", {
        "word_embedding_dimension": v["d_model"], "pooling_mode_cls_token": False, "pooling_mode_mean_tokens": True,
        "pooling_mode_max_tokens": False, "pooling_mode_mean_sqrt_len_tokens": False,
        "pooling_mode_weightedmean_tokens": False, "pooling_mode_lasttoken": False, "include_prompt": True,
    })


def build(out_dir):
    import tensorflow as tf

    os.makedirs(out_dir, exist_ok=True)
    for variant, v in VARIANTS.items():
        w, dense = random_weights(v)
        write_hf_folder(os.path.join(out_dir, f"t5-{variant}-hf"), v, w, dense)
        module = build_module(v, w, dense)
        concrete = module.embed.get_concrete_function()
        for kind in KINDS:
            converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete], module)
            if kind == "int8":
                converter.optimizations = [tf.lite.Optimize.DEFAULT]
            data = converter.convert()
            path = os.path.join(out_dir, file_name(variant, kind))
            with open(path + ".tmp", "wb") as f:
                f.write(data)
            os.replace(path + ".tmp", path)
            print(f"wrote {path} ({len(data)} bytes, sha256 {sha256_file(path)})", file=sys.stderr)


def test_inputs():
    """Texts cut from the Lee sentences at lengths from a few characters to whole sentences (the
    T5 fixture tokenizer gives about one token per 2-3 characters, so some pass 64 tokens and are
    truncated), their token ids (truncated to 64 with </s> kept, as octet truncates), and id
    sequences drawn over the whole table, which no text reaches."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(TOKENIZER)
    tok.enable_truncation(SEQ)
    with open(SENTENCES, encoding="utf-8") as f:
        sentences = [line.strip() for line in f if line.strip()]
    rng = np.random.default_rng(60)
    texts = []
    for i in range(TEXTS):
        s = sentences[(i * 5) % len(sentences)]
        cut = int(rng.integers(3, 200))
        text = s[:cut]
        ids = tok.encode(text).ids
        texts.append({"id": f"lee{i}", "text": text, "token_ids": ids})
    randoms = []
    for i in range(RANDOM_INPUTS):
        n = int(rng.integers(1, SEQ + 1))
        ids = [int(x) for x in rng.integers(1, VOCAB, size=n)]
        randoms.append({"id": f"random{i}", "token_ids": ids})
    return texts, randoms


def padded(ids):
    assert 1 <= len(ids) <= SEQ and PAD not in ids, ids
    return np.array([ids + [PAD] * (SEQ - len(ids))], dtype=np.int32)


def run_interpreter(path, inputs, delegates):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    kwargs = {} if delegates else {"experimental_op_resolver_type": OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES}
    interp = Interpreter(model_path=path, num_threads=1, **kwargs)
    interp.allocate_tensors()
    inp = interp.get_input_details()[0]
    out = interp.get_output_details()[0]
    assert list(inp["shape"]) == [1, SEQ] and inp["dtype"] == np.int32, inp
    rows = []
    for ids in inputs:
        interp.set_tensor(inp["index"], padded(ids))
        interp.invoke()
        rows.append(interp.get_tensor(out["index"])[0].astype(np.float32))
    return np.stack(rows)


def rounded(rows):
    # float32 printed with 9 significant digits round-trips exactly.
    return [[float(f"{x:.9g}") for x in row] for row in np.asarray(rows).tolist()]


def reference(out_dir):
    texts, randoms = test_inputs()
    inputs = [t["token_ids"] for t in texts] + [r["token_ids"] for r in randoms]
    models = {}
    for variant, v in VARIANTS.items():
        for kind in KINDS:
            path = os.path.join(out_dir, file_name(variant, kind))
            builtin = run_interpreter(path, inputs, delegates=False)
            xnn = run_interpreter(path, inputs, delegates=True)
            c = cosines(xnn, builtin)
            print(f"{variant} {kind}: XNNPACK vs builtin kernels mean {c.mean():.6f} min {c.min():.6f}", file=sys.stderr)
            models[f"{variant}-{kind}"] = {
                "variant": variant,
                "kind": kind,
                "file": file_name(variant, kind),
                "bytes": os.path.getsize(path),
                "sha256": sha256_file(path),
                "xnnpack_vs_builtin": {"mean_cosine": float(c.mean()), "min_cosine": float(c.min())},
                "embeddings": rounded(builtin),
            }
    doc = {
        "schema": "octet-tflite-t5-reference/1",
        "generator": "scripts/reference/make_tflite_t5.py",
        "model": "seeded random T5 encoders written in TensorFlow, converted with tf.lite.TFLiteConverter (float32 and "
        "Optimize.DEFAULT dynamic-range int8)",
        "input": f"input_ids int32 [1, {SEQ}]: the token ids, then {PAD} (padding, masked inside the model)",
        "output": "embedding float32 [1, d]: masked mean, optional Dense, L2-normalised",
        "interpreter": "ai_edge_litert.interpreter.Interpreter(num_threads=1) with the builtin kernels only "
        "(OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES); 'xnnpack_vs_builtin' compares the default run with them",
        "variants": {k: {key: val for key, val in v.items() if key != "seed"} | {"seed": v["seed"]} for k, v in VARIANTS.items()},
        "versions": {
            "python": platform.python_version(),
            **{p: importlib.metadata.version(p) for p in ("tensorflow-cpu", "ai-edge-litert", "numpy", "tokenizers")},
        },
        "texts": texts,
        "random_inputs": randoms,
        "models": models,
    }
    if os.path.exists(FIXTURE):
        with open(FIXTURE) as f:
            old = json.load(f)
        if "transformers" in old and old.get("texts") == texts and old.get("random_inputs") == randoms:
            doc["transformers"] = old["transformers"]
    write_fixture(doc)


def write_fixture(doc):
    write_compact_json(FIXTURE, doc)


def transformers_reference(out_dir):
    """transformers' T5EncoderModel with sentence-transformers' modules on each variant's folder,
    for the same inputs (ids in, so no tokenizer is involved)."""
    import torch
    from sentence_transformers import SentenceTransformer

    with open(FIXTURE) as f:
        doc = json.load(f)
    inputs = [t["token_ids"] for t in doc["texts"]] + [r["token_ids"] for r in doc["random_inputs"]]
    result = {}
    for variant in VARIANTS:
        # The folder stores float16 values; the reference computes in float32 on them.
        st = SentenceTransformer(os.path.join(out_dir, f"t5-{variant}-hf"), device="cpu",
                                 model_kwargs={"dtype": torch.float32}).float()
        assert all(p.dtype == torch.float32 for p in st.parameters())
        rows = []
        with torch.no_grad():
            for ids in inputs:
                features = {"input_ids": torch.tensor([ids]), "attention_mask": torch.ones(1, len(ids), dtype=torch.long)}
                rows.append(st(features)["sentence_embedding"][0].float().numpy())
        rows = np.stack(rows)
        result[variant] = rounded(rows)
        for kind in KINDS:
            lite = np.array(doc["models"][f"{variant}-{kind}"]["embeddings"], dtype=np.float32)
            c = cosines(lite, rows)
            print(f"{variant} {kind}: LiteRT vs transformers mean {c.mean():.6f} min {c.min():.6f}", file=sys.stderr)
            doc["models"][f"{variant}-{kind}"]["vs_transformers"] = {"mean_cosine": float(c.mean()), "min_cosine": float(c.min())}
    import sentence_transformers
    import transformers

    doc["transformers"] = {
        "what": "SentenceTransformer(<out>/t5-<variant>-hf): T5EncoderModel, mean pooling, [Dense], Normalize; "
        "fed the unpadded token ids",
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                     "sentence-transformers": sentence_transformers.__version__},
        "embeddings": result,
    }
    write_fixture(doc)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["build", "reference", "transformers"])
    ap.add_argument("--out", default=DEFAULT_OUT, help="folder of the built files")
    args = ap.parse_args()
    {"build": build, "reference": reference, "transformers": transformers_reference}[args.what](args.out)


if __name__ == "__main__":
    main()
