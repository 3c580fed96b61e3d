"""Builds BERT encoders as TFLite files with litert-torch (PyTorch -> TFLite), and the
reference fixture of their outputs, for octet's TFLite importer.

  tiny    (default) tests/fixtures/litert_torch/: a tiny seeded BERT (transformers.BertModel,
          vocab 86 (5 special tokens, 69 words, 8 suffixes, 4 punctuation marks), hidden 32, 2 layers, 4 heads, FFN 64, every weight, bias and LayerNorm
          parameter drawn from a seeded generator) wrapped to take int32 token ids [1, n] and
          return the mean-pooled, L2-normalised embedding [1, 32]; converted in float32 and with
          litert-torch's dynamic-range int8 recipe, with eager attention (and at n = 9 also
          with SDPA attention, whose scale litert-torch folds into the projections); plus its
          WordPiece tokenizer.json and
          reference.json (token ids, PyTorch outputs, LiteRT interpreter outputs, sha256s,
          versions)
  masked  tests/fixtures/litert_torch/ too, beside the tiny files (which it leaves alone): the
          same tiny model (its PyTorch outputs checked against reference.json's) wrapped to take
          (input_ids, attention_mask), both int32 [1, 16], with a Hugging Face-style masked mean
          and L2 normalisation; converted by litert-torch in float32 and quantized from that
          float file by ai_edge_quantizer's dynamic-range int8 recipe (int8 weights, float
          activations); masked.json holds the LiteRT interpreter's outputs on the texts of 5, 9
          and 16 tokens padded to 16 with [PAD] and mask 0 (octet runs them unpadded), and
          PyTorch's on the padded and on the unpadded input
  minilm  <out>/minilm-L256-{f32,int8}.tflite: the real all-MiniLM-L6-v2 (sentence-transformers
          folder, scripts/fetch-minilm.sh) converted the same way at n = 256, for a local check
          of the graph walk on a real model (about 90 + 23 MB: not committed)

Fixed shapes. litert-torch 0.10 cannot export this model with a dynamic sequence length (its
lowering of the position-id arange / slice / full_like fails on a symbolic size), so every file
takes exactly n tokens. The model has no attention mask input: a text must have exactly n tokens,
so the fixture has one file per length (n = 5, 9, 16), each with the texts of that many tokens.
The position rows and the token-type row are constant-folded to [1, n, 32] in the file, so octet
converts a file into a model whose window is n (shorter texts use the first positions, exactly
as the unpadded PyTorch model does).

Run (venv with litert-torch, about 6 GB with torch's CUDA wheels; not in CI):
  python3 -m venv .venv-litert && .venv-litert/bin/pip install litert-torch==0.10.0 \
      transformers==5.23.0 tokenizers==0.23.3 sentence-transformers
  .venv-litert/bin/python scripts/reference/make_litert_torch_fixtures.py tiny
The masked files were made in a venv outside the repository with (Python 3.11.7; the CPU-only
torch index was not reachable, so torch 2.14.1 came with its CUDA wheels from PyPI):
  python3 -m venv /work/venv-litert && /work/venv-litert/bin/pip install litert-torch==0.10.0 \
      ai-edge-quantizer==0.10.0 transformers==5.23.0 tokenizers==0.23.3
  /work/venv-litert/bin/python scripts/reference/make_litert_torch_fixtures.py masked    # ~35 s
(resolved: torch 2.14.1, ai-edge-litert 2.3.0, litert-converter 0.5.0, numpy 2.4.6; all versions
are in masked.json). Running it twice writes the same bytes.
  HF_HUB_OFFLINE=1 .venv-litert/bin/python scripts/reference/make_litert_torch_fixtures.py minilm [--out DIR]
"""

import argparse
import importlib.metadata
import json
import os
import platform
import random
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from env import CACHE, REPO, cosines, sha256_file  # noqa: E402

FIXTURES = os.path.join(REPO, "tests", "fixtures", "litert_torch")
MINILM_SOURCE = os.path.join(CACHE, "sources", "all-MiniLM-L6-v2")
MINILM_OUT = os.path.join(CACHE, "sources", "all-MiniLM-L6-v2-litert-torch")

