"""Fuzz the decoders of the non-HTTP protocols: A2A JSON-RPC envelopes and message params
(0.3, and 1.0's translated to 0.3), realtime usage blocks, the simulator's realtime event
handler, and the Gemini Live bridge both ways (client events in, upstream messages in).

Allowed outcomes: a value, or our own RpcError / ClientError; never anything else. A
usage block always prices to a non-negative integer.
"""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.a2a import v1, wire
from gateway.errors import ClientError
from gateway.realtime import meter
from gateway.realtime.gemini_live import LiveBridge
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


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["SendMessage", "SendStreamingMessage", "GetTask", "CancelTask",
                        "CreateTaskPushNotificationConfig", "GetTaskPushNotificationConfig",
                        "ListTaskPushNotificationConfigs", "DeleteTaskPushNotificationConfig"]),
       st.one_of(json_values.filter(lambda v: isinstance(v, dict)), st.fixed_dictionaries({
           "message": st.fixed_dictionaries({
               "messageId": st.text(max_size=8), "role": st.sampled_from(
                   ["ROLE_USER", "ROLE_AGENT", "user", 3]),
               "parts": st.lists(st.one_of(st.fixed_dictionaries({"text": st.text(max_size=9)}),
                                           json_values), max_size=3)}),
           "id": json_values, "taskId": json_values, "url": json_values})))
def test_a2a_v1_params(method, params):
    try:
        method03, params03 = v1.to_v03(method, params)
    except wire.RpcError as exc:
        assert exc.code == wire.INVALID_PARAMS and exc.message
        return
    assert method03 and isinstance(params03, dict)


gemini_message = st.fixed_dictionaries({}, optional={
    "setupComplete": json_values, "usageMetadata": json_values, "goAway": json_values,
    "toolCall": st.one_of(json_values, st.fixed_dictionaries({"functionCalls": st.lists(
        st.one_of(json_values, st.fixed_dictionaries({"id": json_values, "name": json_values,
                                                      "args": json_values})), max_size=2)})),
    "serverContent": st.one_of(json_values, st.fixed_dictionaries({}, optional={
        "modelTurn": st.one_of(json_values, st.fixed_dictionaries({"parts": st.lists(
            st.one_of(json_values, st.fixed_dictionaries({"text": json_values}),
                      st.fixed_dictionaries({"inlineData": json_values})), max_size=3)})),
        "outputTranscription": json_values, "turnComplete": json_values,
        "interrupted": json_values}))})


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(json_values, st.fixed_dictionaries({
    "type": st.sampled_from(["session.update", "input_audio_buffer.append",
                             "input_audio_buffer.commit", "conversation.item.create",
                             "response.create", "response.cancel", "conversation.item.delete",
                             "bogus"]),
    "session": json_values, "audio": st.text(max_size=12), "item": json_values,
    "response": json_values})), max_size=6), st.lists(gemini_message, max_size=6))
def test_gemini_live_bridge(events, messages):
    """Whatever a client or a Gemini upstream sends, the bridge answers with events and
    messages (dicts), never an exception of its own."""
    bridge = LiveBridge("sim-live")
    for event in events:
        if not isinstance(event, dict):
            continue
        to_gemini, to_client = bridge.client(event)
        assert all(isinstance(m, dict) for m in to_gemini)
        assert all(isinstance(e, dict) and "type" in e for e in to_client)
    for message in messages:
        assert all(isinstance(e, dict) and "type" in e for e in bridge.upstream(message))
