"""Ray Data on a local cluster (one start for the module): examples/ray_embed.py embeds 5,000
texts from a Parquet file through 2 OctetEmbedder actors, and every row comes back once with
the vector a single process computes."""

from __future__ import annotations

import importlib.util
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import corpus

ray = pytest.importorskip("ray")

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


def load_example():
    spec = importlib.util.spec_from_file_location("ray_embed", os.path.join(ROOT, "examples", "ray_embed.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_ray_example_gives_the_single_process_vectors(local_ray, minilm, minilm_path, tmp_path):
    n = 5000
    texts = corpus(n, seed=11)
    ids = np.arange(n, dtype=np.int64)
    source = tmp_path / "in.parquet"
    pq.write_table(pa.table({"id": ids, "text": texts, "extra": [f"x{i}" for i in ids]}), source)

    out = tmp_path / "out.parquet"
    status = load_example().main(
        [str(source), str(out), "--model", minilm_path, "--column", "text", "--actors", "2", "--batch-size", "500"]
        + ["--cpus-per-actor", "0.5", "--blocks", "10"]  # 2 actors on 2 CPUs would leave none to the read and write tasks
    )
    assert status == 0

    table = pq.read_table(out)
    got_ids = table.column("id").to_numpy()
    assert len(got_ids) == n and len(np.unique(got_ids)) == n, "a row was lost or duplicated"
    order = np.argsort(got_ids)
    np.testing.assert_array_equal(got_ids[order], ids)
    assert table.column("text").to_pylist() == [texts[i] for i in got_ids]
    assert table.column("extra").to_pylist() == [f"x{i}" for i in got_ids]
    vectors = np.stack([np.asarray(v, dtype=np.float32) for v in table.column("embedding").to_pylist()])[order]
    single = minilm.encode(texts)
    assert vectors.shape == single.shape == (n, 384)
    assert float(np.max(np.abs(vectors - single))) <= 1e-6


def test_octet_embedder_keeps_columns_and_takes_pandas(minilm_path, minilm):
    import pandas as pd

    from octet.ray import OctetEmbedder

    embedder = OctetEmbedder(minilm_path, column="body", output_column="vec", threads=1, truncate_dim=64)
    batch = {"body": np.array(["a", "b"], dtype=object), "n": np.array([1, 2])}
    out = embedder(batch)
    assert out["vec"].shape == (2, 64) and list(out["n"]) == [1, 2]
    np.testing.assert_array_equal(out["vec"], minilm.encode(["a", "b"], truncate_dim=64))
    frame = embedder(pd.DataFrame({"body": ["a", "b"], "n": [1, 2]}))
    np.testing.assert_array_equal(np.stack(frame["vec"]), out["vec"])
    int8 = OctetEmbedder(minilm_path, column="body", threads=1, precision="int8")({"body": np.array(["a"])})
    assert int8["embedding"].dtype == np.int8 and int8["embedding_scale"].shape == (1,)
    with pytest.raises(ValueError, match="dicts of NumPy arrays or pandas"):
        embedder([1, 2])
