"""Embedder.encode on the real MiniLM: the CLI's vectors, shapes and dtypes, the
sentence-transformers options, precisions, tokens and similarity."""

from __future__ import annotations

import numpy as np
import pytest

import octet
from conftest import corpus


def test_hi_matches_the_command_line(minilm_path, cli_vectors):
    e = octet.Embedder(minilm_path).encode(["hi"])
    assert e.shape == (1, 384) and e.dtype == np.float32
    ref = cli_vectors(minilm_path, ["hi"])[0]
    cos = float(np.dot(e[0], ref) / (np.linalg.norm(e[0]) * np.linalg.norm(ref)))
    assert cos >= 0.9999999, cos


def test_corpus_matches_the_command_line(minilm, minilm_path, cli_vectors):
    texts = corpus(40)
    ours = minilm.encode(texts, batch_size=7)
    ref = cli_vectors(minilm_path, texts)
    assert np.max(np.abs(ours - ref)) < 1e-6


def test_properties(minilm):
    assert minilm.dims == 384 and minilm.get_sentence_embedding_dimension() == 384
    assert minilm.max_seq_length == 256
    assert minilm.prompts == {} and minilm.default_prompt_name is None
    assert minilm.matryoshka_dims == []
    assert minilm.recipe == "int8"
    assert "isa=" in minilm.kernels
    assert minilm.threads >= 1
    assert "octet.Embedder(" in repr(minilm)


def test_single_str_gives_a_1d_array(minilm):
    one = minilm.encode("The cat sat on the mat.")
    assert one.shape == (384,) and one.dtype == np.float32
    np.testing.assert_array_equal(one, minilm.encode(["The cat sat on the mat."])[0])


def test_vectors_do_not_depend_on_batching(minilm):
    texts = corpus(100)
    a = minilm.encode(texts, batch_size=1)
    b = minilm.encode(texts, batch_size=64)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a[37], minilm.encode(texts[37]))


def test_options(minilm):
    texts = ["a small test", "another one", ""]
    full = minilm.encode(texts)
    np.testing.assert_allclose(np.linalg.norm(full, axis=1), 1.0, atol=1e-6)
    raw = minilm.encode(texts, normalize_embeddings=False)
    assert not np.allclose(np.linalg.norm(raw, axis=1), 1.0)
    np.testing.assert_allclose(raw / np.linalg.norm(raw, axis=1, keepdims=True), full, atol=1e-6)
    cut = minilm.encode(texts, truncate_dim=128)
    assert cut.shape == (3, 128)
    head = full[:, :128] / np.linalg.norm(full[:, :128], axis=1, keepdims=True)
    np.testing.assert_allclose(cut, head, atol=1e-6)
    prefixed = minilm.encode(texts, prompt="query: ")
    np.testing.assert_array_equal(prefixed, minilm.encode(["query: " + t for t in texts]))
    rows = minilm.encode(texts, convert_to_numpy=False)
    assert isinstance(rows, list) and len(rows) == 3
    np.testing.assert_array_equal(np.stack(rows), full)
    assert minilm.encode([]).shape == (0, 384)
    np.testing.assert_array_equal(minilm.encode(tuple(texts)), full)
    np.testing.assert_array_equal(minilm.encode(np.array(texts)), full)
    np.testing.assert_array_equal(minilm.encode(texts, show_progress_bar=True), full)


def test_int8_precision_is_the_command_lines_npy_int8(minilm):
    texts = corpus(20)
    full = minilm.encode(texts)
    codes, scales = minilm.encode(texts, precision="int8")
    assert codes.dtype == np.int8 and codes.shape == (20, 384)
    assert scales.dtype == np.float32 and scales.shape == (20,)
    np.testing.assert_allclose(scales, np.max(np.abs(full), axis=1) / 127, rtol=1e-6)
    assert np.max(np.abs(codes * scales[:, None] - full)) <= np.max(scales) * 0.5 + 1e-7
    one_codes, one_scale = minilm.encode(texts[0], precision="int8")
    np.testing.assert_array_equal(one_codes, codes[0])
    assert one_scale == scales[0]


