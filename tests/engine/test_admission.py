"""billing.admission against a real store: one request, one settlement; headers; limits."""
from __future__ import annotations

import math

import time

import pytest
import trio

import store
from gateway import canonical as c
from gateway import errors
from gateway.billing.plans import rate_limits
from gateway.config import parse_config
from gateway.engine.call import CallContext, Prepared
from gateway.routing.select import select
from gateway.server import build_services


@pytest.fixture
def services(tmp_path):
    raw = {"store": {"path": str(tmp_path / "prism.db")},
           "providers": [{"id": "sim", "kind": "simulator"}],
           "models": [{"id": "m", "input_usd_per_mtok": 1.0, "output_usd_per_mtok": 2.0,
                       "max_output_tokens": 1000, "routes": [{"provider": "sim", "model": "x"}]}],
           "plans": [{"id": "pro", "window_5h_usd": 1.0}],
           "limits": {"account_tpm": 5000}}
    config = parse_config(raw, base_dir=str(tmp_path))
    writer = store.Writer(config.store.path)
    s = build_services(config, writer, None)
    writer.start()
    yield s
    writer.close()


def account(s, plan=None, credits=1_000_000):
    def make(db):
        a = store.create_account(db, "t", plan=plan)
        store.top_up(db, a.id, credits, "seed")
        return a.id
    return s.writer.call_sync(make)


def prepared(s, account_id, n=0, max_tokens=1000, stream=False):
    req = c.Request(model="m", messages=(c.Message("user", (c.TextPart("hi"),)),),
                    max_tokens=max_tokens, stream=stream)
    ctx = CallContext(request_id=f"req_{n}", route="/v1/chat/completions", dialect="openai",
                      account_id=account_id, key_id="key_1")
    return Prepared(ctx, req, select(s.catalog, req), prompt_tokens=10)


def test_closing_twice_settles_once_and_notifies_once(services):
    s = services
    seen = []
    s.observers.append(seen.append)
    acct = account(s)
    prep = prepared(s, acct)

    async def main():
        await s.admission.admit(prep)
        first = await s.admission.close(prep, c.Usage(input_tokens=10, output_tokens=100), None)
        again = await s.admission.close(prep, c.Usage(input_tokens=10, output_tokens=900), None)
        return first, again

    first, again = trio.run(main)
    assert first.cost_micros == again.cost_micros == 10 + 200
    assert len([r for r in seen if r["request_id"] == "req_0"]) == 1
    assert first.headers["X-Prism-Wallet-Remaining"] == "0.999790"
    rows = s.writer.call_sync(store.ledger_rows, acct)
    assert [r.kind for r in rows] == ["topup", "hold", "settle"]
    assert s.admission.pending_headers("req_0") == {}
    assert s.writer.call_sync(store.check_invariants) == []


def test_stream_headers_wait_for_pickup_until_close(services):
    s = services
    acct = account(s, plan="pro")
    prep = prepared(s, acct, stream=True)

    async def main():
        await s.admission.admit(prep)
        pending = s.admission.pending_headers("req_0")
        await s.admission.close(prep, None, errors.UpstreamError("x"))
        return pending

    pending = trio.run(main)
    assert pending["X-Prism-Funded-By"] == "window"
    hold = (10 + 2 * 1000)
    assert pending["X-Prism-Window-Remaining"] == f"0.{1_000_000 - hold:06d}"
    assert pending["RateLimit-Limit"] == "5000"
    assert int(pending["RateLimit-Remaining"]) == 5000 - 1010
    assert s.admission.pending_headers("req_0") == {}
    # voided: nothing used, so every held token came back to the limiter
    limit = rate_limits(s.config, None)["account-tpm"]
    assert s.admission.limiter.peek(("account", acct), limit).remaining == 5000


def test_token_rate_limit_refuses_before_any_hold(services):
    s = services
    acct = account(s)

    async def main():
        for n in range(4):
            prep = prepared(s, acct, n)
            await s.admission.admit(prep)     # 1010 tokens each, nothing closed: 4040
        with pytest.raises(errors.RateLimited) as info:
            await s.admission.admit(prepared(s, acct, 9))
        return info.value

    started = time.monotonic()
    err = trio.run(main)
    elapsed = time.monotonic() - started
    assert err.code == "account_tpm" and "Retry-After" in err.headers
    # The bucket refills at 5000 tokens a minute while the test runs: on a loaded machine
    # a few milliseconds give back a token or two.
    remaining = int(err.headers["RateLimit-Remaining"])
    assert 5000 - 4040 <= remaining <= 5000 - 4040 + math.ceil(elapsed * 5000 / 60)
    assert len(s.writer.call_sync(store.open_holds)) == 4
