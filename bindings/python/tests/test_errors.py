"""Bad input from Python: each mistake raises a clear exception of the right class, with the
command line's message, and nothing crashes the interpreter."""

from __future__ import annotations

import os

import pytest

import octet


def test_none_in_the_list(minilm):
    with pytest.raises(ValueError, match=r"sentences\[1\] is None"):
        minilm.encode(["ok", None])


def test_non_str_item(minilm):
    with pytest.raises(ValueError, match=r"sentences\[2\] is a int, not a str"):
        minilm.encode(["ok", "fine", 3])
    with pytest.raises(ValueError, match=r"sentences\[0\] is a bytes"):
        minilm.encode([b"bytes"])
    with pytest.raises(ValueError, match="must be a list of str"):
        minilm.encode(42)


def test_lone_surrogate(minilm):
    with pytest.raises(ValueError, match=r"sentences\[0\] is not valid Unicode"):
        minilm.encode(["\ud800"])


def test_missing_file(tmp_path):
    missing = tmp_path / "nope.octet"
    with pytest.raises(FileNotFoundError, match="does not exist; check the path"):
        octet.Embedder(missing)
    with pytest.raises(OSError):
        octet.Embedder(str(missing))


def test_folder_and_foreign_file(tmp_path, minilm_source):
    with pytest.raises(OSError, match="looks like a model source folder: convert it first"):
        octet.Embedder(minilm_source)
    foreign = tmp_path / "foreign.octet"
    foreign.write_bytes(b"not a model at all, just some bytes" * 10)
    with pytest.raises(ValueError, match="not an octet model file"):
        octet.Embedder(foreign)


def test_unknown_prompt(minilm):
    with pytest.raises(ValueError, match="unknown prompt 'query'; this model has: none"):
        minilm.encode(["x"], prompt_name="query")


def test_truncate_dim_outside_the_models_dims(minilm):
    for bad in (385, 0, -1):
        with pytest.raises(ValueError, match=rf"truncate_dim {bad} is not in 1..=384"):
            minilm.encode(["x"], truncate_dim=bad)


def test_other_bad_arguments(minilm, minilm_path):
    with pytest.raises(ValueError, match="precision must be one of"):
        minilm.encode(["x"], precision="float16")
    with pytest.raises(ValueError, match="batch_size must be at least 1"):
        minilm.encode(["x"], batch_size=0)
    with pytest.raises(ValueError, match="threads must be at least 1"):
        octet.Embedder(minilm_path, threads=0)


def test_convert_errors(tmp_path, minilm_source):
    with pytest.raises(ValueError, match="unknown"):
        octet.convert(minilm_source, tmp_path / "x.octet", quant="int3")
    with pytest.raises(FileNotFoundError, match="no-such-folder"):
        octet.convert(tmp_path / "no-such-folder", tmp_path / "x.octet")
    with pytest.raises(OSError):
        octet.convert(minilm_source, tmp_path / "no" / "such" / "dir" / "x.octet")
    assert not os.path.exists(tmp_path / "x.octet")
