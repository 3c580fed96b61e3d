"""`octet serve` driven by the official `openai` Python client.

Run by scripts/test-serve-openai.sh, which builds the binary, converts the models and sets
OCTET_BIN, OCTET_MINILM and OCTET_T5. The vectors the client gets must equal `octet embed`'s
exactly, as floats and as base64 (the client's default encoding), with `dimensions`, with two
models served, and a wrong key must raise the client's AuthenticationError.
"""

import json
import math
import os
import base64
import struct
import subprocess
import threading
import urllib.request

import openai
import pytest
from openai import OpenAI

BIN = os.environ["OCTET_BIN"]
MINILM = os.environ["OCTET_MINILM"]
T5 = os.environ["OCTET_T5"]
KEY = "test-key-123"
TEXTS = ["The cat sat on the mat.", "A dog barked at the postman.", "", "Embeddings over HTTP."]


@pytest.fixture(scope="module")
def server():
    proc = subprocess.Popen(
        [BIN, "serve", "--port", "0", "--threads", "1", "--api-key", KEY,
         "--model", f"minilm={MINILM}", "--model", f"t5={T5}"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    line = proc.stdout.readline()
    assert line.startswith("listening on http://"), line + proc.stderr.read()
    # Keep draining the logs so the pipe never fills.
    threading.Thread(target=proc.stderr.read, daemon=True).start()
    yield line.strip().removeprefix("listening on ")
    proc.terminate()
    assert proc.wait(timeout=30) == 0


@pytest.fixture(scope="module")
def client(server):
    return OpenAI(base_url=f"{server}/v1", api_key=KEY, max_retries=0)


def embed_cli(model, texts):
    out = subprocess.run([BIN, "embed", model, *texts], check=True, capture_output=True, text=True).stdout
    return [json.loads(line)["embedding"] for line in out.splitlines()]


def test_float_vectors_equal_octet_embed(client):
    answer = client.embeddings.create(model="minilm", input=TEXTS, encoding_format="float")
    assert [d.index for d in answer.data] == list(range(len(TEXTS)))
    assert [d.embedding for d in answer.data] == embed_cli(MINILM, TEXTS)
    assert answer.usage.prompt_tokens == answer.usage.total_tokens > 0
    assert answer.model == "minilm"


def test_base64_vectors_equal_octet_embed(client):
    # The client asks for base64 when no format is given, and decodes it to floats.
    for answer in (client.embeddings.create(model="minilm", input=TEXTS),
                   client.embeddings.create(model="minilm", input=TEXTS, encoding_format="base64")):
        got = [d.embedding for d in answer.data]
        if isinstance(got[0], str):  # older clients hand base64 back as is
            got = [list(struct.unpack(f"<{len(base64.b64decode(g)) // 4}f", base64.b64decode(g))) for g in got]
        # base64 carries the f32 values exactly; JSON their shortest decimal form.
        as_f32 = lambda v: list(struct.unpack(f"<{len(v)}f", struct.pack(f"<{len(v)}f", *v)))
        assert [as_f32([float(x) for x in g]) for g in got] == [as_f32(v) for v in embed_cli(MINILM, TEXTS)]


def test_single_string_and_token_ids(server, client):
    one = client.embeddings.create(model="minilm", input=TEXTS[0], encoding_format="float")
    assert [d.embedding for d in one.data] == embed_cli(MINILM, TEXTS[:1])
    # Token ids as /tokenize gives them (special tokens included) embed to the same vector.
    request = urllib.request.Request(f"{server}/tokenize", data=json.dumps({"model": "minilm", "input": TEXTS[0]}).encode(),
                                     headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request) as answer:
        tokenized = json.load(answer)
    ids = tokenized["data"][0]["tokens"]
    assert ids[0] == 101 and ids[-1] == 102 and tokenized["count"] == len(ids)
    by_ids = client.embeddings.create(model="minilm", input=[ids], encoding_format="float")
    assert by_ids.data[0].embedding == one.data[0].embedding


def test_dimensions_cut_and_renormalize(client):
    full = client.embeddings.create(model="t5", input=TEXTS, encoding_format="float")
    assert [d.embedding for d in full.data] == embed_cli(T5, TEXTS)
    cut = client.embeddings.create(model="t5", input=TEXTS, dimensions=32, encoding_format="float")
    for c, f in zip(cut.data, full.data):
        assert len(c.embedding) == 32
        scale = math.sqrt(sum(x * x for x in f.embedding[:32]))
        assert all(abs(a - b / scale) < 1e-6 for a, b in zip(c.embedding, f.embedding[:32]))
    with pytest.raises(openai.BadRequestError, match="dimensions"):
        client.embeddings.create(model="t5", input=TEXTS, dimensions=65)


def test_several_models(client):
    ids = [m.id for m in client.models.list()]
    assert ids == ["minilm", "t5"]
    mini = client.embeddings.create(model="minilm", input=TEXTS[:1], encoding_format="float")
    t5 = client.embeddings.create(model="t5", input=TEXTS[:1], encoding_format="float")
    assert len(mini.data[0].embedding) == 384 and len(t5.data[0].embedding) == 64
    with pytest.raises(openai.BadRequestError, match="unknown model"):
        client.embeddings.create(model="text-embedding-3-small", input=TEXTS)


def test_wrong_key_is_authentication_error(server):
    bad = OpenAI(base_url=f"{server}/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.embeddings.create(model="minilm", input=TEXTS)


def test_bad_input_is_bad_request(client):
    with pytest.raises(openai.BadRequestError, match="empty array"):
        client.embeddings.create(model="minilm", input=[])