SEED = 20261203
LENGTHS = (5, 9, 16)
SDPA_LENGTH = 9
MASKED_LENGTH = 16
TEXTS_PER_LENGTH = 6
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = (
    "the a cat dog sat ran on mat red blue green small big house tree river stone light dark "
    "quick slow bird fish sun moon star rain snow wind fire water city road book page word song "
    "time day night year old new good bad hot cold open close walk talk jump play read write "
    "sing sleep eat drink see hear and or but with from to in of"
).split()
SUFFIXES = ["##s", "##ed", "##ing", "##er", "##ly", "##est", "##y", "##en"]
PUNCT = [".", ",", "!", "?"]


def versions():
    names = ["torch", "litert-torch", "ai-edge-litert", "ai-edge-quantizer", "transformers", "tokenizers", "numpy"]
    return {"python": platform.python_version(), **{n: importlib.metadata.version(n) for n in names}}


def vocabulary():
    vocab = SPECIAL + WORDS + SUFFIXES + PUNCT
    assert len(vocab) == len(set(vocab)), "duplicate vocabulary entries"
    return vocab


def make_tokenizer(vocab):
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    ids = {w: i for i, w in enumerate(vocab)}
    tok = Tokenizer(models.WordPiece(vocab=ids, unk_token="[UNK]", max_input_chars_per_word=100))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", ids["[CLS]"]), ("[SEP]", ids["[SEP]"])],
    )
    tok.decoder = decoders.WordPiece()
    return tok


def make_texts(tok):
    """TEXTS_PER_LENGTH texts of exactly n tokens (with [CLS] and [SEP]) for each n in LENGTHS:
    seeded random words, some capitalised, some with a suffix (two WordPiece tokens), some
    punctuation, and one unknown word (-> [UNK])."""
    rng = random.Random(SEED)
    out = []
    for n in LENGTHS:
        found = 0
        while found < TEXTS_PER_LENGTH:
            words = []
            while True:
                w = rng.choice(WORDS)
                r = rng.random()
                if r < 0.2:
                    w = w + rng.choice(SUFFIXES)[2:]
                elif r < 0.3:
                    w = w.capitalize()
                elif r < 0.33:
                    w = "zqx"
                words.append(w)
                if rng.random() < 0.1:
                    words.append(rng.choice(PUNCT))
                text = " ".join(words).replace(" .", ".").replace(" ,", ",").replace(" !", "!").replace(" ?", "?")
                count = len(tok.encode(text).ids)
                if count >= n:
                    break
            if count != n:
                continue
            out.append({"id": f"n{n}-{found}", "text": text, "token_ids": tok.encode(text).ids})
            found += 1
    return out


def tiny_module(vocab_size):
    import torch
    import transformers

    torch.manual_seed(SEED)
    config = transformers.BertConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=64,
        type_vocab_size=2,
        hidden_act="gelu",
        layer_norm_eps=1e-12,
        attn_implementation="eager",  # explicit MUL by 1/sqrt(head_dim); see sdpa_module
    )
    bert = transformers.BertModel(config, add_pooling_layer=False).eval()
    # BertModel initialises biases to 0 and LayerNorm to (1, 0), which the converter would fold
    # away: draw every parameter so each one is visible in the file.
    g = torch.Generator().manual_seed(SEED)
    with torch.no_grad():
        for name, p in bert.named_parameters():
            if name.endswith("LayerNorm.weight"):
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=g))
            elif p.dim() == 1:
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.2 * torch.randn(p.shape, generator=g))
    return _embedder_class()(bert).eval(), config


def sdpa_module(module, config):
    """`module`'s weights in a BertModel with SDPA attention (transformers' default)."""
    import transformers

    bert = transformers.BertModel(
        transformers.BertConfig(**{**config.to_dict(), "attn_implementation": "sdpa"}), add_pooling_layer=False
    ).eval()
    bert.load_state_dict(module.bert.state_dict())
    return _embedder_class()(bert).eval()


