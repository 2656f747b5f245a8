"""Embeddings and token counting through the official SDKs against a running gateway:
every upstream kind that serves them, money exact to the micro-dollar, refusals before
any upstream call, failover."""
from __future__ import annotations

import base64
import math
import struct

import httpx
import openai
import pytest
from google import genai
from google.genai import types as gt

from tests.inference import setup


@pytest.fixture(scope="module")
def gw(sim_url, tmp_path_factory):
    g = setup.start(tmp_path_factory.mktemp("inf-emb"), sim_url)
    yield g
    g.stop()


@pytest.fixture
def key(gw):
    return gw.create_key(credits_usd=5.0)


def _oa(gw, key) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url + "/v1", api_key=key["key"], max_retries=0)


def _cos(a, b):
    return sum(x * y for x, y in zip(a, b)) / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))


def _stats(sim_url) -> dict:
    return httpx.get(sim_url + "/_sim/stats").json()["inference"]


@pytest.mark.parametrize("model", ["emb-openai", "emb-gemini", "emb-inproc"])
def test_openai_sdk_embeddings_each_kind(gw, key, model):
    client = _oa(gw, key)
    before = setup.wallet(gw, key["account_id"])
    texts = ["the red fox jumps over the dog", "a red fox sleeps", "quarterly stock market report"]
    raw = client.embeddings.with_raw_response.create(model=model, input=texts)
    res = raw.parse()
    vecs = [d.embedding for d in res.data]
    assert [d.index for d in res.data] == [0, 1, 2] and len(vecs[0]) == 256
    assert _cos(vecs[0], vecs[1]) > _cos(vecs[0], vecs[2])      # shared words are closer
    tokens = res.usage.prompt_tokens
    assert tokens > 0 and raw.headers["x-prism-tokens-in"] == str(tokens)
    # 1 micro-USD per token, exactly: wallet, header and log agree.
    assert before - setup.wallet(gw, key["account_id"]) == tokens
    assert raw.headers["x-prism-cost"] == f"{tokens / 1e6:.6f}"
    row = setup.last_log(gw, key["account_id"])
    assert row.cost_micros == tokens and row.status == 200 and row.model == model
    setup.money_ok(gw)


def test_base64_and_dimensions(gw, key):
    client = _oa(gw, key)
    plain = client.embeddings.create(model="emb-openai", input="hello there", dimensions=64)
    packed = client.embeddings.create(model="emb-openai", input="hello there", dimensions=64,
                                      encoding_format="base64")
    assert len(plain.data[0].embedding) == 64
    raw = httpx.post(gw.url + "/v1/embeddings", headers={"authorization": f"Bearer {key['key']}"},
                     json={"model": "emb-openai", "input": "hello there", "dimensions": 64,
                           "encoding_format": "base64"}).json()
    decoded = struct.unpack("<64f", base64.b64decode(raw["data"][0]["embedding"]))
    assert decoded == pytest.approx(plain.data[0].embedding, abs=1e-6)
    # Asked explicitly, the SDK hands base64 back as it came (by default it asks for
    # base64 itself and decodes it: that is what `plain` went through).
    assert struct.unpack("<64f", base64.b64decode(packed.data[0].embedding)) == decoded
    tokens = client.embeddings.create(model="emb-inproc", input=[[9906, 1917]])
    assert tokens.usage.prompt_tokens == 2


def test_failover_to_the_next_route(gw, key):
    raw = _oa(gw, key).embeddings.with_raw_response.create(model="emb-failover", input="fail over please")
    assert raw.headers["x-prism-failover"] == "true" and len(raw.parse().data) == 1
    assert setup.last_log(gw, key["account_id"]).failover


@pytest.mark.parametrize("model,body,status,code", [
    ("prism-mini", {"input": "x"}, 400, "embeddings_not_supported"),
    ("emb-noprice", {"input": "x"}, 402, "price_missing"),
    ("emb-openai", {"input": ""}, 400, None),
    ("emb-openai", {"input": []}, 400, None),
    ("emb-openai", {"input": "word " * 9000}, 400, "input_too_large"),
    ("nope", {"input": "x"}, 404, None),
])
def test_refusals_cost_nothing_and_call_nothing(gw, key, sim_url, model, body, status, code):
    before, calls = setup.wallet(gw, key["account_id"]), _stats(sim_url)
    r = httpx.post(gw.url + "/v1/embeddings", headers={"authorization": f"Bearer {key['key']}"},
                   json={"model": model, **body})
    assert r.status_code == status, r.text
    if code:
        assert r.json()["error"]["code"] == code
    assert setup.wallet(gw, key["account_id"]) == before and _stats(sim_url) == calls
    setup.money_ok(gw)


def _genai(gw, key, version="v1beta") -> genai.Client:
    return genai.Client(api_key=key["key"], http_options=gt.HttpOptions(base_url=gw.url, api_version=version))


@pytest.mark.parametrize("version", ["v1beta", "v1"])
@pytest.mark.parametrize("model", ["emb-gemini", "emb-openai"])
def test_google_genai_embed_content(gw, key, model, version):
    client = _genai(gw, key, version)
    before = setup.wallet(gw, key["account_id"])
    one = client.models.embed_content(model=model, contents="solar panels on the roof",
                                      config=gt.EmbedContentConfig(output_dimensionality=32))
    assert len(one.embeddings) == 1 and len(one.embeddings[0].values) == 32
    # A list of strings is one Content of three parts for google-genai; three Contents
    # are three embeddings.
    many = client.models.embed_content(model=model, contents=[
        gt.Content(parts=[gt.Part(text=t)]) for t in ("solar panels", "roof solar", "cake recipe")])
    v = [e.values for e in many.embeddings]
    assert len(v) == 3 and _cos(v[0], v[1]) > _cos(v[0], v[2])
    assert setup.wallet(gw, key["account_id"]) < before
    setup.money_ok(gw)


def test_google_genai_count_tokens(gw, key):
    client = _genai(gw, key)
    n = client.models.count_tokens(model="via-gemini", contents="How many tokens are in this sentence?")
    assert n.total_tokens > 0
    before = setup.wallet(gw, key["account_id"])
    client.models.count_tokens(model="prism-mini", contents="free of charge")
    assert setup.wallet(gw, key["account_id"]) == before


@pytest.mark.parametrize("model,exact", [("via-anthropic", True), ("via-gemini", True),
                                         ("prism-mini", False), ("via-openai", False)])
def test_count_tokens_route_says_whether_exact(gw, key, model, exact):
    before = setup.wallet(gw, key["account_id"])
    r = httpx.post(gw.url + "/v1/count_tokens", headers={"authorization": f"Bearer {key['key']}"},
                   json={"model": model, "messages": [{"role": "user", "content": "count me in"}]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["input_tokens"] > 0 and body["exact"] is exact
    assert setup.wallet(gw, key["account_id"]) == before
    bad = httpx.post(gw.url + "/v1/count_tokens", headers={"authorization": f"Bearer {key['key']}"},
                     json={"model": model})
    assert bad.status_code == 400


def test_log_row_carries_the_input_tokens(gw, key):
    raw = _oa(gw, key).embeddings.with_raw_response.create(model="emb-inproc", input=["one two three", "four"])
    tokens = raw.parse().usage.prompt_tokens
    row = setup.last_log(gw, key["account_id"])
    assert row.tokens_in == tokens and row.tokens_out == 0 and row.cost_micros == tokens
    assert raw.headers["x-prism-tokens-in"] == str(tokens)
