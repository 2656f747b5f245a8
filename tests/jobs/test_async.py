"""Async completions through the official SDKs: 202, poll, the same answer a synchronous
call gives, in the asking dialect; cancel before it runs costs nothing."""
from __future__ import annotations

import time

import anthropic
import httpx
import openai
import pytest

import store
from tests.jobs import setup


@pytest.fixture(scope="module")
def gw(sim_url, tmp_path_factory, request):
    g = setup.start(tmp_path_factory.mktemp("jobs-async"), sim_url, request)
    yield g
    g.stop()


def _poll(client: httpx.Client, job_id: str, until=("succeeded", "failed", "cancelled"),
          timeout: float = 20) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = client.get(f"/v1/async/{job_id}")
        assert r.status_code == 200, r.text
        if r.json()["status"] in until:
            return r.json()
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} still {r.json()['status']}")


def _client(gw, key) -> httpx.Client:
    return httpx.Client(base_url=gw.url, headers={"authorization": f"Bearer {key['key']}"},
                        timeout=30)


def test_async_chat_matches_sync(gw):
    key = gw.create_key(credits_usd=5.0)
    oa = openai.OpenAI(base_url=gw.url + "/v1", api_key=key["key"], max_retries=0)
    msgs = [{"role": "user", "content": "say something deterministic"}]
    sync = oa.chat.completions.create(model="prism-mini", messages=msgs, max_tokens=50)
    raw = oa.chat.completions.with_raw_response.create(
        model="prism-mini", messages=msgs, max_tokens=50, extra_body={"async": True})
    assert raw.status_code == 202
    queued = raw.http_response.json()
    assert queued["status"] in ("queued", "running") and queued["object"] == "async.job"
    with _client(gw, key) as c:
        done = _poll(c, queued["id"])
    assert done["status"] == "succeeded", done
    result = done["result"]
    assert result["object"] == "chat.completion"
    assert result["choices"][0]["message"]["content"] == sync.choices[0].message.content
    assert result["usage"]["prompt_tokens"] == sync.usage.prompt_tokens
    assert done["cost_micros"] > 0
    db = gw.db()
    try:
        # The job's settlement is a request-log row and a ledger settle for exactly its cost.
        settles = setup.settles(db, key["account_id"])
        assert settles[done["request_id"]] == done["cost_micros"]
        assert store.check_invariants(db) == []
    finally:
        db.close()


def test_async_header_and_other_dialects(gw):
    key = gw.create_key(credits_usd=5.0)
    with _client(gw, key) as c:
        r = c.post("/v1/chat/completions", headers={"X-Prism-Async": "true"},
                   json={"model": "prism-mini", "messages": [{"role": "user", "content": "hi"}]})
        assert r.status_code == 202, r.text
        assert _poll(c, r.json()["id"])["result"]["object"] == "chat.completion"
        r = c.post("/v1/responses", json={"model": "prism-mini", "input": "hi", "async": True})
        assert r.status_code == 202, r.text
        assert _poll(c, r.json()["id"])["result"]["object"] == "response"
    ac = anthropic.Anthropic(base_url=gw.url, api_key=key["key"], max_retries=0)
    raw = ac.messages.with_raw_response.create(
        model="prism-mini", max_tokens=30, messages=[{"role": "user", "content": "hi"}],
        extra_headers={"X-Prism-Async": "true"})
    assert raw.status_code == 202
    with _client(gw, key) as c:
        done = _poll(c, raw.http_response.json()["id"])
    assert done["result"]["type"] == "message" and done["result"]["role"] == "assistant"


