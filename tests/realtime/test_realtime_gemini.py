"""/v1/realtime bridged to a Gemini-kind upstream: the `openai` SDK's realtime client
against the gateway, which speaks the Gemini Live API (BidiGenerateContent) to the HTTP
simulator's Live WebSocket, and the money checked in the store."""
from __future__ import annotations

import base64
import math
import time

import pytest
from openai import OpenAI

import harness
import store

# $4 / $16 per Mtok of text, $32 / $64 of audio.
PRICES = {"input_usd_per_mtok": 4.0, "output_usd_per_mtok": 16.0,
          "audio_input_usd_per_mtok": 32.0, "audio_output_usd_per_mtok": 64.0}
RATE = 24_000


@pytest.fixture(scope="module")
def gw(sim_url, tmp_path_factory):
    base = harness.gateway_config(tmp_path_factory.mktemp("rtg0"), sim_url)
    providers = base["providers"] + [{"id": "gem", "kind": "gemini", "base_url": sim_url,
                                      "api_key_env": "PRISM_TEST_UPSTREAM_KEY",
                                      "read_timeout": 30.0}]
    models = base["models"] + [{"id": "gem-rt", "capabilities": ["chat", "realtime"],
                                "max_output_tokens": 2000, **PRICES,
                                "routes": [{"provider": "gem", "model": "sim-gemini-live"}]}]
    gw = harness.start_gateway(tmp_path_factory.mktemp("rtg"), sim_url, providers=providers,
                               models=models)
    yield gw
    gw.stop()


def _client(gw, key: str) -> OpenAI:
    return OpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0)


def _until(conn, kind: str) -> list:
    events = []
    for ev in conn:
        events.append(ev)
        if ev.type == kind:
            return events
        assert ev.type != "error", ev
    raise AssertionError(f"connection ended before {kind}")


def _text_item(text: str) -> dict:
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}


def _cost(usage) -> int:
    i, o = usage.input_token_details, usage.output_token_details
    pico = (i.text_tokens * 4_000_000 + i.audio_tokens * 32_000_000
            + o.text_tokens * 16_000_000 + o.audio_tokens * 64_000_000)
    return math.ceil(pico / 1_000_000)


def _settled(gw, key, n: int, timeout: float = 10.0) -> list:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = [r for r in store.request_logs(gw.db(), account_id=key["account_id"])
                if r.route == "/v1/realtime"]
        if len(rows) >= n and not store.open_holds(gw.db()):
            return sorted(rows, key=lambda r: r.created_at)
        time.sleep(0.05)
    raise AssertionError(f"expected {n} settled realtime responses")


def test_text_turns_billed_from_gemini_usage(gw):
    key = gw.create_key(credits_usd=1.0)
    with _client(gw, key["key"]).realtime.connect(model="gem-rt") as conn:
        assert conn.recv().type == "session.created"
        conn.session.update(session={"type": "realtime", "output_modalities": ["text"],
                                     "instructions": "Be brief."})
        _until(conn, "session.updated")
        conn.conversation.item.create(item=_text_item("say: hello from gemini"))
        conn.response.create()
        events = _until(conn, "response.done")
        assert "".join(e.delta for e in events
                       if e.type == "response.output_text.delta") == "hello from gemini"
        first = events[-1].response.usage
        assert first.input_tokens > 0 and first.output_tokens > 0
        # The second turn carries the first: Gemini keeps the session's conversation.
        conn.conversation.item.create(item=_text_item("say: again"))
        conn.response.create()
        second = _until(conn, "response.done")[-1].response.usage
        assert second.input_tokens > first.input_tokens
        # Fixed once the session started, and said so in the dialect's error event.
        conn.session.update(session={"type": "realtime", "instructions": "Be verbose."})
        err = next(e for e in conn if e.type == "error")
        assert err.error.code == "unsupported_gemini_feature"
    rows = _settled(gw, key, 2)
    assert [r.cost_micros for r in rows] == [_cost(first), _cost(second)]
    assert not any(r.estimated for r in rows) and {r.provider for r in rows} == {"gem"}
    balance = float(gw.admin.get(f"/-/keys/{key['id']}").json()["balance_usd"])
    assert round((1.0 - balance) * 1e6) == _cost(first) + _cost(second)


