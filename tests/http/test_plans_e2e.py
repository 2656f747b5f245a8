"""Plans, windows, the free tier and rate limits through a real gateway and SQLite file."""
from __future__ import annotations

import httpx
import pytest
import trio

import harness
import store
from store.models import Hold, QuotaHold, RequestLog

PLANS = [
    {"id": "tiny", "window_5h_usd": 0.004, "window_7d_usd": 1.0, "fallthrough_to_wallet": False},
    {"id": "spill", "window_5h_usd": 0.004, "fallthrough_to_wallet": True},
    {"id": "free", "free": True, "daily_input_tokens": 100000, "daily_output_tokens": 120,
     "max_tokens": 50, "modes": ["eco"], "streaming": False, "session_messages": 5,
     "fallthrough_to_wallet": False},
    {"id": "mini-only", "models": ["mini"]},
    {"id": "limited", "key_rpm": 3},
    {"id": "race", "window_5h_usd": 0.02, "fallthrough_to_wallet": False},
]
# prism-mini in the harness: $1 / $2 per Mtok, so max_tokens=1000 holds ~$0.002.
BODY = {"model": "prism-mini", "max_tokens": 1000,
        "messages": [{"role": "user", "content": "say: ok"}]}
# A reply as long as max_tokens allows: ~1100 prompt + 1000 output tokens, ~$0.0031,
# so a settlement uses nearly all of its hold.
LONG = {**BODY, "messages": [{"role": "user", "content": "say: " + "lorem " * 1100}]}


@pytest.fixture(scope="module")
def gw(sim_url, tmp_path_factory):
    gateway = harness.start_gateway(tmp_path_factory.mktemp("plans"), sim_url, plans=PLANS)
    yield gateway
    gateway.stop()


def auth(key):
    return {"authorization": f"Bearer {key['key']}"}


def post(gw, key, body=BODY, **headers):
    with httpx.Client(base_url=gw.url, timeout=30) as client:
        return client.post("/v1/chat/completions", json=body, headers={**auth(key), **headers})


def books(gw):
    db = gw.db()
    try:
        assert store.check_invariants(db) == []
        assert store.open_holds(db) == [] and store.quota_holds(db, state="open") == []
    finally:
        db.close()


def test_window_pays_first_then_refuses_with_the_reset_time(gw):
    key = gw.create_key(credits_usd=1.0, plan="tiny")
    r = post(gw, key, LONG)
    assert r.status_code == 200, r.text
    assert r.headers["x-prism-funded-by"] == "window"
    assert r.headers["x-prism-wallet-remaining"] == "1.000000"        # the wallet untouched
    cost = int(r.headers["x-prism-cost"].replace(".", ""))
    assert 3000 < cost < 4000
    assert r.headers["x-prism-window-remaining"] == f"0.{4000 - cost:06d}"
    assert r.headers["x-prism-windows-remaining"] == (f"5h=0.{4000 - cost:06d}, "
                                                      f"7d=0.{1_000_000 - cost:06d}")
    refused = [post(gw, key, LONG)]
    assert refused[0].status_code == 429, refused[0].text
    err = refused[0].json()["error"]
    assert err["type"] == "quota_exceeded" and err["code"] == "window_5h"
    assert "5h window" in err["message"] and "resets at" in err["message"]
    reset = refused[0].headers["x-prism-quota-reset"]
    assert reset.endswith("Z") and reset in err["message"]
    retry = int(refused[0].headers["retry-after"])
    assert 4 * 3600 < retry <= 5 * 3600
    books(gw)


def test_fallthrough_to_the_wallet_and_a_402_that_names_both(gw):
    key = gw.create_key(credits_usd=0.004, plan="spill")
    first = post(gw, key, LONG)
    assert first.headers["x-prism-funded-by"] == "window"
    second = post(gw, key, LONG)   # what is left of the window is too little
    assert second.status_code == 200 and second.headers["x-prism-funded-by"] == "wallet"
    spent = int(second.headers["x-prism-cost"].replace(".", ""))
    assert second.headers["x-prism-wallet-remaining"] == f"0.{4000 - spent:06d}"
    r = post(gw, key, LONG)
    assert r.status_code == 402, r.text
    err = r.json()["error"]
    assert err["type"] == "insufficient_balance" and "5h window" in err["message"]
    assert "retry-after" not in r.headers and "x-prism-quota-reset" in r.headers
    books(gw)


def test_free_tier_refusals_say_which_limit(gw):
    key = gw.create_key(credits_usd=0, plan="free")
    cases = [({**BODY, "max_tokens": 51}, "max_tokens"),
             ({**BODY, "max_tokens": 10, "stream": True}, "streaming")]
    for body, code in cases:
        r = post(gw, key, body)
        assert r.status_code == 403, r.text
        err = r.json()["error"]
        assert (err["type"], err["code"]) == ("free_tier_limit", code)
        assert code in err["message"]
    # No max_tokens: the cap is the default, so the hold and the upstream call use 50.
    r = post(gw, key, {**LONG, "max_tokens": None})
    assert r.status_code == 200, r.text
    db = gw.db()
    try:
        hold = QuotaHold.get(QuotaHold.request_id == r.headers["x-request-id"])
        assert hold.output_tokens == 50 and hold.state == "settled"
        assert hold.used_output_tokens == int(r.headers["x-prism-tokens-out"])
    finally:
        db.close()
    assert r.headers["x-prism-wallet-remaining"] == "0.000000"   # free: nothing charged to it
    assert hold.used_output_tokens == 50
    assert r.headers["x-prism-daily-output-tokens-remaining"] == "70"
    # Output tokens run out: each request holds and uses 50 of the 120 a day.
    assert post(gw, key, {**LONG, "max_tokens": 50}).status_code == 200
    r = post(gw, key, {**LONG, "max_tokens": 50})
    assert r.status_code == 403
    err = r.json()["error"]
    assert (err["type"], err["code"]) == ("free_tier_limit", "daily_output_tokens")
    assert "output tokens" in err["message"] and "resets at" in err["message"]
    assert r.headers["x-prism-quota-reset"].endswith("T00:00:00Z")
    books(gw)


