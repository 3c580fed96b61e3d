"""Closed-loop load generator for OpenAI-style embedding servers (standard library only).

Each of C clients keeps one HTTP/1.1 keep-alive connection and sends POST /v1/embeddings with
N texts, waits for the answer, and sends the next one at once, for a fixed time. Texts come in
order from a corpus (one per line), each client starting at its own offset. Reports texts/s,
requests/s, latency p50 / p99 and the statuses seen.

Usage (one point):   python3 benches/serve/load.py --url http://127.0.0.1:8080 --clients 8 --texts 16
As a module:         await load.run_point(url, model, clients, texts_per_request, seconds, corpus)
"""

import argparse
import asyncio
import json
import statistics
import time
from pathlib import Path
from urllib.parse import urlparse

CORPUS = Path(__file__).resolve().parents[2] / "tools" / "data" / "lee-sentences.txt"


def read_corpus(path=CORPUS):
    return [line for line in Path(path).read_text().splitlines() if line.strip()]


async def post(reader, writer, host, path, body):
    """One request on an open connection; returns (status, body bytes, whether the server closes it).

    Some servers (llama-server's cpp-httplib) end a keep-alive connection after a number of
    requests with `Connection: close`; the caller then opens a new one, as an HTTP client library
    would."""
    writer.write(f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                 f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    await writer.drain()
    status_line = await reader.readline()
    if not status_line:
        raise ConnectionError("the server closed the connection")
    status = int(status_line.split()[1])
    length, chunked, closing = None, False, False
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b"\n", b""):
            break
        name, _, value = line.decode("latin-1").partition(":")
        name = name.strip().lower()
        if name == "content-length":
            length = int(value.strip())
        elif name == "transfer-encoding" and "chunked" in value.lower():
            chunked = True
        elif name == "connection" and "close" in value.lower():
            closing = True
    if chunked:
        parts = []
        while True:
            size = int((await reader.readline()).split(b";")[0], 16)
            if size == 0:
                await reader.readline()
                break
            parts.append(await reader.readexactly(size))
            await reader.readline()
        return status, b"".join(parts), closing
    return status, await reader.readexactly(length or 0), closing


async def client(url, model, texts, corpus, offset, deadline, latencies, statuses):
    parsed = urlparse(url)
    reader, writer = await asyncio.open_connection(parsed.hostname, parsed.port)
    i = offset
    try:
        while time.perf_counter() < deadline:
            batch = [corpus[(i + k) % len(corpus)] for k in range(texts)]
            i += texts
            body = json.dumps({"model": model, "input": batch, "encoding_format": "float"}).encode()
            started = time.perf_counter()
            if reader is None:
                # The server closed the previous connection: the reconnect is part of this request's latency.
                reader, writer = await asyncio.open_connection(parsed.hostname, parsed.port)
            status, answer, closing = await post(reader, writer, parsed.netloc, "/v1/embeddings", body)
            elapsed = time.perf_counter() - started
            if closing:
                writer.close()
                reader = writer = None
            statuses[status] = statuses.get(status, 0) + 1
            if status == 200:
                # Counted, not parsed: the client should cost the shared CPU as little as possible.
                if answer.count(b'"index"') != texts:
                    raise RuntimeError("an answer has the wrong number of rows")
                latencies.append(elapsed)
    finally:
        if writer is not None:
            writer.close()


async def run_point(url, model, clients, texts, seconds, corpus, warmup=0.5):
    """One closed-loop point; returns a dict of figures."""
    if warmup > 0:
        await asyncio.gather(*(client(url, model, texts, corpus, c * 37, time.perf_counter() + warmup, [], {})
                               for c in range(clients)))
    latencies, statuses = [], {}
    started = time.perf_counter()
    deadline = started + seconds
    await asyncio.gather(*(client(url, model, texts, corpus, c * 37, deadline, latencies, statuses)
                           for c in range(clients)))
    wall = time.perf_counter() - started
    latencies.sort()
    pick = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1e3 if latencies else float("nan")
    return {
        "clients": clients, "texts_per_request": texts, "seconds": wall,
        "requests": len(latencies), "texts_per_s": len(latencies) * texts / wall,
        "p50_ms": pick(0.50), "p99_ms": pick(0.99),
        "mean_ms": statistics.fmean(latencies) * 1e3 if latencies else float("nan"),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", required=True)
    ap.add_argument("--model", default="minilm")
    ap.add_argument("--clients", type=int, default=1)
    ap.add_argument("--texts", type=int, default=1)
    ap.add_argument("--seconds", type=float, default=10)
    args = ap.parse_args()
    print(json.dumps(asyncio.run(run_point(args.url, args.model, args.clients, args.texts, args.seconds, read_corpus()))))


if __name__ == "__main__":
    main()
