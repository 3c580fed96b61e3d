"""Writes the T5 encoder fixtures: two tiny sentence-transformers folders with seeded random
weights, one per feed-forward variant, and the outputs of transformers' T5EncoderModel on them.

  tests/fixtures/t5/<variant>/model/                 the sentence-transformers folder `octet convert` reads
  tests/fixtures/t5/<variant>/reference.json         texts, token ids, config summary, versions
  tests/fixtures/t5/<variant>/reference.safetensors  exact fp32 outputs: hidden states, pooled, embedding
  tests/fixtures/t5/buckets.json                     T5Attention._relative_position_bucket tables

Variants (see tests/fixtures/README.md):
  relu   original T5: DenseReluDense.wi/wo with ReLU, 32 buckets / max distance 128 (the T5
         defaults), inner attention width = d_model, mean pooling, window 256; one text is long
         enough (> 128 tokens) that relative distances pass max_distance.
  gated  T5 v1.1: gated-gelu (gelu_new(wi_0 x) * wi_1 x), 16 buckets / max distance 24,
         inner width 3 x 16 = 48 != d_model 64, mean pooling then a 2_Dense 64 -> 32 projection
         (no bias, identity, as sentence-t5), window 64 (the long text is truncated).

The weights are drawn from torch's generator with a fixed seed at sizes that make attention
sharp and the position bias matter, rounded to float16 values, and the model runs in float32
on those values. model.safetensors stores them as F16 (exact, half the bytes); the script
checks that reloading the written folder with sentence-transformers reproduces the in-memory
model's embeddings.

Run (no download; the reference venv only):
  HF_HUB_OFFLINE=1 .venv-ref/bin/python scripts/reference/make_t5_fixtures.py
"""

import json
import math
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(__file__))
import env  # noqa: E402

env.offline_hub()

import numpy as np  # noqa: E402
import torch  # noqa: E402
from safetensors import safe_open  # noqa: E402
from safetensors.torch import save_file  # noqa: E402
from sentence_transformers import SentenceTransformer  # noqa: E402
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors  # noqa: E402
from transformers import PreTrainedTokenizerFast, T5Config, T5EncoderModel  # noqa: E402
from transformers.models.t5.modeling_t5 import T5Attention  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))
import common  # noqa: E402

OUT_DIR = os.path.join(common.REPO, "tests", "fixtures", "t5")

VARIANTS = {
    "relu": dict(
        seed=5001, feed_forward_proj="relu", d_model=64, d_kv=16, num_heads=4, d_ff=128, num_layers=2,
        buckets=32, max_distance=128, window=256, dense=None,
    ),
    "gated": dict(
        seed=5002, feed_forward_proj="gated-gelu", d_model=64, d_kv=16, num_heads=3, d_ff=96, num_layers=2,
        buckets=16, max_distance=24, window=64, dense=32,
    ),
}

# The embedding table has a few rows more than the tokenizer has tokens, as real T5 checkpoints
# do (32,128 rows for 32,100 tokens).
EXTRA_ROWS = 4

# Bucket tables for relative positions -RANGE..RANGE, for these (num_buckets, max_distance).
BUCKET_CONFIGS = [(32, 128), (16, 24), (32, 64), (64, 256), (8, 16)]
BUCKET_RANGE = 1200

LONG_TEXT = (
    "the model reads one long text so that the distance between the first word and the last word is "
    "larger than the max distance of the relative position buckets. a text like this one has many "
    "short words and many pieces, and each piece is one token. the cat sat on the mat, the dog sat on "
    "the log, and the two of them looked at the world for a long time. then it was night, and the "
    "stars came out one by one over the hills and the sea."
)

