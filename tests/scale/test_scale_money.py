"""The money suite against 4 gateway processes sharing one PostgreSQL store.

Each process is a real `prism serve` with its own event loop, writer pool and caches;
only the store is shared, so every guard tested here holds across processes, not just
across tasks: the overdraft race (1,000 concurrent requests over the 4 against a wallet
that covers 50 worst cases), the same race with one process SIGKILLed mid-stream, a
cancel storm, and idempotency replay with the duplicates sent to different processes.
"""
from __future__ import annotations

import random
import time

import httpx
import pytest
import trio

import store
from nodes import Node, write_config
from store.models import Hold, LedgerEntry

PROCESSES = 4
REQUESTS = 1000
COVERED = 50
BODY = {"model": "prism-mini", "max_tokens": 1000,
        "messages": [{"role": "user", "content": "[[sim delay_ms=300]] say: ok"}]}


@pytest.fixture(scope="module")
def cluster(pg_store, sim_url, tmp_path_factory):
    # A short hold TTL so that the crash test can watch the dead process's holds expire.
    def config():   # one per process: each has its own dashboard socket
        return write_config(tmp_path_factory.mktemp("node"), sim_url, pg_store,
                            server={"host": "127.0.0.1", "port": 0, "shutdown_grace": 2.0,
                                    "max_request_seconds": 60.0},
                            store={"hold_ttl_seconds": 90, "sweep_interval": 3600.0})

    nodes = [Node(config()) for _ in range(PROCESSES)]
    yield config, nodes
    for node in nodes:
        node.stop()


def _db(pg_store):
    return store.open_database(pg_store)


def _hold_amount(pg_store, node: Node) -> int:
    probe = node.create_key(credits_usd=1.0, name="probe")
    r = httpx.post(node.url + "/v1/chat/completions", json=BODY, timeout=30,
                   headers={"authorization": f"Bearer {probe['key']}"})
    assert r.status_code == 200, r.text
    db = _db(pg_store)
    try:
        return Hold.get(Hold.request_id == r.headers["x-request-id"]).amount_micros
    finally:
        db.close()


async def _race(urls: list[str], key: str, body: dict, statuses: list, *,
                stream: bool = False, during=None, flowing: list | None = None,
                lead: int = 0) -> None:
    """REQUESTS requests at once, round-robin over `urls`; `flowing[i]` counts the
    admitted streams (200) through urls[i] that have delivered their first bytes. With
    `lead`, that many go to the last url first, and the rest start once one of them
    streams: that process is then sure to hold some of the wallet when `during` acts."""
    clients = [httpx.AsyncClient(base_url=u, timeout=60,
                                 limits=httpx.Limits(max_connections=REQUESTS))
               for u in urls]

    async def one(i: int) -> None:
        client = clients[i % len(clients)]
        try:
            if stream:
                async with client.stream("POST", "/v1/chat/completions", json=body,
                                         headers={"authorization": f"Bearer {key}"}) as r:
                    first = r.status_code == 200
                    async for _ in r.aiter_raw():
                        if first and flowing is not None:
                            flowing[i % len(clients)] += 1
                        first = False
                    statuses.append(r.status_code)
            else:
                r = await client.post("/v1/chat/completions", json=body,
                                      headers={"authorization": f"Bearer {key}"})
                statuses.append(r.status_code)
                if r.status_code == 402:
                    assert r.json()["error"]["type"] == "insufficient_balance"
        except httpx.TransportError:
            statuses.append("cut")        # its process was killed under it

    leading = {len(urls) - 1 + n * len(urls) for n in range(lead)}
    try:
        async with trio.open_nursery() as nursery:
            for i in sorted(leading):
                nursery.start_soon(one, i)
            if lead:
                with trio.fail_after(30):
                    while flowing[-1] < 1:
                        await trio.sleep(0.01)
            for i in range(REQUESTS):
                if i not in leading:
                    nursery.start_soon(one, i)
            if during is not None:
                nursery.start_soon(during)
    finally:
        for c in clients:
            await c.aclose()