def _embedder_class():
    """The wrapper module, defined on first use so that --help needs no torch."""
    import torch

    class Embedder(torch.nn.Module):
        """BertModel -> mean over the tokens -> L2 normalisation (sentence-transformers'
        Pooling + Normalize for one unpadded text)."""

        def __init__(self, bert):
            super().__init__()
            self.bert = bert

        def forward(self, input_ids):
            hidden = self.bert(input_ids=input_ids).last_hidden_state
            return torch.nn.functional.normalize(hidden.mean(dim=1), dim=-1)

    return Embedder


def _masked_embedder_class():
    """The (input_ids, attention_mask) wrapper, defined on first use so that --help needs no torch."""
    import torch

    class MaskedEmbedder(torch.nn.Module):
        """BertModel with an attention mask -> masked mean over the tokens -> L2 normalisation
        (sentence-transformers' Pooling + Normalize on a padded batch, as Hugging Face's model
        cards write it)."""

        def __init__(self, bert):
            super().__init__()
            self.bert = bert

        def forward(self, input_ids, attention_mask):
            hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            weights = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, dim=-1)

    return MaskedEmbedder


def quantize_dynamic_int8(float_path, path):
    """ai_edge_quantizer's dynamic-range int8 recipe on the float file: int8 weights, float
    activations (quantized on the fly by the hybrid kernels)."""
    from ai_edge_quantizer import quantizer, recipe

    q = quantizer.Quantizer(float_path)
    q.load_quantization_recipe(recipe.dynamic_wi8_afp32())
    result = q.quantize()
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(result.quantized_model)
    os.replace(tmp, path)
    print(f"wrote {path} ({os.path.getsize(path)} bytes)", file=sys.stderr)


def convert(module, n, path, int8):
    import litert_torch
    import torch

    sample = (torch.zeros((1, n), dtype=torch.int32),)
    kwargs = {}
    if int8:
        from litert_torch.generative.quantize import quant_recipes

        # Dynamic-range int8: int8 weights (per channel), float activations quantized on the fly.
        kwargs["quant_config"] = quant_recipes.full_dynamic_recipe()
    edge = litert_torch.convert(module, sample, **kwargs)
    tmp = path + ".tmp"
    edge.export(tmp)
    os.replace(tmp, path)
    print(f"wrote {path} ({os.path.getsize(path)} bytes)", file=sys.stderr)


def run_litert(path, token_ids):
    """LiteRT's builtin kernels only (no XNNPACK), one text per invoke."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interp = Interpreter(
        model_path=path,
        num_threads=1,
        experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
    )
    interp.allocate_tensors()
    inp = interp.get_input_details()[0]
    out = interp.get_output_details()[0]
    rows = []
    for ids in token_ids:
        interp.set_tensor(inp["index"], np.array([ids], dtype=np.int32))
        interp.invoke()
        rows.append(interp.get_tensor(out["index"])[0].astype(np.float32))
    return np.stack(rows)


def run_litert_masked(path, rows):
    """LiteRT's builtin kernels on (input_ids, attention_mask) rows, one text per invoke. The
    inputs are told apart by name order of the signature (litert-torch: args_0, args_1)."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interp = Interpreter(
        model_path=path,
        num_threads=1,
        experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
    )
    interp.allocate_tensors()
    runner = interp.get_signature_runner()
    names = sorted(runner.get_input_details())
    assert len(names) == 2, names
    out = []
    for ids, mask in rows:
        result = runner(**{names[0]: np.array([ids], dtype=np.int32), names[1]: np.array([mask], dtype=np.int32)})
        (value,) = result.values()
        out.append(value[0].astype(np.float32))
    return np.stack(out), names


def floats(rows):
    # float32 printed with 9 significant digits round-trips exactly
    return [[float(f"{v:.9g}") for v in row] for row in np.asarray(rows, dtype=np.float32).tolist()]