TEXTS = [
    ("empty", ""),
    ("short", "hello world"),
    ("sentence", "The cat sat on the mat."),
    ("numbers", "Numbers 12345 and punctuation: ok?! it's 3-2."),
    ("unknown", "caf\u00e9 \u65e5\u672c \U0001F642 and ~tilde"),
    ("sentence_long", "A short text is one or two sentences, and this one has a few more words than the rest."),
    ("medium", LONG_TEXT[:200]),
    ("long", LONG_TEXT),
]


def build_tokenizer():
    """A T5-style Unigram tokenizer: NFKC + lowercase, Metaspace, `</s>` appended to every text."""
    specials = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)]
    chars = [(c, -8.0) for c in "\u2581abcdefghijklmnopqrstuvwxyz0123456789.,!?'-:"]
    words = "the a and of to in is it that on was for with as at by cat sat mat dog hello world model text long short one two word".split()
    word_pieces = [("\u2581" + w, -3.0) for w in words]
    subwords = [(s, -5.0) for s in "ing ed er es re en th an on at or st ion ly al".split()]
    starts = [("\u2581" + c, -6.0) for c in "tscwbmpf"]
    vocab = specials + chars + word_pieces + subwords + starts
    assert len({p for p, _ in vocab}) == len(vocab), "duplicate piece"
    tok = Tokenizer(models.Unigram(vocab, unk_id=2, byte_fallback=False))
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always")]
    )
    tok.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always")
    tok.post_processor = processors.TemplateProcessing(
        single="$A </s>", pair="$A </s> $B </s>", special_tokens=[("</s>", 1)]
    )
    return tok


def randomize(model, v, gen):
    """Seeded weights at sizes where every part matters, rounded to float16 values."""
    d_model, d_ff, inner = v["d_model"], v["d_ff"], v["num_heads"] * v["d_kv"]
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "layer_norm" in name:
                std, mean = 0.2, 1.0
            elif "relative_attention_bias" in name:
                std, mean = 1.0, 0.0  # a bias of order 1 next to scores of order 1
            elif name in ("shared.weight", "encoder.embed_tokens.weight"):
                std, mean = 1.0, 0.0
            elif ".q." in name or ".k." in name:
                std, mean = 0.1, 0.0  # scores (no 1/sqrt(d) scaling) of order 1
            elif ".v." in name or "wi" in name:
                std, mean = d_model**-0.5, 0.0
            elif ".o." in name:
                std, mean = inner**-0.5, 0.0
            elif "wo" in name:
                std, mean = d_ff**-0.5, 0.0
            else:
                raise RuntimeError(f"unexpected parameter {name}")
            values = torch.randn(p.shape, generator=gen) * std + mean
            p.copy_(values.half().float())


def bucket_tables():
    rel = torch.arange(-BUCKET_RANGE, BUCKET_RANGE + 1)[None, :]
    tables = []
    for num_buckets, max_distance in BUCKET_CONFIGS:
        b = T5Attention._relative_position_bucket(rel, bidirectional=True, num_buckets=num_buckets, max_distance=max_distance)
        tables.append({"num_buckets": num_buckets, "max_distance": max_distance, "buckets": [int(x) for x in b[0]]})
    return {
        "schema": "octet-t5-buckets/1",
        "generator": "scripts/reference/make_t5_fixtures.py",
        "source": "transformers.models.t5.modeling_t5.T5Attention._relative_position_bucket, bidirectional=True",
        "versions": common.library_versions(),
        "relative_positions": {"first": -BUCKET_RANGE, "last": BUCKET_RANGE, "meaning": "key position - query position"},
        "tables": tables,
    }