def test_audio_turn_resampled_for_gemini(gw):
    # 0.75 s of a 440 Hz tone, pcm16 mono 24 kHz, as the OpenAI protocol carries it.
    pcm = b"".join(int(8000 * math.sin(2 * math.pi * 440 * n / RATE)).to_bytes(
        2, "little", signed=True) for n in range(RATE * 3 // 4))
    key = gw.create_key(credits_usd=1.0)
    with _client(gw, key["key"]).realtime.connect(model="gem-rt") as conn:
        conn.recv()
        for i in range(0, len(pcm), 9600):
            conn.input_audio_buffer.append(audio=base64.b64encode(pcm[i:i + 9600]).decode())
        conn.input_audio_buffer.commit()
        conn.response.create()
        events = _until(conn, "response.done")
    audio = b"".join(base64.b64decode(e.delta) for e in events
                     if e.type == "response.output_audio.delta")
    transcript = "".join(e.delta for e in events
                         if e.type == "response.output_audio_transcript.delta")
    # Gemini heard 750 ms (16 kHz after resampling) and answered in 24 kHz audio.
    assert audio and "(audio 750 ms)" in transcript
    usage = events[-1].response.usage
    assert usage.input_token_details.audio_tokens == 24       # 32 tokens a second
    assert usage.output_token_details.audio_tokens == math.ceil(len(audio) * 32 / 48_000)
    assert _settled(gw, key, 1)[0].cost_micros == _cost(usage)


def test_function_calling_through_gemini(gw):
    key = gw.create_key(credits_usd=1.0)
    tool = {"type": "function", "name": "get_weather", "description": "Weather for a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                           "required": ["city"]}}
    with _client(gw, key["key"]).realtime.connect(model="gem-rt") as conn:
        conn.recv()
        conn.session.update(session={"type": "realtime", "output_modalities": ["text"],
                                     "tools": [tool]})
        conn.conversation.item.create(item=_text_item("use get_weather city=Paris"))
        conn.response.create()
        events = _until(conn, "response.done")
        call = next(e for e in events if e.type == "response.function_call_arguments.done")
        assert call.name == "get_weather" and '"city":"Paris"' in call.arguments
        conn.conversation.item.create(item={"type": "function_call_output",
                                            "call_id": call.call_id, "output": "18C and sunny"})
        conn.response.create()
        reply = _until(conn, "response.done")
        assert "18C and sunny" in "".join(e.delta for e in reply
                                          if e.type == "response.output_text.delta")
    assert len(_settled(gw, key, 2)) == 2


def test_events_without_a_gemini_equivalent(gw):
    key = gw.create_key()
    with _client(gw, key["key"]).realtime.connect(model="gem-rt") as conn:
        conn.recv()
        conn.conversation.item.delete(item_id="item_x")
        err = next(e for e in conn if e.type == "error")
        assert err.error.code == "unsupported_gemini_feature"
        conn.session.update(session={"type": "realtime", "audio": {
            "input": {"turn_detection": {"type": "server_vad"}}}})
        err = next(e for e in conn if e.type == "error")
        assert "turn detection" in err.error.message
        conn.session.update(session={"type": "realtime", "audio": {
            "output": {"format": {"type": "audio/pcmu"}}}})
        err = next(e for e in conn if e.type == "error")
        assert "pcm16" in err.error.message
        # Still usable afterwards.
        conn.session.update(session={"type": "realtime", "output_modalities": ["text"]})
        conn.conversation.item.create(item=_text_item("say: fine"))
        conn.response.create()
        assert "".join(e.delta for e in _until(conn, "response.done")
                       if e.type == "response.output_text.delta") == "fine"


def test_disconnect_mid_response_billed_from_gemini_usage(gw):
    """Gemini Live cannot cancel a turn: a client that hangs up mid-response is billed
    what the upstream reports for the whole turn, once it completes."""
    key = gw.create_key(credits_usd=1.0)
    long_text = " ".join(f"word{i}" for i in range(120))
    conn_cm = _client(gw, key["key"]).realtime.connect(model="gem-rt")
    conn = conn_cm.__enter__()
    conn.recv()
    conn.session.update(session={"type": "realtime", "output_modalities": ["text"]})
    conn.conversation.item.create(item=_text_item(f"say: {long_text} [[sim chunk_delay_ms=10]]"))
    conn.response.create()
    seen = 0
    for ev in conn:
        if ev.type == "response.output_text.delta":
            seen += 1
            if seen == 3:
                break
    conn_cm.__exit__(None, None, None)          # hang up mid-response
    row = _settled(gw, key, 1)[0]
    assert not row.estimated and row.status == 200
    assert row.tokens_out >= 120                  # the whole turn, not the three deltas seen
    assert row.cost_micros == math.ceil((row.tokens_in * 4_000_000 + row.tokens_out * 16_000_000)
                                        / 1_000_000)
    balance = float(gw.admin.get(f"/-/keys/{key['id']}").json()["balance_usd"])
    assert round((1.0 - balance) * 1e6) == row.cost_micros


def test_second_response_while_one_runs_is_refused_and_its_hold_voided(gw):
    key = gw.create_key(credits_usd=1.0)
    words = " ".join(f"w{i}" for i in range(60))
    with _client(gw, key["key"]).realtime.connect(model="gem-rt") as conn:
        conn.recv()
        conn.session.update(session={"type": "realtime", "output_modalities": ["text"]})
        conn.conversation.item.create(item=_text_item(f"say: {words} [[sim chunk_delay_ms=20]]"))
        conn.response.create()
        conn.response.create()
        events, refused = [], None
        for ev in conn:
            events.append(ev)
            if ev.type == "error":
                refused = ev
            if ev.type == "response.done":
                break
        assert refused is not None
        assert refused.error.code == "conversation_already_has_active_response"
        assert events[-1].response.status == "completed"
    rows = _settled(gw, key, 2)
    assert sorted((r.status, r.cost_micros > 0) for r in rows) == [(200, True), (499, False)]
    balance = float(gw.admin.get(f"/-/keys/{key['id']}").json()["balance_usd"])
    assert round((1.0 - balance) * 1e6) == sum(r.cost_micros for r in rows)
