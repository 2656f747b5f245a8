"""Shared state across 4 gateway processes: rate limits (Redis, and the store when
there is no Redis) and revocations reaching every process within a second.

The rate-limit window is scaled down for CI time: the limit is the real 600 requests
per minute with a one-second burst (10), under load for 12 s instead of 60 s. The
limiter is the same; GCRA admits burst + rate * elapsed, so the expectation scales
from 600 + 10 in a minute (570..630 asked) to 120 + 10 in 12 s, held to the same +/-5%.
"""
from __future__ import annotations

import time

import httpx
import pytest
import trio

import pgtest
from nodes import Node, write_config

PROCESSES = 4
LOAD_SECONDS = 12.0
RPM = 600
BURST = 10


@pytest.fixture(scope="module", params=["redis", "store"])
def limited(request, pg_store, sim_url, tmp_path_factory):
    cache = {"url": pgtest.REDIS, "prefix": pgtest.redis_prefix()} \
        if request.param == "redis" else {}
    nodes = [Node(write_config(tmp_path_factory.mktemp("lim"), sim_url, pg_store,
                               cache=cache, limits={"key_rpm": RPM,
                                                    "burst_seconds": BURST * 60 / RPM}))
             for _ in range(PROCESSES)]
    yield nodes
    for node in nodes:
        node.stop()
    if cache:
        import redis
        client = redis.Redis.from_url(pgtest.REDIS)
        for name in client.scan_iter(cache["prefix"] + "*"):
            client.delete(name)


async def test_a_600_rpm_key_gets_its_rate_across_four_processes(limited):
    nodes = limited
    key = nodes[0].create_key(credits_usd=50.0, name="limited")
    body = {"model": "prism-mini", "max_tokens": 5,
            "messages": [{"role": "user", "content": "say: hi"}]}
    counts = {200: 0, 429: 0}
    served_at: list[float] = []
    other: list = []

    async def hammer(node: Node, offset: float) -> None:
        async with httpx.AsyncClient(base_url=node.url, timeout=30) as client:
            await trio.sleep(offset)
            while trio.current_time() < stop:
                r = await client.post("/v1/chat/completions", json=body,
                                      headers={"authorization": f"Bearer {key['key']}"})
                if r.status_code in counts:
                    counts[r.status_code] += 1
                    if r.status_code == 200:
                        served_at.append(trio.current_time())
                else:
                    other.append((r.status_code, r.text[:200]))
                await trio.sleep(0.05)

    stop = trio.current_time() + LOAD_SECONDS
    async with trio.open_nursery() as nursery:
        for i, node in enumerate(nodes):
            for j in range(2):            # ~80 attempts/s offered against 10/s allowed
                nursery.start_soon(hammer, node, (i * 2 + j) * 0.006)
    # The span the limiter was under load: from the first admission to the last (the
    # processes' first answers take a moment to arrive, which a 60 s run would hide).
    span = max(served_at) - min(served_at)
    assert span > LOAD_SECONDS - 2
    expected = RPM * span / 60 + BURST
    assert not other
    assert counts[429] > counts[200]      # the load really exceeded the limit
    assert 0.95 * expected <= counts[200] <= 1.05 * expected, (counts, span)


def test_a_key_revoked_on_one_process_is_refused_by_the_others_within_a_second(
        pg_store, sim_url, tmp_path_factory):
    nodes = [Node(write_config(tmp_path_factory.mktemp("rev"), sim_url, pg_store))
             for _ in range(PROCESSES)]
    try:
        key = nodes[0].create_key(credits_usd=1.0, name="doomed")
        body = {"model": "prism-mini", "max_tokens": 5,
                "messages": [{"role": "user", "content": "say: hi"}]}
        auth = {"authorization": f"Bearer {key['key']}"}
        clients = [httpx.Client(base_url=n.url, timeout=10) for n in nodes]
        for c in clients:      # every process has the key in its cache (60 s TTL)
            assert c.post("/v1/chat/completions", json=body, headers=auth).status_code == 200
        assert nodes[0].admin.delete(f"/-/keys/{key['id']}").status_code == 200
        revoked_at = time.monotonic()
        refused_after = {}
        while len(refused_after) < PROCESSES - 1 and time.monotonic() - revoked_at < 5:
            for i, c in enumerate(clients[1:], 1):
                if i not in refused_after and c.post(
                        "/v1/chat/completions", json=body, headers=auth).status_code == 401:
                    refused_after[i] = time.monotonic() - revoked_at
            time.sleep(0.02)
        assert len(refused_after) == PROCESSES - 1, refused_after
        assert max(refused_after.values()) < 1.0, refused_after
        for c in clients:
            c.close()
    finally:
        for node in nodes:
            node.stop()
