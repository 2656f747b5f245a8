"""The close path under a fault: an exception raised where a request settles, after its
upstream answered, on every operation kind. The client gets an error (a 500, or an
in-band error event when a stream's headers are already out), the hold is voided once
(no settlement, no hold left, the wallet unchanged) and the request leaves exactly one
log row that says so. The fault is injected through the gateway's test-only
`close_fault` parameter (billing.ledger.Ledger), armed per route by the test."""
from __future__ import annotations

import sys
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "media"))
import media_setup as ms  # noqa: E402

import store  # noqa: E402

CHAT = {"model": "prism-mini", "messages": [{"role": "user", "content": "say: hi"}]}
GEMINI = {"contents": [{"role": "user", "parts": [{"text": "say: hi"}]}]}

# (name, path, body, streamed)
CASES = [
    ("chat", "/v1/chat/completions", CHAT, False),
    ("chat-stream", "/v1/chat/completions", {**CHAT, "stream": True}, True),
    ("completions", "/v1/completions", {"model": "prism-mini", "prompt": "say: hi"}, False),
    ("completions-stream", "/v1/completions",
     {"model": "prism-mini", "prompt": "say: hi", "stream": True}, True),
    ("responses", "/v1/responses", {"model": "prism-mini", "input": "say: hi"}, False),
    ("responses-stream", "/v1/responses",
     {"model": "prism-mini", "input": "say: hi", "stream": True}, True),
    ("messages", "/v1/messages", {**CHAT, "max_tokens": 50}, False),
    ("messages-stream", "/v1/messages", {**CHAT, "max_tokens": 50, "stream": True}, True),
    ("generate", "/v1beta/models/prism-mini:generateContent", GEMINI, False),
    ("generate-stream", "/v1beta/models/prism-mini:streamGenerateContent?alt=sse", GEMINI, True),
    ("images", "/v1/images/generations", {"model": "img", "prompt": "a cube", "n": 2}, False),
    ("videos", "/v1/videos", {"model": "vid", "prompt": "a cube"}, False),
]


class Faults:
    """The hook: raises while armed (tests run one request at a time against it)."""

    def __init__(self) -> None:
        self.armed = False
        self.fired: list[str] = []

    def __call__(self, route: str) -> None:
        if self.armed:
            self.fired.append(route)
            raise RuntimeError(f"injected close-path fault on {route}")


@pytest.fixture(scope="module")
def faults():
    return Faults()


@pytest.fixture(scope="module")
def gw(sim_url, tmp_path_factory, faults):
    tmp = tmp_path_factory.mktemp("fault")
    gateway = harness_start(tmp, sim_url, faults)
    yield gateway
    gateway.stop()


def harness_start(tmp, sim_url, faults):
    import harness
    return harness.start_gateway(tmp, sim_url, close_fault=faults,
                                 **ms.media_overrides(tmp, sim_url))


def _record(gw, account_id: str, request_id: str) -> dict | None:
    db = gw.db()
    try:
        return store.request_record(db, account_id, request_id)
    finally:
        db.close()


@pytest.mark.parametrize("name,path,body,streamed", CASES, ids=[c[0] for c in CASES])
def test_fault_after_the_upstream_answered_voids_once(gw, faults, name, path, body, streamed):
    key = gw.create_key(credits_usd=5.0)
    account = key["account_id"]
    before = ms.wallet(gw, account)
    faults.fired.clear()
    faults.armed = True
    try:
        r = httpx.post(gw.url + path, json=body, timeout=30,
                       headers={"authorization": f"Bearer {key['key']}"})
    finally:
        faults.armed = False
    assert len(faults.fired) == 1, f"the hook ran {faults.fired}"
    rid = r.headers["x-request-id"]
    if streamed:
        # The headers were out before the close: the stream ends in an error event
        # instead of the bill, and carries no cost line.
        assert r.status_code == 200
        assert "nothing was charged" in r.text and "prism cost=" not in r.text
    else:
        assert r.status_code == 500, r.text
        assert "Traceback" not in r.text and "injected" not in r.text
    if name == "videos":
        ms.wait_for(lambda: not [h for h in ms.open_holds(gw) if h.account_id == account])
    assert [h for h in ms.open_holds(gw) if h.account_id == account] == []
    assert ms.wallet(gw, account) == before
    rec = _record(gw, account, rid)
    assert rec is not None, "no log row for the request"
    closing = [e["kind"] for e in rec["wallet_entries"] if e["kind"] in ("settle", "void", "expire")]
    assert closing == ["void"], rec["wallet_entries"]
    assert rec["log"]["cost_micros"] == 0 and rec["log"]["status"] >= 500
    assert ms.invariants(gw) == []


def test_unarmed_hook_changes_nothing(gw, faults):
    key = gw.create_key(credits_usd=5.0)
    r = httpx.post(gw.url + "/v1/chat/completions", json=CHAT, timeout=30,
                   headers={"authorization": f"Bearer {key['key']}"})
    assert r.status_code == 200
    rec = _record(gw, key["account_id"], r.headers["x-request-id"])
    assert [e["kind"] for e in rec["wallet_entries"]][-1] == "settle"
    assert rec["log"]["cost_micros"] > 0