def tiny():
    import torch

    os.makedirs(FIXTURES, exist_ok=True)
    vocab = vocabulary()
    tok = make_tokenizer(vocab)
    tok_path = os.path.join(FIXTURES, "tokenizer.json")
    tok.save(tok_path)
    print(f"wrote {tok_path}", file=sys.stderr)
    texts = make_texts(tok)
    module, config = tiny_module(len(vocab))
    with torch.no_grad():
        pytorch = [module(torch.tensor([t["token_ids"]], dtype=torch.long))[0].numpy() for t in texts]
    # The same weights with transformers' default SDPA attention: litert-torch folds its
    # 1/sqrt(head_dim) into the projections, so the graph has no scale on the scores.
    sdpa = sdpa_module(module, config)
    variants = [(n, "", module) for n in LENGTHS] + [(SDPA_LENGTH, "sdpa-", sdpa)]
    files = {}
    for n, variant, source in variants:
        chosen = [i for i, t in enumerate(texts) if len(t["token_ids"]) == n]
        ids = [texts[i]["token_ids"] for i in chosen]
        for kind in ("f32", "int8"):
            name = f"tiny-n{n}-{variant}{kind}.tflite"
            path = os.path.join(FIXTURES, name)
            convert(source, n, path, kind == "int8")
            litert = run_litert(path, ids)
            ref = np.stack([pytorch[i] for i in chosen])
            cos = cosines(litert, ref)
            diff = float(np.abs(litert - ref).max())
            print(f"{name}: LiteRT vs PyTorch cosine min {cos.min():.7f}, max abs diff {diff:.2e}", file=sys.stderr)
            files[f"n{n}-{variant}{kind}"] = {
                "attention": "sdpa" if variant else "eager",
                "file": name,
                "bytes": os.path.getsize(path),
                "sha256": sha256_file(path),
                "sequence_length": n,
                "quantization": "none (float32)"
                if kind == "f32"
                else "litert_torch.generative.quantize.quant_recipes.full_dynamic_recipe(): int8 weights per channel",
                "texts": [texts[i]["id"] for i in chosen],
                "litert_vs_pytorch": {"min_cosine": float(cos.min()), "max_abs_diff": diff},
                "litert": floats(litert),
            }
    doc = {
        "schema": "octet-litert-torch-reference/1",
        "generator": "scripts/reference/make_litert_torch_fixtures.py tiny",
        "model": {
            "what": "transformers.BertModel from a small config, every parameter drawn with seed "
            f"{SEED}; wrapped: input_ids -> last_hidden_state -> mean over tokens -> L2 normalise",
            "config": {k: config.to_dict()[k] for k in (
                "vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                "max_position_embeddings", "type_vocab_size", "hidden_act", "layer_norm_eps")},
        },
        "input": "int32 [1, n], exactly n token ids (fixed shape; one file per n; no mask)",
        "output": "float32 [1, 32], mean-pooled and L2-normalised inside the model",
        "interpreter": "ai_edge_litert.interpreter.Interpreter(num_threads=1, "
        "experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)",
        "tokenizer": {"file": "tokenizer.json", "sha256": sha256_file(tok_path)},
        "versions": versions(),
        "texts": [{**t, "pytorch": floats([p])[0]} for t, p in zip(texts, pytorch)],
        "files": files,
    }
    path = os.path.join(FIXTURES, "reference.json")
    with open(path, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    print(f"wrote {path}", file=sys.stderr)


def masked():
    """The masked files and masked.json (see the module docs); the tiny files stay as they are."""
    import torch

    vocab = vocabulary()
    tok = make_tokenizer(vocab)
    texts = make_texts(tok)
    with open(os.path.join(FIXTURES, "reference.json")) as f:
        tiny_ref = json.load(f)
    assert [t["token_ids"] for t in texts] == [t["token_ids"] for t in tiny_ref["texts"]], "texts differ"
    module, config = tiny_module(len(vocab))
    masked_module = _masked_embedder_class()(module.bert).eval()
    n = MASKED_LENGTH
    pad = vocab.index("[PAD]")
    rows = [(t["token_ids"] + [pad] * (n - len(t["token_ids"])), [1] * len(t["token_ids"]) + [0] * (n - len(t["token_ids"]))) for t in texts]
    with torch.no_grad():
        unpadded = np.stack([module(torch.tensor([t["token_ids"]]))[0].numpy() for t in texts])
        padded = np.stack(
            [masked_module(torch.tensor([ids]), torch.tensor([mask]))[0].numpy() for ids, mask in rows]
        )
    # The same weights as the tiny files: PyTorch's unpadded outputs are reference.json's.
    committed = np.array([t["pytorch"] for t in tiny_ref["texts"]], dtype=np.float32)
    assert np.abs(unpadded - committed).max() < 1e-6, "the tiny model differs from reference.json's"
    cos = cosines(padded, unpadded)
    print(f"PyTorch padded+masked vs unpadded: min cosine {cos.min():.8f}", file=sys.stderr)
    files = {}
    float_path = os.path.join(FIXTURES, f"tiny-masked-n{n}-f32.tflite")
    sample = (torch.zeros((1, n), dtype=torch.int32), torch.ones((1, n), dtype=torch.int32))
    import litert_torch

    edge = litert_torch.convert(masked_module, sample)
    edge.export(float_path + ".tmp")
    os.replace(float_path + ".tmp", float_path)
    print(f"wrote {float_path} ({os.path.getsize(float_path)} bytes)", file=sys.stderr)
    int8_path = os.path.join(FIXTURES, f"tiny-masked-n{n}-int8.tflite")
    quantize_dynamic_int8(float_path, int8_path)
    for kind, path, quantization in (
        ("f32", float_path, "none (float32)"),
        ("int8", int8_path, "ai_edge_quantizer.recipe.dynamic_wi8_afp32() on the float32 file"),
    ):
        litert, names = run_litert_masked(path, rows)
        cos = cosines(litert, padded)
        diff = float(np.abs(litert - padded).max())
        print(f"{os.path.basename(path)}: LiteRT vs PyTorch (padded) cosine min {cos.min():.7f}, max abs diff {diff:.2e}", file=sys.stderr)
        files[f"masked-n{n}-{kind}"] = {
            "file": os.path.basename(path),
            "bytes": os.path.getsize(path),
            "sha256": sha256_file(path),
            "sequence_length": n,
            "inputs": names,
            "quantization": quantization,
            "litert_vs_pytorch": {"min_cosine": float(cos.min()), "max_abs_diff": diff},
            "litert": floats(litert),
        }
    doc = {
        "schema": "octet-litert-torch-masked-reference/1",
        "generator": "scripts/reference/make_litert_torch_fixtures.py masked",
        "model": "the tiny model of reference.json (same seed, same weights), wrapped: (input_ids, attention_mask) "
        "-> BertModel(input_ids, attention_mask).last_hidden_state -> sum(hidden x mask) / max(sum(mask), 1e-9) "
        "-> L2 normalise",
        "input": f"int32 [1, {n}] token ids padded with [PAD] ({pad}); int32 [1, {n}] mask, 1 on tokens, 0 on padding",
        "output": "float32 [1, 32]",
        "interpreter": "ai_edge_litert.interpreter.Interpreter(num_threads=1, "
        "experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES), one padded text per call",
        "versions": versions(),
        "texts": [
            {"id": t["id"], "token_ids": t["token_ids"], "pytorch_padded": floats([p])[0]}
            for t, p in zip(texts, padded)
        ],
        "files": files,
    }
    path = os.path.join(FIXTURES, "masked.json")
    with open(path, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    print(f"wrote {path}", file=sys.stderr)


def minilm(out_dir):
    import torch
    import transformers

    os.makedirs(out_dir, exist_ok=True)
    bert = transformers.BertModel.from_pretrained(
        MINILM_SOURCE, add_pooling_layer=False, attn_implementation="eager"
    ).eval()
    module = _embedder_class()(bert).eval()
    for kind in ("f32", "int8"):
        path = os.path.join(out_dir, f"minilm-n256-{kind}.tflite")
        convert(module, 256, path, kind == "int8")
        print(f"{path}: sha256 {sha256_file(path)}", file=sys.stderr)
    for name in ("tokenizer.json", "sentence_bert_config.json"):
        src = os.path.join(MINILM_SOURCE, name)
        if os.path.exists(src):
            with open(src, "rb") as f, open(os.path.join(out_dir, name), "wb") as g:
                g.write(f.read())
    print(out_dir)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", nargs="?", default="tiny", choices=["tiny", "masked", "minilm"])
    ap.add_argument("--out", default=MINILM_OUT, help="folder for the minilm files")
    args = ap.parse_args()
    if args.what == "tiny":
        tiny()
    elif args.what == "masked":
        masked()
    else:
        minilm(args.out)


if __name__ == "__main__":
    main()
