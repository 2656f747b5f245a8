"""`prism serve --workers N`: one port, N processes, a dead worker replaced, a drain
on stop; on SQLite (WAL) as on PostgreSQL."""
from __future__ import annotations

import os
import signal
import threading
import time

import httpx
import pytest

import store
from nodes import Node, write_config

BODY = {"model": "prism-mini", "max_tokens": 20,
        "messages": [{"role": "user", "content": "say: hello"}]}


def _children(pid: int) -> set[int]:
    """The live child processes of `pid`, from /proc (no psutil needed)."""
    out = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            out.add(int(entry))
    return out


def _nodes(node: Node) -> set[int]:
    r = node.admin.get("/-/cluster")
    assert r.status_code == 200, r.text
    assert r.json()["shared"] is True
    return {n["pid"] for n in r.json()["nodes"]}


def _wait(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.parametrize("engine", ["sqlite", "postgresql"])
def test_workers_share_the_port_survive_a_kill_and_drain_on_stop(engine, sim_url, tmp_path,
                                                                 request):
    if engine == "sqlite":
        url = "sqlite:///" + str(tmp_path / "prism.db")
    else:
        url = request.getfixturevalue("pg_store")
    cfg = write_config(tmp_path, sim_url, url,
                       server={"host": "127.0.0.1", "port": 0, "shutdown_grace": 5.0})
    parent = Node(cfg, "--workers", "2")
    try:
        workers = _wait(lambda: len(_children(parent.proc.pid)) == 2
                        and _children(parent.proc.pid), 30, "two workers")
        key = parent.create_key(credits_usd=1.0)
        auth = {"authorization": f"Bearer {key['key']}"}
        with httpx.Client(base_url=parent.url, timeout=30) as c:
            for _ in range(10):
                assert c.post("/v1/chat/completions", json=BODY, headers=auth).status_code == 200
        _wait(lambda: _nodes(parent) >= workers, 15, "both workers' heartbeats")

        # A worker that dies is replaced, and the port keeps answering meanwhile.
        dead = min(workers)
        os.kill(dead, signal.SIGKILL)
        replaced = _wait(lambda: (k := _children(parent.proc.pid)) and len(k) == 2
                         and dead not in k and k, 30, "a replacement worker")
        _wait(lambda: (replaced - workers) <= _nodes(parent), 30, "the new worker's heartbeat")
        with httpx.Client(base_url=parent.url, timeout=30) as c:
            for _ in range(10):
                assert c.post("/v1/chat/completions", json=BODY, headers=auth).status_code == 200

        # Stop drains: a stream in flight when SIGTERM arrives still finishes whole.
        words = " ".join(f"w{i}" for i in range(30))
        stream_body = {"model": "prism-mini", "stream": True, "max_tokens": 200,
                       "messages": [{"role": "user", "content":
                                     f"[[sim chunk_chars=4 chunk_delay_ms=60]] say: {words}"}]}
        got: dict = {}

        def stream() -> None:
            with httpx.stream("POST", parent.url + "/v1/chat/completions", json=stream_body,
                              headers=auth, timeout=30) as r:
                got["status"] = r.status_code
                got["text"] = b"".join(r.iter_raw()).decode()

        t = threading.Thread(target=stream)
        t.start()
        time.sleep(0.5)
        parent.proc.send_signal(signal.SIGTERM)
        t.join(30)
        assert parent.proc.wait(30) == 0
        assert got["status"] == 200 and "data: [DONE]" in got["text"]
        assert not _children(parent.proc.pid)
    finally:
        parent.kill()
    db = store.open_database(url[len("sqlite:///"):] if engine == "sqlite" else url)
    try:
        assert store.check_invariants(db) == [] and not store.open_holds(db)
    finally:
        db.close()
