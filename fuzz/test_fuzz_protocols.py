"""Fuzz the decoders of the non-HTTP protocols: A2A JSON-RPC envelopes and message params,
realtime usage blocks, and the simulator's realtime event handler.

Allowed outcomes: a value, or our own RpcError / ClientError; never anything else. A
usage block always prices to a non-negative integer.
"""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.a2a import wire
from gateway.errors import ClientError
from gateway.realtime import meter
from gateway.simulator.realtime import RealtimeSim

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**9) | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner,
                                                                max_size=5),
    max_leaves=20)

message_like = st.fixed_dictionaries({
    "kind": st.sampled_from(["message", "task", 3]),
    "role": st.sampled_from(["user", "agent", "x", None]),
    "messageId": st.one_of(st.text(max_size=8), st.integers()),
    "parts": st.lists(st.one_of(
        st.fixed_dictionaries({"kind": st.just("text"), "text": st.text(max_size=20)}),
        json_values), max_size=3)})


@settings(max_examples=300, deadline=None)
@given(st.one_of(json_values, st.fixed_dictionaries({
    "jsonrpc": st.sampled_from(["2.0", "1.0"]), "id": json_values,
    "method": st.sampled_from(["message/send", "tasks/get", 5]),
    "params": st.one_of(json_values, st.fixed_dictionaries({"message": message_like}))})))
def test_a2a_envelope_and_params(body):
    try:
        _, method, params = wire.parse_envelope(body)
        if method == "message/send":
            wire.send_params(params)
        else:
            wire.task_id_param(params)
    except wire.RpcError as exc:
        assert isinstance(exc.code, int) and exc.message


PRICE = meter.RealtimePrice(4_000_000, 16_000_000, 400_000, 32_000_000, 64_000_000)


@settings(max_examples=300, deadline=None)
@given(json_values | st.fixed_dictionaries({
    "input_tokens": json_values, "output_tokens": json_values,
    "input_token_details": st.dictionaries(st.sampled_from(
        ["text_tokens", "audio_tokens", "cached_tokens"]), json_values),
    "output_token_details": st.dictionaries(st.sampled_from(
        ["text_tokens", "audio_tokens"]), json_values)}))
def test_realtime_usage_prices_sanely(usage):
    tokens = meter.tokens_of_usage(usage)
    if tokens is not None:
        cost = meter.cost_micros(PRICE, tokens)
        assert isinstance(cost, int) and cost >= 0
        assert tokens.cached_in <= tokens.text_in


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(json_values, st.fixed_dictionaries({
    "type": st.sampled_from(["session.update", "input_audio_buffer.append",
                             "input_audio_buffer.commit", "conversation.item.create",
                             "input_audio_buffer.clear", "bogus"]),
    "session": json_values, "audio": st.text(max_size=12), "item": json_values})), max_size=6))
def test_simulator_realtime_handler(events):
    sim = RealtimeSim("sim-rt")
    for event in events:
        if not isinstance(event, dict):
            continue
        try:
            replies = sim.handle(event)
        except ClientError:
            continue
        assert all(isinstance(r, dict) and "type" in r for r in replies)
