"""Idempotency-Key on /v1/chat/completions: replay without a second charge."""
from __future__ import annotations

import json
import time

import httpx
import pytest
import trio

import harness
import store
from store.models import Hold, LedgerEntry

BODY = {"model": "prism-mini", "max_tokens": 200,
        "messages": [{"role": "user", "content": "say: the same answer twice"}]}


@pytest.fixture(scope="module")
def gw(sim_url, tmp_path_factory):
    gateway = harness.start_gateway(tmp_path_factory.mktemp("idem"), sim_url)
    yield gateway
    gateway.stop()


def headers(key, idem=None):
    h = {"authorization": f"Bearer {key['key']}"}
    if idem is not None:
        h["Idempotency-Key"] = idem
    return h


def settled(gw, account_id):
    """(number of holds, wallet balance) of an account, after checking the books."""
    db = gw.db()
    try:
        assert store.check_invariants(db) == []
        wallet = store.get_wallet(db, account_id)
        holds = Hold.select().where(Hold.wallet == wallet.id).count()
        settles = (LedgerEntry.select().where((LedgerEntry.wallet == wallet.id)
                                              & (LedgerEntry.kind == "settle")).count())
        assert holds == settles
        return holds, wallet.balance_micros
    finally:
        db.close()


def test_same_key_same_body_replays_without_a_second_charge(gw, sim_url):
    key = gw.create_key(credits_usd=1.0)
    with httpx.Client(base_url=gw.url, timeout=30) as c:
        c.post(sim_url + "/_sim/reset")
        first = c.post("/v1/chat/completions", json=BODY, headers=headers(key, "order-1"))
        assert first.status_code == 200 and "idempotent-replayed" not in first.headers
        # The same JSON with other key order and spacing is the same request.
        same = json.dumps(dict(reversed(list(BODY.items()))), indent=2)
        again = c.post("/v1/chat/completions", content=same,
                       headers={**headers(key, "order-1"), "content-type": "application/json"})
        stats = c.get(sim_url + "/_sim/stats").json()
    assert again.status_code == 200 and again.headers["idempotent-replayed"] == "true"
    assert again.content == first.content
    for name in ("x-request-id", "x-prism-cost", "x-prism-model", "content-type"):
        assert again.headers[name] == first.headers[name]
    assert stats["requests"] == 1
    holds, balance = settled(gw, key["account_id"])
    cost = int(first.headers["x-prism-cost"].replace(".", ""))
    assert (holds, balance) == (1, 1_000_000 - cost)


def test_same_key_other_body_is_422(gw):
    key = gw.create_key(credits_usd=1.0)
    with httpx.Client(base_url=gw.url, timeout=30) as c:
        assert c.post("/v1/chat/completions", json=BODY, headers=headers(key, "k")).status_code == 200
        r = c.post("/v1/chat/completions", json={**BODY, "max_tokens": 201}, headers=headers(key, "k"))
        assert r.status_code == 422
        assert r.json()["error"]["type"] == "idempotency_key_reused"
        # Keys belong to accounts: another account may use the same one.
        other = gw.create_key(credits_usd=1.0)
        r = c.post("/v1/chat/completions", json={**BODY, "max_tokens": 201}, headers=headers(other, "k"))
        assert r.status_code == 200 and "idempotent-replayed" not in r.headers
        bad = c.post("/v1/chat/completions", json=BODY, headers=headers(key, "has space"))
        assert bad.status_code == 400
    assert settled(gw, key["account_id"])[0] == 1


async def test_a_concurrent_duplicate_gets_409_then_the_replay(gw):
    key = gw.create_key(credits_usd=1.0)
    slow = {**BODY, "messages": [{"role": "user", "content": "[[sim delay_ms=800]] say: slow"}]}
    results: dict[str, httpx.Response] = {}
    async with httpx.AsyncClient(base_url=gw.url, timeout=30) as c:
        async def first():
            results["first"] = await c.post("/v1/chat/completions", json=slow,
                                            headers=headers(key, "dup"))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(first)
            await trio.sleep(0.3)
            results["second"] = await c.post("/v1/chat/completions", json=slow,
                                             headers=headers(key, "dup"))
        third = await c.post("/v1/chat/completions", json=slow, headers=headers(key, "dup"))
    second = results["second"]
    assert second.status_code == 409
    assert second.json()["error"]["type"] == "idempotency_in_progress"
    assert 1 <= int(second.headers["retry-after"]) <= 5
    assert results["first"].status_code == 200
    assert third.headers["idempotent-replayed"] == "true"
    assert third.content == results["first"].content
    assert settled(gw, key["account_id"])[0] == 1


def test_errors_are_not_stored_so_a_retry_runs(gw):
    key = gw.create_key(credits_usd=0.000001)
    with httpx.Client(base_url=gw.url, timeout=30) as c:
        r = c.post("/v1/chat/completions", json=BODY, headers=headers(key, "topup"))
        assert r.status_code == 402
        gw.admin.post(f"/-/keys/{key['id']}/credits", json={"amount_usd": 1})
        r = c.post("/v1/chat/completions", json=BODY, headers=headers(key, "topup"))
        assert r.status_code == 200 and "idempotent-replayed" not in r.headers


def test_streams_are_stored_and_replayed_whole(gw, sim_url):
    key = gw.create_key(credits_usd=1.0)
    body = {**BODY, "stream": True, "stream_options": {"include_usage": True}}
    with httpx.Client(base_url=gw.url, timeout=30) as c:
        c.post(sim_url + "/_sim/reset")
        first = c.post("/v1/chat/completions", json=body, headers=headers(key, "s"))
        again = c.post("/v1/chat/completions", json=body, headers=headers(key, "s"))
        stats = c.get(sim_url + "/_sim/stats").json()
    assert first.status_code == again.status_code == 200
    assert first.content.endswith(b"data: [DONE]\n\n") and again.content == first.content
    assert again.headers["content-type"].startswith("text/event-stream")
    assert again.headers["idempotent-replayed"] == "true"
    assert "x-prism-replay-incomplete" not in again.headers
    assert stats["requests"] == 1
    assert settled(gw, key["account_id"])[0] == 1


def test_a_stream_left_early_replays_what_was_sent_and_bills_once(gw):
    key = gw.create_key(credits_usd=1.0)
    words = " ".join(f"w{i}" for i in range(300))
    body = {**BODY, "stream": True, "max_tokens": 1000,
            "messages": [{"role": "user", "content": f"[[sim chunk_delay_ms=20]] say: {words}"}]}
    with httpx.Client(base_url=gw.url, timeout=30) as c:
        with c.stream("POST", "/v1/chat/completions", json=body, headers=headers(key, "cut")) as r:
            first_chunk = next(r.iter_raw())
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            again = c.post("/v1/chat/completions", json=body, headers=headers(key, "cut"))
            if again.status_code != 409:
                break
            time.sleep(0.1)
    assert again.status_code == 200 and again.headers["x-prism-replay-incomplete"] == "true"
    assert again.content.startswith(first_chunk) and b"[DONE]" not in again.content
    holds, _ = settled(gw, key["account_id"])
    assert holds == 1