def test_binary_precisions_are_sentence_transformers(minilm):
    texts = corpus(10)
    full = minilm.encode(texts)
    # sentence_transformers.quantization.quantize_embeddings, "binary" and "ubinary".
    ubinary = np.packbits(full > 0, axis=-1)
    binary = (np.packbits(full > 0, axis=-1) - 128).astype(np.int8)
    got_u = minilm.encode(texts, precision="ubinary")
    got_b = minilm.encode(texts, precision="binary")
    assert got_u.dtype == np.uint8 and got_u.shape == (10, 48)
    assert got_b.dtype == np.int8 and got_b.shape == (10, 48)
    np.testing.assert_array_equal(got_u, ubinary)
    np.testing.assert_array_equal(got_b, binary)


def test_tokenize_and_count_tokens(minilm):
    batch = minilm.tokenize(["The cat sat.", "Hello"])
    np.testing.assert_array_equal(batch["input_ids"][0], [101, 1996, 4937, 2938, 1012, 102])
    np.testing.assert_array_equal(batch["attention_mask"][1], [1, 1, 1, 0, 0, 0])
    counts = minilm.count_tokens(["The cat sat.", "word " * 1000, ""])
    np.testing.assert_array_equal(counts, [6, 256, 2])


def test_similarity(minilm):
    e = minilm.encode(["A cat sits on the mat.", "A kitten is sitting on a rug.", "Stocks fell sharply."])
    s = minilm.similarity(e, e)
    assert s.shape == (3, 3) and s.dtype == np.float32
    np.testing.assert_allclose(np.diag(s), 1.0, atol=1e-6)
    assert s[0, 1] > s[0, 2]
    np.testing.assert_allclose(minilm.similarity(e[0], e[1]), [[s[0, 1]]], atol=1e-6)


def test_encode_query_without_prompts_is_encode(minilm):
    texts = ["what is a cat"]
    np.testing.assert_array_equal(minilm.encode_query(texts), minilm.encode(texts))
    np.testing.assert_array_equal(minilm.encode_document(texts), minilm.encode(texts))


def test_convert_writes_the_file_the_command_line_writes(minilm, minilm_source, tmp_path):
    out = tmp_path / "minilm.octet"
    done = octet.convert(minilm_source, out, quant="int8")
    assert done["architecture"] == "bert" and done["recipe"] == "int8" and done["bytes"] == out.stat().st_size
    texts = corpus(10)
    np.testing.assert_array_equal(octet.Embedder(out).encode(texts), minilm.encode(texts))
    kept = octet.convert(minilm_source, tmp_path / "kept.octet", keep=["layers.0.*"])
    assert kept["bytes"] > done["bytes"]


def test_gemma_prompts_and_matryoshka(gemma, cli_vectors):
    assert {"query", "document"} <= set(gemma.prompts)
    assert gemma.matryoshka_dims and gemma.dims == 768
    texts = ["Which planet is known as the red planet?"]
    np.testing.assert_array_equal(gemma.encode_query(texts), gemma.encode(texts, prompt_name="query"))
    np.testing.assert_array_equal(gemma.encode_document(texts), gemma.encode(texts, prompt_name="document"))
    np.testing.assert_array_equal(
        gemma.encode(texts, prompt_name="query"), gemma.encode(texts, prompt=gemma.prompts["query"], prompt_name="")
    )
    ref = cli_vectors(gemma.path, texts, "--prompt", "query", "--dims", "128")
    got = gemma.encode_query(texts, truncate_dim=128)
    assert got.shape == (1, 128)
    assert float(np.dot(got[0], ref[0])) >= 0.9999999
    with pytest.raises(ValueError, match="truncate_dim 769"):
        gemma.encode(texts, truncate_dim=769)