def write_folder(model_dir, hf, tok, v, dense_weight):
    """A sentence-transformers folder in the classic layout that hub T5 models (sentence-t5,
    GTR) have: modules.json, sentence_bert_config.json with max_seq_length, the boolean pooling
    flags, 2_Dense with `linear.weight`. sentence-transformers 6 would write a newer layout."""
    os.makedirs(model_dir)
    hf.save_pretrained(model_dir)
    # Store the weights as F16: they are float16 values already, so this is exact.
    path = os.path.join(model_dir, "model.safetensors")
    with safe_open(path, "pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}
        metadata = f.metadata()
    for k, t in tensors.items():
        assert torch.equal(t.half().float(), t), f"{k} is not float16-exact"
    save_file({k: t.half().contiguous() for k, t in tensors.items()}, path, metadata=metadata)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="</s>", unk_token="<unk>", pad_token="<pad>")
    fast.model_max_length = v["window"]
    fast.save_pretrained(model_dir)

    def dump(rel, obj):
        os.makedirs(os.path.dirname(os.path.join(model_dir, rel)), exist_ok=True)
        with open(os.path.join(model_dir, rel), "w", encoding="utf-8") as f:
            json.dump(obj, f, indent=2)
            f.write("\n")

    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
    ]
    if dense_weight is not None:
        modules.append({"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"})
    modules.append({"idx": len(modules), "name": str(len(modules)), "path": f"{len(modules)}_Normalize", "type": "sentence_transformers.models.Normalize"})
    dump("modules.json", modules)
    dump("sentence_bert_config.json", {"max_seq_length": v["window"], "do_lower_case": False})
    dump("1_Pooling/config.json", {
        "word_embedding_dimension": v["d_model"], "pooling_mode_cls_token": False, "pooling_mode_mean_tokens": True,
        "pooling_mode_max_tokens": False, "pooling_mode_mean_sqrt_len_tokens": False,
        "pooling_mode_weightedmean_tokens": False, "pooling_mode_lasttoken": False, "include_prompt": True,
    })
    if dense_weight is not None:
        dump("2_Dense/config.json", {
            "in_features": v["d_model"], "out_features": v["dense"], "bias": False,
            "activation_function": "torch.nn.modules.linear.Identity",
        })
        save_file({"linear.weight": dense_weight.contiguous()}, os.path.join(model_dir, "2_Dense", "model.safetensors"))
    # No folder for Normalize: it has no files, and git would not keep an empty folder.


