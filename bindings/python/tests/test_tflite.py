"""octet.convert on a .tflite encoder: the committed litert-torch masked BERT
(tests/fixtures/litert_torch/), with and without tflite_exact (``--tflite-exact``)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

import octet
from conftest import _required

FIXTURES = Path(__file__).resolve().parents[3] / "tests" / "fixtures" / "litert_torch"


def _fixture():
    masked = json.loads((FIXTURES / "masked.json").read_text())
    texts = [t["text"] for t in json.loads((FIXTURES / "reference.json").read_text())["texts"]]
    entry = masked["files"]["masked-n16-int8"]
    return FIXTURES / entry["file"], texts, np.asarray(entry["litert"], dtype=np.float32)


def test_convert_tflite_exact_is_the_command_lines(tmp_path, cli_vectors):
    source, texts, litert = _fixture()
    tokenizer = FIXTURES / "tokenizer.json"
    exact = tmp_path / "exact.octet"
    done = octet.convert(source, exact, quant="f32", tokenizer=tokenizer, tflite_exact=True)
    assert done["architecture"] == "bert"
    got = octet.Embedder(exact).encode(texts)
    # Both are unit vectors: the dot product is the cosine (LiteRT on the padded, masked input).
    cos = np.sum(got * litert, axis=1)
    assert cos.mean() >= 0.9999 and cos.min() >= 0.999, cos
    # The default conversion is another model (the file records the replay, so its bytes differ);
    # on these texts its vectors may be close to the exact ones (6e-8 to 6e-4 apart, depending on
    # the tree's softmax and quantizer), so the vectors alone cannot tell the two apart.
    default = tmp_path / "default.octet"
    octet.convert(source, default, quant="f32", tokenizer=tokenizer)
    assert default.read_bytes() != exact.read_bytes()
    want_default = octet.Embedder(default).encode(texts)
    # The command line's --tflite-exact file embeds what tflite_exact=True does, and its default
    # file what the default does.
    binary = _required("OCTET_BIN")
    for flags, name, want in (["--tflite-exact"], "cli-exact.octet", got), ([], "cli-default.octet", want_default):
        cli = tmp_path / name
        command = [binary, "convert", str(source), "-o", str(cli), "--quant", "f32", "--tokenizer", str(tokenizer)]
        subprocess.run([*command, "-q", *flags], check=True, capture_output=True)
        diff = float(np.max(np.abs(cli_vectors(str(cli), texts) - want)))
        assert diff < 1e-6, (name, diff)


def test_convert_tflite_exact_needs_a_tflite_source(tmp_path, minilm_source):
    with pytest.raises(ValueError, match="tflite_exact"):
        octet.convert(minilm_source, tmp_path / "x.octet", tflite_exact=True)
    source, _, _ = _fixture()
    with pytest.raises(ValueError, match="tflite_exact"):
        octet.convert(source, report=True, tflite_exact=True)