def test_plan_model_restriction(gw):
    key = gw.create_key(credits_usd=1.0, plan="mini-only")
    assert post(gw, key).status_code == 200
    r = post(gw, key, {**BODY, "model": "prism-big"})
    assert r.status_code == 403
    err = r.json()["error"]
    assert (err["type"], err["code"]) == ("plan_restricted", "model_not_allowed")


def test_rate_limit_429_with_headers_and_no_hold(gw):
    key = gw.create_key(credits_usd=1.0, plan="limited")
    ok = [post(gw, key) for _ in range(3)]
    assert [r.status_code for r in ok] == [200, 200, 200]
    assert [r.headers["ratelimit-remaining"] for r in ok] == ["2", "1", "0"]
    assert ok[0].headers["ratelimit-limit"] == "3"
    assert 'name="key-rpm"' in ok[0].headers["ratelimit-policy"]
    r = post(gw, key)
    assert r.status_code == 429
    err = r.json()["error"]
    assert (err["type"], err["code"]) == ("rate_limited", "key_rpm")
    assert 1 <= int(r.headers["retry-after"]) <= 20
    assert r.headers["ratelimit-remaining"] == "0"
    db = gw.db()
    try:
        rid = r.headers["x-request-id"]
        assert Hold.select().where(Hold.request_id == rid).count() == 0
        assert RequestLog.get_by_id(rid).error_type == "rate_limited"
    finally:
        db.close()


def test_stream_headers_then_the_final_figures_by_request_id(gw):
    key = gw.create_key(credits_usd=1.0, plan="tiny")
    body = {**BODY, "stream": True, "max_tokens": 100}
    with httpx.Client(base_url=gw.url, timeout=30) as client:
        with client.stream("POST", "/v1/chat/completions", json=body, headers=auth(key)) as r:
            assert r.status_code == 200
            rid = r.headers["x-request-id"]
            # sent before settlement: the figures after the worst-case hold
            assert r.headers["x-prism-funded-by"] == "window"
            during = r.headers["x-prism-window-remaining"]
            text = r.read().decode()
        assert "[DONE]" in text
        rec = client.get(f"/v1/requests/{rid}", headers=auth(key)).json()
    assert rec["request_id"] == rid and rec["funded_by"] == "window" and rec["stream"]
    assert rec["cost_micros"] > 0 and rec["window_hold"]["state"] == "settled"
    assert rec["window_hold"]["charged_micros"] == rec["cost_micros"]
    after = rec["now"]["windows"]["5h"]["remaining_micros"]
    assert after == 4000 - rec["cost_micros"] > int(during.replace(".", ""))


async def test_concurrent_requests_never_overrun_a_window(gw, sim_url):
    key = gw.create_key(credits_usd=0, plan="race")
    body = {**BODY, "messages": [{"role": "user", "content": "[[sim delay_ms=300]] say: ok"}]}
    statuses: list[int] = []
    async with httpx.AsyncClient(base_url=gw.url, timeout=60,
                                 limits=httpx.Limits(max_connections=120)) as client:
        await client.post(sim_url + "/_sim/reset")

        async def one() -> None:
            r = await client.post("/v1/chat/completions", json=body, headers=auth(key))
            statuses.append(r.status_code)

        async with trio.open_nursery() as nursery:
            for _ in range(100):
                nursery.start_soon(one)
        stats = (await client.get(sim_url + "/_sim/stats")).json()
    assert set(statuses) <= {200, 429}, statuses
    served = statuses.count(200)
    assert served >= 9                     # 0.02 / ~0.002 worst case each
    assert stats["requests"] == served     # nothing reached the upstream without a hold
    db = gw.db()
    try:
        holds = store.quota_holds(db, key["account_id"])
        assert len(holds) == served and all(h["state"] == "settled" for h in holds)
        assert sum(h["charged_micros"] for h in holds) <= 20_000
        assert store.check_invariants(db) == []
    finally:
        db.close()


def test_free_tier_mode_and_session_limits(gw):
    key = gw.create_key(credits_usd=0, plan="free")
    small = {**BODY, "max_tokens": 5}
    r = post(gw, key, small, **{"X-Prism-Mode": "sport"})
    assert r.status_code == 403, r.text
    err = r.json()["error"]
    assert (err["type"], err["code"]) == ("free_tier_limit", "mode_not_allowed")
    assert "'sport'" in err["message"] and "paid plan" in err["message"]
    assert post(gw, key, small, **{"X-Prism-Mode": "eco"}).status_code == 200
    # Five messages a session: three turns store six (question and answer each); the
    # fourth question would be the seventh message.
    codes = [post(gw, key, small, **{"X-Prism-Mode": "eco", "X-Prism-Session": "chat-1"})
             for _ in range(4)]
    assert [r.status_code for r in codes] == [200, 200, 200, 403], [r.text for r in codes]
    err = codes[-1].json()["error"]
    assert (err["type"], err["code"]) == ("free_tier_limit", "session_messages")
    assert "new session" in err["message"]
    # Another session starts afresh.
    r = post(gw, key, small, **{"X-Prism-Mode": "eco", "X-Prism-Session": "chat-2"})
    assert r.status_code == 200