def test_cancel_queued_costs_nothing_and_owner_only(gw):
    key = gw.create_key(credits_usd=5.0)
    other = gw.create_key(credits_usd=5.0)
    with _client(gw, key) as c, _client(gw, other) as o:
        r = c.post("/v1/scheduled", json={"delay_seconds": 3600, "body": {
            "model": "prism-mini", "messages": [{"role": "user", "content": "later"}]}})
        assert r.status_code == 201, r.text
        # An async job slowed upstream, cancelled while it runs: voided, nothing billed.
        r = c.post("/v1/chat/completions", json={
            "model": "prism-mini", "async": True,
            "messages": [{"role": "user", "content": "slow [[sim delay_ms=3000]]"}]})
        job = r.json()["id"]
        assert o.get(f"/v1/async/{job}").status_code == 404
        assert o.delete(f"/v1/async/{job}").status_code == 404
        _poll(c, job, until=("running",))
        time.sleep(0.2)
        assert c.delete(f"/v1/async/{job}").status_code == 200
        done = _poll(c, job)
        assert done["status"] == "cancelled" and done["cost_micros"] == 0
    db = gw.db()
    try:
        assert setup.settles(db, key["account_id"]) == {}
        assert store.check_invariants(db) == []
    finally:
        db.close()


def test_limits_per_account_and_batch_file_size(sim_url, tmp_path):
    import io
    import json
    g = setup.start(tmp_path, sim_url, jobs={"max_queued_per_account": 2, "batch_max_bytes": 300})
    try:
        key = g.create_key(credits_usd=1.0)
        oa = openai.OpenAI(base_url=g.url + "/v1", api_key=key["key"], max_retries=0)
        line = {"custom_id": "a", "method": "POST", "url": "/v1/chat/completions",
                "body": {"model": "prism-mini", "messages": [{"role": "user", "content": "x" * 400}]}}
        fid = oa.files.create(file=("b.jsonl", io.BytesIO(json.dumps(line).encode())),
                              purpose="batch").id
        b = oa.batches.create(input_file_id=fid, endpoint="/v1/chat/completions",
                              completion_window="24h")
        deadline = time.monotonic() + 10
        while (b := oa.batches.retrieve(b.id)).status != "failed":
            assert time.monotonic() < deadline, b
            time.sleep(0.05)
        assert [e.code for e in b.errors.data] == ["file_too_large"]
        with _client(g, key) as c:
            for _ in range(2):
                assert c.post("/v1/scheduled", json={"delay_seconds": 3600, "body": {
                    "model": "prism-mini", "messages": [{"role": "user", "content": "x"}]}}
                ).status_code == 201
            r = c.post("/v1/chat/completions", json={
                "model": "prism-mini", "async": True,
                "messages": [{"role": "user", "content": "x"}]})
            assert r.status_code == 429 and r.json()["error"]["code"] == "too_many_jobs"
            bad = c.post("/v1/chat/completions", json={"model": "prism-mini", "async": True,
                                                       "stream": True, "messages": []})
            assert bad.status_code == 400
    finally:
        g.stop()


def test_cancel_before_it_runs(sim_url, tmp_path):
    # One async job at a time: the second waits in the queue behind a slow first.
    g = setup.start(tmp_path, sim_url, jobs={"async_concurrency": 1})
    try:
        key = g.create_key(credits_usd=1.0)
        with _client(g, key) as c:
            slow = c.post("/v1/chat/completions", json={
                "model": "prism-mini", "async": True,
                "messages": [{"role": "user", "content": "slow [[sim delay_ms=1500]]"}]}).json()
            _poll(c, slow["id"], until=("running",))
            queued = c.post("/v1/chat/completions", json={
                "model": "prism-mini", "async": True,
                "messages": [{"role": "user", "content": "never"}]}).json()
            assert c.get(f"/v1/async/{queued['id']}").json()["status"] == "queued"
            gone = c.delete(f"/v1/async/{queued['id']}").json()
            assert gone["status"] == "cancelled" and gone["cost_micros"] == 0
            slow_done = _poll(c, slow["id"])
            assert slow_done["status"] == "succeeded"
            time.sleep(0.3)   # the runner had every chance to pick the cancelled one up
            assert c.get(f"/v1/async/{queued['id']}").json()["status"] == "cancelled"
            assert c.get(f"/v1/async/{queued['id']}").json()["attempts"] == 0
        db = g.db()
        try:
            # Only the job that ran was charged.
            assert setup.settles(db, key["account_id"]) == {
                slow_done["request_id"]: slow_done["cost_micros"]}
            assert store.check_invariants(db) == []
        finally:
            db.close()
    finally:
        g.stop()
