"""Cancel storm: streams cut at random points must leave the books exact.

Per seed, 500 streams through a real gateway (real sockets, SQLite file, the
in-process simulator upstream),
from wallet-only accounts and from plan accounts whose small 5h window falls through
to the wallet, each hung up at a random point: before the response headers, at the
first byte, mid-stream, or after the last chunk. Afterwards every hold, wallet and
window alike, must have ended exactly once by its own request (the sweeper finds
nothing left to expire), every wallet must equal the sum of its ledger rows, and every
hold must have its request-log row.
"""
from __future__ import annotations

import random
import time
from collections import Counter

import httpx
import pytest
import trio

import harness
import store
from store.models import Hold, RequestLog

STREAMS = 500
CONCURRENCY = 50
KINDS = ("before_headers", "first_byte", "mid_stream", "after_last")
WORDS = " ".join(f"w{i}" for i in range(16))   # ~10 chunks of 8 characters
PLANS = [{"id": "storm", "window_5h_usd": 0.004, "fallthrough_to_wallet": True}]


@pytest.fixture(scope="module")
def gw(tmp_path_factory):
    # The in-process simulator upstream: the HTTP one in the same 2-core test process
    # would triple the run time without adding to what is tested (the money path).
    gateway = harness.start_gateway(tmp_path_factory.mktemp("storm"), None, plans=PLANS)
    yield gateway
    gateway.stop()


def body(kind: str, rng: random.Random) -> dict:
    delay = 80 if kind == "before_headers" else rng.choice([0, 5])
    prompt = f"[[sim delay_ms={delay} chunk_chars=8 chunk_delay_ms=2]] say: {WORDS}"
    return {"model": "prism-mini", "stream": True, "max_tokens": 200,
            "stream_options": {"include_usage": rng.random() < 0.5},
            "messages": [{"role": "user", "content": prompt}]}


async def one(client: httpx.AsyncClient, key: dict, kind: str, rng: random.Random,
              seen: Counter) -> None:
    headers = {"authorization": f"Bearer {key['key']}"}
    req = body(kind, rng)
    if kind == "before_headers":
        with trio.move_on_after(rng.uniform(0.0, 0.07)):
            async with client.stream("POST", "/v1/chat/completions", json=req,
                                     headers=headers) as r:
                seen["headers_arrived_anyway"] += 1
                await r.aread()
        return
    async with client.stream("POST", "/v1/chat/completions", json=req, headers=headers) as r:
        seen[r.status_code] += 1
        stop_after = {"first_byte": 1, "mid_stream": rng.randrange(2, 8)}.get(kind)
        n = 0
        async for _ in r.aiter_raw():
            n += 1
            if stop_after is not None and n >= stop_after:
                break   # leaving the block closes the connection mid-stream


async def storm(gw, seed: int) -> Counter:
    rng = random.Random(seed)
    keys = ([gw.create_key(credits_usd=5.0, name=f"wallet{seed}-{i}") for i in range(4)]
            + [gw.create_key(credits_usd=5.0, name=f"plan{seed}-{i}", plan="storm")
               for i in range(4)])
    jobs = [(rng.choice(keys), rng.choice(KINDS), random.Random(rng.random()))
            for _ in range(STREAMS)]
    seen: Counter = Counter(kind for _, kind, _ in jobs)
    limiter = trio.CapacityLimiter(CONCURRENCY)
    async with httpx.AsyncClient(base_url=gw.url, timeout=30,
                                 limits=httpx.Limits(max_connections=CONCURRENCY * 2)) as client:
        async def run(job):
            async with limiter:
                await one(client, *job, seen)

        async with trio.open_nursery() as nursery:
            for job in jobs:
                nursery.start_soon(run, job)
    return seen


def wait_until_closed(gw, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        db = gw.db()
        try:
            left = len(store.open_holds(db)) + len(store.quota_holds(db, state="open"))
        finally:
            db.close()
        if left == 0:
            return
        assert time.monotonic() < deadline, f"{left} holds still open"
        time.sleep(0.05)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_cancel_storm_leaves_exact_books(gw, seed):
    started = time.monotonic()
    seen = trio.run(storm, gw, seed)
    assert all(seen[k] > 50 for k in KINDS), seen
    wait_until_closed(gw)
    db = gw.db()
    try:
        # The sweeper: nothing left for it, every hold was ended by its own request.
        swept = store.sweep(db, time.time() + 10 * 86400)
        assert swept.holds == 0
        assert store.open_holds(db) == [] and store.quota_holds(db, state="open") == []
        assert store.check_invariants(db) == []
        wallets = {h.state for h in Hold.select()}
        windows = {h["state"] for h in store.quota_holds(db)}
        assert wallets <= {"settled", "voided"} and windows <= {"settled", "voided"}
        assert "settled" in wallets and "settled" in windows
        for account in store.account_summaries(db):
            rows = store.ledger_rows(db, account["id"])
            assert account["balance_micros"] == sum(r.amount_micros for r in rows)
            assert account["held_micros"] == 0
        request_ids = ([h.request_id for h in Hold.select()]
                       + [h["request_id"] for h in store.quota_holds(db)])
        assert len(request_ids) == len(set(request_ids))
        logged = {r.request_id for r in RequestLog.select(RequestLog.request_id)}
        assert set(request_ids) <= logged
    finally:
        db.close()
    assert time.monotonic() - started < 40
