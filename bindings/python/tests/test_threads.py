"""The GIL is released while octet computes: Python threads sharing one Embedder run at once
and get exactly the vectors of sequential calls."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from conftest import corpus


def test_threads_get_the_sequential_results(minilm):
    batches = [corpus(60, seed=s) for s in range(8)]
    sequential = [minilm.encode(b, batch_size=16) for b in batches]
    with ThreadPoolExecutor(max_workers=4) as pool:
        threaded = list(pool.map(lambda b: minilm.encode(b, batch_size=16), batches))
    for s, t in zip(sequential, threaded):
        np.testing.assert_array_equal(s, t)


def test_other_python_threads_run_during_encode(minilm):
    texts = corpus(600, seed=3)
    stop = threading.Event()
    stamps = []

    def count() -> None:
        i = 0
        while not stop.is_set():
            i += 1
            if i % 100 == 0:
                stamps.append(time.perf_counter())

    counter = threading.Thread(target=count)
    counter.start()
    try:
        t0 = time.perf_counter()
        minilm.encode(texts)
        t1 = time.perf_counter()
    finally:
        stop.set()
        counter.join()
    # The middle half of the call is native code: with the GIL held there, the counter could
    # not have stamped anything in it.
    middle = [s for s in stamps if t0 + 0.25 * (t1 - t0) < s < t0 + 0.75 * (t1 - t0)]
    assert len(middle) > 10, (len(middle), len(stamps), t1 - t0)
