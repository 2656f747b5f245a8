"""GET /-/cluster/nodes with two real `prism serve` processes on one SQLite store: each
lists the other from its heartbeat row, with what it is doing, and a process that died
without leaving is marked stale."""
from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

import harness
import store
import store.cluster

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scale"))
from nodes import Node, write_config  # noqa: E402


@pytest.fixture
def sim():
    s = harness.start_simulator()
    yield s
    s.stop()


def _nodes(node: Node) -> dict:
    r = node.admin.get("/-/cluster/nodes")
    assert r.status_code == 200, r.text
    return r.json()


def _until(fn, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        assert time.monotonic() < deadline, "condition not met"
        time.sleep(0.1)


def test_two_processes_on_one_sqlite_store_list_each_other(sim, tmp_path, monkeypatch):
    monkeypatch.setenv("PRISM_TEST_ROTATION_KEY", "sk-upstream-rotated-cluster")
    db_path = tmp_path / "shared.db"
    # Two config files (each process needs its own control socket), one store.
    configs = []
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        configs.append(write_config(tmp_path / name, sim.url, f"sqlite:///{db_path}"))
    started: dict[int, Node] = {}
    threads = [threading.Thread(target=lambda i=i: started.__setitem__(i, Node(configs[i])))
               for i in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert set(started) == {0, 1}, "a gateway process did not start"
        a, b = started[0], started[1]
        view = _until(lambda: (v := _nodes(a)) and len(v["nodes"]) == 2 and v)
        by_pid = {n["pid"]: n for n in view["nodes"]}
        assert set(by_pid) == {a.proc.pid, b.proc.pid}
        me, other = by_pid[a.proc.pid], by_pid[b.proc.pid]
        assert me["self"] is True and other["self"] is False and view["node"] == me["id"]
        for n in (me, other):
            assert n["stale"] is False and n["version"] and n["host"]
            assert n["started_at"] <= n["seen_at"] and n["in_flight"] == 0
        assert me["config_hash"] != other["config_hash"]   # the socket paths differ
        assert all(len(n["config_hash"]) == 16 for n in (me, other))
        assert {n["id"] for n in _nodes(b)["nodes"]} == {me["id"], other["id"]}

        # A key rotation started through a reaches b through the store's event feed.
        r = a.admin.post("/-/admin/providers/up/rotate",
                         json={"api_key_env": "PRISM_TEST_ROTATION_KEY", "share": 0.25})
        assert r.status_code == 201, r.text
        _until(lambda: b.admin.get("/-/admin/providers/up/rotation").json()["state"]
               == "rotating", timeout=5)

        # A request in flight on b shows on a's view at b's next heartbeat.
        key = b.create_key()["key"]
        slow = threading.Thread(target=lambda: httpx.post(
            b.url + "/v1/chat/completions", timeout=30, headers={"authorization": f"Bearer {key}"},
            json={"model": "prism-mini",
                  "messages": [{"role": "user", "content": "[[sim delay_ms=3000]] slow"}]}))
        slow.start()
        _until(lambda: any(n["pid"] == b.proc.pid and n["in_flight"] == 1
                           for n in _nodes(a)["nodes"]), timeout=8)
        slow.join()

        # A process that died without leaving: its row stays, marked stale.
        db = store.open_database(str(db_path))
        try:
            store.cluster.heartbeat(db, "node_gone_1", "elsewhere", 4242, time.time() - 120,
                                    {"open": 3, "version": "0.0.1", "config_hash": "x"},
                                    now=time.time() - 60)
        finally:
            db.close()
        gone = next(n for n in _nodes(a)["nodes"] if n["id"] == "node_gone_1")
        assert gone["stale"] is True and gone["in_flight"] == 3

        # b leaves cleanly: its row goes.
        assert b.stop() == 0
        assert {n["pid"] for n in _nodes(a)["nodes"]} == {a.proc.pid, 4242}
    finally:
        for node in started.values():
            node.stop()
