"""Money through the whole stack: real gateway, simulator over HTTP, real SQLite file."""
from __future__ import annotations

import time

import httpx
import trio

import store
from store.models import Hold, LedgerEntry, RequestLog


def _invariants(gw):
    db = gw.db()
    try:
        return store.check_invariants(db)
    finally:
        db.close()


def _wait_no_open_holds(gw, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        db = gw.db()
        try:
            if not store.open_holds(db):
                return
        finally:
            db.close()
        time.sleep(0.05)
    raise AssertionError("holds still open")


def test_disconnect_after_first_chunk_settles_the_hold(fresh_gateway):
    gw = fresh_gateway
    key = gw.create_key(credits_usd=1.0)
    words = " ".join(f"word{i}" for i in range(200))
    body = {"model": "prism-mini", "stream": True,
            "messages": [{"role": "user", "content": f"[[sim chunk_delay_ms=20]] say: {words}"}]}
    with httpx.Client(base_url=gw.url, timeout=30) as client:
        with client.stream("POST", "/v1/chat/completions", json=body,
                           headers={"authorization": f"Bearer {key['key']}"}) as resp:
            assert resp.status_code == 200
            request_id = resp.headers["x-request-id"]
            first = next(resp.iter_raw())
            assert first.startswith(b"data: ")
        # leaving the block closes the connection mid-stream
    _wait_no_open_holds(gw)
    assert _invariants(gw) == []
    db = gw.db()
    try:
        hold = Hold.get(Hold.request_id == request_id)
        assert hold.state == "settled"
        # billed for the prompt plus what was delivered: more than zero, far below the hold
        assert 0 < hold.charged_micros < hold.amount_micros
        log = RequestLog.get_by_id(request_id)
        assert log.estimated and log.stream and log.status == 499
        assert log.tokens_in > 0
        assert log.tokens_out < 100  # nowhere near the full ~600-token reply
        assert hold.charged_micros == log.tokens_in * 1 + log.tokens_out * 2
        wallet = store.get_wallet(db, key["account_id"])
        rows = list(LedgerEntry.select().where(LedgerEntry.wallet == wallet.id))
        assert wallet.balance_micros == sum(r.amount_micros for r in rows)
        assert wallet.held_micros == 0
    finally:
        db.close()


async def test_200_concurrent_requests_against_a_wallet_for_50(fresh_gateway, sim_url):
    gw = fresh_gateway
    body = {"model": "prism-mini", "max_tokens": 1000,
            "messages": [{"role": "user", "content": "[[sim delay_ms=400]] say: ok"}]}
    async with httpx.AsyncClient(base_url=gw.url, timeout=60,
                                 limits=httpx.Limits(max_connections=250)) as client:
        # Learn the exact worst-case hold from one probe on its own wallet.
        probe = gw.create_key(credits_usd=1.0)
        r = await client.post("/v1/chat/completions", json=body,
                              headers={"authorization": f"Bearer {probe['key']}"})
        assert r.status_code == 200, r.text
        db = gw.db()
        hold_amount = Hold.get(Hold.request_id == r.headers["x-request-id"]).amount_micros
        db.close()

        key = gw.create_key(credits_usd=(50 * hold_amount + hold_amount // 2) / 1e6)
        await client.post(sim_url + "/_sim/reset")
        statuses: list[int] = []
        unexpected: list[tuple[int, str]] = []

        async def one() -> None:
            resp = await client.post("/v1/chat/completions", json=body,
                                     headers={"authorization": f"Bearer {key['key']}"})
            statuses.append(resp.status_code)
            if resp.status_code not in (200, 402):
                unexpected.append((resp.status_code, resp.text[:300]))
            if resp.status_code == 402:
                assert resp.json()["error"]["type"] == "insufficient_balance"

        async with trio.open_nursery() as nursery:
            for _ in range(200):
                nursery.start_soon(one)
        stats = (await client.get(sim_url + "/_sim/stats")).json()

    assert set(statuses) <= {200, 402}, unexpected
    served = statuses.count(200)
    assert served >= 50
    # The simulator's own counter can read 51 for an instant (it decrements after the
    # gateway already has the reply and has admitted the next request), so the
    # in-flight bound is checked on the holds themselves: their open intervals.
    assert stats["max_in_flight"] <= 51
    assert stats["requests"] == served  # nothing reached the upstream without a hold
    _wait_no_open_holds(gw)
    assert _invariants(gw) == []
    db = gw.db()
    try:
        wallet = store.get_wallet(db, key["account_id"])
        assert wallet.balance_micros >= 0
        holds = list(Hold.select().where(Hold.wallet == wallet.id))
        assert len(holds) == served and all(h.state == "settled" for h in holds)
        # Ledger row ids are the commit order: replaying them gives the exact number of
        # holds open at every instant.
        open_now = peak = 0
        for row in LedgerEntry.select().where(LedgerEntry.wallet == wallet.id).order_by(LedgerEntry.id):
            open_now += {"hold": 1, "settle": -1, "void": -1, "expire": -1}.get(row.kind, 0)
            peak = max(peak, open_now)
        assert peak <= 50
        spent = sum(h.charged_micros for h in holds)
        assert wallet.balance_micros == 50 * hold_amount + hold_amount // 2 - spent
    finally:
        db.close()


BAD_BODIES = [
    ("truncated JSON", b'{"model": "prism-mini", "messages": [', "not valid JSON"),
    ("non-UTF-8", b'{"model": "prism-mini", "messages": "\xff\xfe"}', "UTF-8"),
    ("JSON array", b'[{"model": "prism-mini"}]', "JSON object"),
    ("empty", b"", "empty"),
    ("missing messages", b'{"model": "prism-mini"}', "messages"),
    ("messages wrong type", b'{"model": "prism-mini", "messages": "hi"}', "messages"),
    ("content wrong type", b'{"model": "prism-mini", "messages": [{"role": "user", "content": 5}]}',
     "content"),
    ("temperature wrong type",
     b'{"model": "prism-mini", "messages": [{"role": "user", "content": "x"}], "temperature": "hot"}',
     "temperature"),
    ("max_tokens negative",
     b'{"model": "prism-mini", "messages": [{"role": "user", "content": "x"}], "max_tokens": -1}',
     "max_tokens"),
    ("stream wrong type",
     b'{"model": "prism-mini", "messages": [{"role": "user", "content": "x"}], "stream": "yes"}',
     "stream"),
    ("deep nesting", b"[" * 100000 + b"]" * 100000, "JSON"),
]


def test_malformed_input_gets_a_clear_4xx_and_no_ledger_row(fresh_gateway):
    gw = fresh_gateway
    key = gw.create_key(credits_usd=1.0)
    headers = {"authorization": f"Bearer {key['key']}", "content-type": "application/json"}
    db = gw.db()
    rows_before = LedgerEntry.select().count()
    db.close()
    with httpx.Client(base_url=gw.url, timeout=60) as client:
        for name, raw, fragment in BAD_BODIES:
            r = client.post("/v1/chat/completions", content=raw, headers=headers)
            assert r.status_code == 400, (name, r.status_code, r.text)
            err = r.json()["error"]
            assert err["type"] == "invalid_request", name
            assert fragment.lower() in err["message"].lower(), (name, err["message"])
        big = b'{"model": "prism-mini", "messages": [{"role": "user", "content": "' + b"a" * (11 * 1024 * 1024) + b'"}]}'
        r = client.post("/v1/chat/completions", content=big, headers=headers)
        assert r.status_code == 413, r.text
        assert r.json()["error"]["type"] == "request_too_large"
        r = client.post("/v1/chat/completions", content=b'{"model": "prism-mini"}',
                        headers={"content-type": "application/json"})
        assert r.status_code == 401 and r.json()["error"]["type"] == "invalid_api_key"
    db = gw.db()
    try:
        assert LedgerEntry.select().count() == rows_before
        assert store.check_invariants(db) == []
        # every request still left its request-log row
        assert RequestLog.select().where(RequestLog.status >= 400).count() >= len(BAD_BODIES) + 2
    finally:
        db.close()