def _peak_open_holds(db, wallet_id: int) -> int:
    # Writes are serialised by the store's write lock, so ledger ids are commit order.
    open_now = peak = 0
    for row in (LedgerEntry.select().where(LedgerEntry.wallet == wallet_id)
                .order_by(LedgerEntry.id)):
        open_now += {"hold": 1, "settle": -1, "void": -1, "expire": -1}.get(row.kind, 0)
        peak = max(peak, open_now)
    return peak


def _wait_closed(pg_store, wallet_id, timeout=30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        db = _db(pg_store)
        try:
            left = Hold.select().where((Hold.wallet == wallet_id) & (Hold.state == "open")).count()
        finally:
            db.close()
        if left == 0:
            return
        assert time.monotonic() < deadline, f"{left} holds still open"
        time.sleep(0.1)


async def test_overdraft_race_over_four_processes(cluster, pg_store, sim_url):
    _, nodes = cluster
    hold = _hold_amount(pg_store, nodes[0])
    funds = COVERED * hold + hold // 2
    key = nodes[1].create_key(credits_usd=funds / 1e6, name="racer")
    httpx.post(sim_url + "/_sim/reset")
    statuses: list = []
    await _race([n.url for n in nodes], key["key"], BODY, statuses)
    stats = httpx.get(sim_url + "/_sim/stats").json()
    assert set(statuses) <= {200, 402}
    served = statuses.count(200)
    assert served >= COVERED
    assert stats["requests"] == served      # nothing reached the upstream without a hold
    db = _db(pg_store)
    try:
        wallet = store.get_wallet(db, key["account_id"])
        _wait_closed(pg_store, wallet.id)
        wallet = store.get_wallet(db, key["account_id"])
        assert store.check_invariants(db) == []
        holds = list(Hold.select().where(Hold.wallet == wallet.id))
        assert len(holds) == served and all(h.state == "settled" for h in holds)
        assert _peak_open_holds(db, wallet.id) <= COVERED
        spent = sum(h.charged_micros for h in holds)
        assert wallet.balance_micros == funds - spent >= 0
        assert wallet.held_micros == 0
    finally:
        db.close()


async def test_the_race_with_one_process_sigkilled_mid_stream(cluster, pg_store, sim_url):
    cfg, nodes = cluster
    victim = Node(cfg())                  # a fifth process, the one that dies
    hold = _hold_amount(pg_store, nodes[0])
    funds = COVERED * hold + hold // 2
    key = nodes[0].create_key(credits_usd=funds / 1e6, name="crash")
    body = {**BODY, "stream": True, "messages": [
        {"role": "user", "content": "[[sim chunk_chars=4 chunk_delay_ms=40]] say: "
                                    + " ".join(f"w{i}" for i in range(160))}]}
    urls = [n.url for n in nodes[1:]] + [victim.url]
    flowing = [0] * len(urls)

    # Streams of ~8 s, so that the victim is still sending when it is killed even if
    # this (busy) client reads the first bytes late. The victim takes the lead: its
    # first streams are admitted before the others race for the rest of the wallet.
    async def kill_mid_stream() -> None:
        with trio.fail_after(30):
            while flowing[-1] < 3:        # the victim is streaming answers
                await trio.sleep(0.02)
        await trio.sleep(0.3)             # the others' race is on
        victim.kill()

    statuses: list = []
    await _race(urls, key["key"], body, statuses, stream=True, during=kill_mid_stream,
                flowing=flowing, lead=6)
    # Streams on the victim were cut; the survivors' answered (how many depends on how
    # busy the machine is: the money checks below are what must hold regardless).
    assert "cut" in statuses and statuses.count(200) >= 1
    db = _db(pg_store)
    try:
        wallet = store.get_wallet(db, key["account_id"])
        # The survivors settle theirs; the dead process's holds stay open, never more
        # than the wallet covers, and the books balance with them open.
        time.sleep(1.0)       # every answer has ended; the survivors' settlements land
        opened = list(Hold.select().where((Hold.wallet == wallet.id)
                                          & (Hold.state == "open")))
        assert 0 < len(opened) <= COVERED
        assert store.check_invariants(db) == []
        assert _peak_open_holds(db, wallet.id) <= COVERED
        wallet = store.get_wallet(db, key["account_id"])
        assert wallet.balance_micros - wallet.held_micros >= 0
        # The sweeper (any process's) ends them once their TTL passes.
        swept = store.sweep(db, time.time() + 91)
        assert swept.wallet_holds >= len(opened)
        assert store.check_invariants(db) == []
        holds = list(Hold.select().where(Hold.wallet == wallet.id))
        assert all(h.state in ("settled", "expired") for h in holds)
        wallet = store.get_wallet(db, key["account_id"])
        spent = sum(h.charged_micros for h in holds)
        assert wallet.balance_micros == funds - spent >= 0 and wallet.held_micros == 0
    finally:
        db.close()


async def test_cancel_storm_over_four_processes(cluster, pg_store):
    _, nodes = cluster
    keys = [nodes[i % PROCESSES].create_key(credits_usd=2.0, name=f"storm{i}") for i in range(4)]
    rng = random.Random(17)
    words = " ".join(f"w{i}" for i in range(16))
    limiter = trio.CapacityLimiter(40)
    clients = [httpx.AsyncClient(base_url=n.url, timeout=30) for n in nodes]

    async def one(n: int) -> None:
        r = random.Random(rng.random())
        client, key = clients[n % PROCESSES], r.choice(keys)
        body = {"model": "prism-mini", "stream": True, "max_tokens": 200,
                "messages": [{"role": "user", "content":
                              f"[[sim chunk_chars=8 chunk_delay_ms=3]] say: {words}"}]}
        async with limiter:
            with trio.move_on_after(r.uniform(0.0, 0.15)):
                async with client.stream("POST", "/v1/chat/completions", json=body,
                                         headers={"authorization": f"Bearer {key['key']}"}) as s:
                    async for _ in s.aiter_raw():
                        pass

    async with trio.open_nursery() as nursery:
        for n in range(300):
            nursery.start_soon(one, n)
    for c in clients:
        await c.aclose()
    db = _db(pg_store)
    try:
        for key in keys:
            wallet = store.get_wallet(db, key["account_id"])
            _wait_closed(pg_store, wallet.id)
        assert store.check_invariants(db) == []
        for key in keys:
            wallet = store.get_wallet(db, key["account_id"])
            holds = list(Hold.select().where(Hold.wallet == wallet.id))
            assert all(h.state in ("settled", "voided") for h in holds)
            assert wallet.balance_micros == 2_000_000 - sum(h.charged_micros for h in holds)
    finally:
        db.close()


async def test_idempotent_duplicates_on_different_processes_charge_once(cluster, pg_store):
    _, nodes = cluster
    key = nodes[2].create_key(credits_usd=1.0, name="idem")
    body = {"model": "prism-mini", "max_tokens": 50,
            "messages": [{"role": "user", "content": "[[sim delay_ms=300]] say: once"}]}
    answers: list[httpx.Response] = []

    async def send(node: Node) -> None:
        async with httpx.AsyncClient(base_url=node.url, timeout=30) as c:
            for _ in range(20):
                r = await c.post("/v1/chat/completions", json=body, headers={
                    "authorization": f"Bearer {key['key']}", "Idempotency-Key": "order-42"})
                if r.status_code != 409:          # 409: still running elsewhere
                    answers.append(r)
                    return
                await trio.sleep(0.1)

    async with trio.open_nursery() as nursery:
        for node in nodes:
            nursery.start_soon(send, node)
    assert len(answers) == PROCESSES and all(a.status_code == 200 for a in answers)
    assert len({a.content for a in answers}) == 1
    assert sum(a.headers.get("idempotent-replayed") == "true" for a in answers) == PROCESSES - 1
    db = _db(pg_store)
    try:
        wallet = store.get_wallet(db, key["account_id"])
        holds = list(Hold.select().where(Hold.wallet == wallet.id))
        assert len(holds) == 1 and holds[0].state == "settled"
        assert wallet.balance_micros == 1_000_000 - holds[0].charged_micros
        assert store.check_invariants(db) == []
    finally:
        db.close()
