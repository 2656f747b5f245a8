"""Calls that name no catalog model (an MCP tool, a remote agent) and held calls (one
realtime response) through the pipeline: admission, settlement in micro-USD, the log
row, the observers, and a void when the call fails."""
from __future__ import annotations

import pytest
import trio

import store
from gateway import canonical as c
from gateway import errors
from gateway.config import parse_config
from gateway.engine.call import CallContext, Target
from gateway.mcp.hub import priced_call
from gateway.realtime.money import REALTIME, ResponseRequest
from gateway.server import build_services


@pytest.fixture
def services(tmp_path):
    raw = {"store": {"path": str(tmp_path / "prism.db")},
           "providers": [{"id": "sim", "kind": "simulator"}],
           "models": [{"id": "rt", "input_usd_per_mtok": 1.0, "output_usd_per_mtok": 2.0,
                       "capabilities": ["chat", "realtime"],
                       "routes": [{"provider": "sim", "model": "x"}]}],
           "plans": [{"id": "rpm1", "key_rpm": 1}, {"id": "tpm", "key_tpm": 100}]}
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


def ctx(acct, n, route="/mcp"):
    return CallContext(request_id=f"req_{n}", route=route, dialect="mcp", account_id=acct,
                       key_id="key_1")


def test_metered_call_settles_its_price_and_logs_the_target(services):
    s = services
    seen = []
    s.observers.append(seen.append)
    acct = account(s)
    op = priced_call("mcp", 0.01, "MCP tool call")
    target = Target("calc__add", "calc")

    async def answer():
        return "42"

    async def broken():
        raise errors.UpstreamError("tool server went away")

    async def main():
        result, outcome = await s.pipeline.metered(ctx(acct, 1), op, None, target=target,
                                                   call=answer)
        with pytest.raises(errors.UpstreamError):
            await s.pipeline.metered(ctx(acct, 2), op, None, target=target, call=broken)
        return result, outcome

    result, outcome = trio.run(main)
    assert (result, outcome.cost_micros, outcome.model) == ("42", 10_000, "calc__add")
    rows = {r.request_id: r for r in s.writer.call_sync(store.request_logs, account_id=acct)}
    assert (rows["req_1"].status, rows["req_1"].cost_micros, rows["req_1"].provider) == \
        (200, 10_000, "calc")
    assert (rows["req_2"].status, rows["req_2"].cost_micros) == (502, 0)
    assert [r["request_id"] for r in seen] == ["req_1", "req_2"]
    assert [r.kind for r in s.writer.call_sync(store.ledger_rows, acct)] == [
        "topup", "hold", "settle", "hold", "void"]
    assert s.writer.call_sync(store.check_invariants) == []


def test_metered_calls_are_rate_limited_and_the_refusal_logged(services):
    s = services
    acct = account(s, plan="rpm1")
    op = priced_call("a2a", 0.0, "agent call")

    async def answer():
        return {}

    async def main():
        await s.pipeline.metered(ctx(acct, 1), op, None, target=Target("echo", "echo"),
                                 call=answer)
        with pytest.raises(errors.RateLimited):
            await s.pipeline.metered(ctx(acct, 2), op, None, target=Target("echo", "echo"),
                                     call=answer)

    trio.run(main)
    rows = {r.request_id: r for r in s.writer.call_sync(store.request_logs, account_id=acct)}
    assert (rows["req_2"].status, rows["req_2"].error_type) == (429, "rate_limited")
    assert s.writer.call_sync(store.open_holds) == []


def test_held_realtime_response_charges_tpm_and_refunds_at_close(services):
    s = services
    acct = account(s, plan="tpm")

    async def main():
        # 20 input + 70 output cap = 90 of the key's 100 tokens a minute.
        first = await s.pipeline.hold(ctx(acct, 1, "/v1/realtime"), REALTIME,
                                      ResponseRequest(500, 20, 70), model="rt",
                                      routes=lambda sel: sel.routes)
        with pytest.raises(errors.RateLimited):
            await s.pipeline.hold(ctx(acct, 2, "/v1/realtime"), REALTIME,
                                  ResponseRequest(500, 20, 70), model="rt",
                                  routes=lambda sel: sel.routes)
        # The response used 30 tokens: the other 60 come back to the bucket.
        await s.pipeline.close(first, c.Usage(input_tokens=20, output_tokens=10), None,
                               units=123)
        second = await s.pipeline.hold(ctx(acct, 3, "/v1/realtime"), REALTIME,
                                       ResponseRequest(500, 20, 40), model="rt",
                                       routes=lambda sel: sel.routes)
        await s.pipeline.close(second, None, None, units=None)

    trio.run(main)
    rows = {r.request_id: r for r in s.writer.call_sync(store.request_logs, account_id=acct)}
    assert (rows["req_1"].cost_micros, rows["req_1"].tokens_out, rows["req_1"].model) == \
        (123, 10, "rt")
    assert rows["req_2"].status == 429 and rows["req_3"].cost_micros == 0
    assert s.writer.call_sync(store.open_holds) == []
    assert s.writer.call_sync(store.check_invariants) == []
