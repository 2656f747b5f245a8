"""Sessions.attach on real services (store on disk, no HTTP): what the pipeline gets."""
from __future__ import annotations

import pytest

import store
from gateway import canonical as c
from gateway.config import parse_config
from gateway.engine.call import CallContext
from gateway.routing.hints import RoutingHints
from gateway.routing.session_codec import encode_message
from gateway.server import build_services
from gateway.engine.sessions import SESSION_MESSAGES_KEY


@pytest.fixture
def services(tmp_path):
    config = parse_config({
        "store": {"path": str(tmp_path / "p.db")},
        "providers": [{"id": "sim", "kind": "simulator"}],
        "models": [{"id": "m", "input_usd_per_mtok": 1.0, "output_usd_per_mtok": 1.0,
                    "routes": [{"provider": "sim", "model": "sim-m"}]}]})
    writer = store.Writer(config.store.path)
    writer.start()
    s = build_services(config, writer, None, clock=lambda: 1000.0)
    yield s
    writer.close()


def _msg(role, text):
    return c.Message(role, (c.TextPart(text),))


async def test_attach_prepends_history_and_counts_messages_for_plans(services):
    ctx = CallContext("req_1", "/v1/chat/completions", "openai", account_id="acct_1",
                      hints=RoutingHints(session="s1"))
    req = c.Request(model="m", messages=(_msg("user", "first"),), metadata={"openai_extra": {"x": 1}})
    out, turn = await services.sessions.attach(ctx, req)
    assert out.messages == req.messages and out.metadata[SESSION_MESSAGES_KEY] == 0
    assert out.metadata["openai_extra"] == {"x": 1}          # others' metadata kept
    await services.writer.call(
        store.append_turn, "acct_1", "s1",
        messages=[{"t": 3, "m": encode_message(_msg("user", "first"))},
                  {"t": 3, "m": encode_message(_msg("assistant", "hello"))}],
        system=[encode_message(_msg("system", "be brief"))], system_tokens=3, now=1000.0,
        ttl=1800.0, max_messages=100, fold=lambda prev, envs: ("", 0))
    req2 = c.Request(model="m", messages=(_msg("user", "second"),))
    out, turn = await services.sessions.attach(ctx, req2)
    assert [(m.role, m.text) for m in out.messages] == [
        ("system", "be brief"), ("user", "first"), ("assistant", "hello"), ("user", "second")]
    assert out.metadata[SESSION_MESSAGES_KEY] == 2
    assert turn.new == req2.messages and turn.system is None
    # A new system prompt replaces the stored one for this call and is saved with the turn.
    req3 = c.Request(model="m", messages=(_msg("system", "be verbose"), _msg("user", "third")))
    out, turn = await services.sessions.attach(ctx, req3)
    assert [m.text for m in out.messages][:2] == ["be verbose", "first"]
    assert turn.system == (_msg("system", "be verbose"),)