def make_variant(name, v, tok):
    variant_dir = os.path.join(OUT_DIR, name)
    model_dir = os.path.join(variant_dir, "model")
    torch.manual_seed(v["seed"])
    gen = torch.Generator().manual_seed(v["seed"])
    vocab = tok.get_vocab_size() + EXTRA_ROWS
    config = T5Config(
        vocab_size=vocab, d_model=v["d_model"], d_kv=v["d_kv"], num_heads=v["num_heads"], d_ff=v["d_ff"],
        num_layers=v["num_layers"], num_decoder_layers=v["num_layers"], feed_forward_proj=v["feed_forward_proj"],
        relative_attention_num_buckets=v["buckets"], relative_attention_max_distance=v["max_distance"],
        layer_norm_epsilon=1e-6, dropout_rate=0.0, is_encoder_decoder=False, use_cache=False,
    )
    hf = T5EncoderModel(config).eval()
    randomize(hf, v, gen)

    dense_weight = None
    if v["dense"]:
        dense_weight = (torch.randn((v["dense"], v["d_model"]), generator=gen) * v["d_model"] ** -0.5).half().float()

    if os.path.exists(model_dir):
        shutil.rmtree(model_dir)
    write_folder(model_dir, hf, tok, v, dense_weight)

    # The reference: transformers' T5EncoderModel, mean pooling and the Dense written out here.
    # The check: sentence-transformers loading the written folder must give the same vectors.
    st = SentenceTransformer(model_dir, device="cpu", local_files_only=True, model_kwargs={"dtype": torch.float32}).eval()
    assert isinstance(st[0].auto_model, T5EncoderModel), type(st[0].auto_model)
    assert st.max_seq_length == v["window"], st.max_seq_length
    encoder = hf
    texts_out, tensors_out = [], {}
    worst_st = 0.0
    for i, (tid, text) in enumerate(TEXTS):
        feats = st.preprocess([text])
        ids = feats["input_ids"][0]
        assert int(feats["attention_mask"][0].sum()) == len(ids)
        full = tok.encode(text).ids
        truncated = len(full) > v["window"]
        assert ids.tolist() == (full if not truncated else full[: v["window"] - 1] + [1]), (tid, ids.tolist(), full)
        with torch.no_grad():
            hidden = encoder(input_ids=ids[None, :]).last_hidden_state[0]
            pooled = hidden.mean(0)
            if v["dense"]:
                pooled = dense_weight @ pooled
            embedding = torch.nn.functional.normalize(pooled, dim=0)
            via_st = torch.from_numpy(st.encode([text], convert_to_numpy=True)[0])
        worst_st = max(worst_st, float((via_st - embedding).abs().max()))
        assert worst_st < 1e-6, (tid, "sentence-transformers on the written folder differs", worst_st)
        tensors_out[f"hidden.{i}"] = hidden.contiguous()
        tensors_out[f"pooled.{i}"] = pooled.contiguous()
        tensors_out[f"embedding.{i}"] = embedding.contiguous()
        texts_out.append({
            "id": tid,
            "text": text,
            "token_ids": [int(x) for x in ids],
            "num_tokens_untruncated": len(full),
            "truncated": truncated,
        })
        print(f"{name} {tid}: {len(ids)} tokens{' (truncated)' if truncated else ''}", file=sys.stderr)
    os.makedirs(variant_dir, exist_ok=True)
    save_file(tensors_out, os.path.join(variant_dir, "reference.safetensors"))
    common.write_json(os.path.join(variant_dir, "reference.json"), {
        "schema": "octet-reference-t5/1",
        "generator": "scripts/reference/make_t5_fixtures.py",
        "variant": name,
        "seed": v["seed"],
        "model": {
            "folder": f"tests/fixtures/t5/{name}/model",
            "reference": "transformers.T5EncoderModel (last_hidden_state), mean over all tokens"
            + (", then 2_Dense" if v["dense"] else "")
            + ", then L2 normalisation; checked against sentence-transformers encode() on the same folder",
            "feed_forward_proj": v["feed_forward_proj"],
            "d_model": v["d_model"], "d_kv": v["d_kv"], "num_heads": v["num_heads"], "d_ff": v["d_ff"],
            "num_layers": v["num_layers"], "relative_attention_num_buckets": v["buckets"],
            "relative_attention_max_distance": v["max_distance"], "vocab_size": vocab,
            "tokenizer_vocab_size": tok.get_vocab_size(), "max_seq_length": v["window"],
            "dense_out_features": v["dense"], "dtype": "float32 (weights are float16 values)",
        },
        "versions": common.library_versions(),
        "outputs": {
            "file": "reference.safetensors",
            "hidden.{i}": "[tokens, d_model] float32: last_hidden_state (after encoder.final_layer_norm) of text i",
            "pooled.{i}": "[dim] float32: mean of hidden.{i} over the tokens, then the Dense projection if any",
            "embedding.{i}": "[dim] float32: pooled.{i} L2-normalised (what sentence-transformers returns)",
        },
        "sentence_transformers_max_abs_diff": worst_st,
        "texts": texts_out,
    })


def main():
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    tok = build_tokenizer()
    for name, v in VARIANTS.items():
        make_variant(name, v, tok)
    # One line per table: 12,000 small integers would take a line each with common.write_json.
    path = os.path.join(OUT_DIR, "buckets.json")
    doc = bucket_tables()
    tables = doc.pop("tables")
    text = json.dumps(doc, indent=1)[:-2] + ',\n "tables": [\n'
    text += ",\n".join("  " + json.dumps(t, separators=(",", ":")) for t in tables) + "\n ]\n}\n"
    json.loads(text)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    print(f"wrote {path} ({os.path.getsize(path)} bytes)", file=sys.stderr)


if __name__ == "__main__":
    main()
