"""/v1/realtime end to end with the `openai` SDK's realtime client, the gateway relaying to
the HTTP simulator's realtime WebSocket, and the money checked in the store."""
from __future__ import annotations

import base64
import math
import time
import wave

import openai
import pytest
from openai import OpenAI

import harness
import store

PRICES = {"input_usd_per_mtok": 4.0, "output_usd_per_mtok": 16.0,
          "cached_input_usd_per_mtok": 0.4, "audio_input_usd_per_mtok": 32.0,
          "audio_output_usd_per_mtok": 64.0}
RATE = 24_000


@pytest.fixture(scope="module")
def gw(sim_url, tmp_path_factory):
    base = harness.gateway_config(tmp_path_factory.mktemp("rt0"), sim_url)
    models = base["models"] + [{"id": "prism-rt", "capabilities": ["chat", "realtime"],
                                "max_output_tokens": 2000, **PRICES,
                                "routes": [{"provider": "up", "model": "sim-rt"}]}]
    gw = harness.start_gateway(tmp_path_factory.mktemp("rt"), sim_url, models=models,
                               plans=[{"id": "rpm2", "key_rpm": 2}])
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


def _cost(usage) -> int:
    i, o = usage.input_token_details, usage.output_token_details
    pico = ((i.text_tokens - i.cached_tokens) * 4_000_000 + i.cached_tokens * 400_000
            + i.audio_tokens * 32_000_000 + o.text_tokens * 16_000_000
            + o.audio_tokens * 64_000_000)
    return math.ceil(pico / 1_000_000)


def _rows(gw, key) -> list:
    rows = store.request_logs(gw.db(), account_id=key["account_id"])
    return sorted((r for r in rows if r.route == "/v1/realtime"), key=lambda r: r.created_at)


def _settled(gw, key, n: int, timeout: float = 10.0) -> list:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = _rows(gw, key)
        if len(rows) >= n and not store.open_holds(gw.db()):
            return rows
        time.sleep(0.05)
    raise AssertionError(f"expected {n} settled realtime responses, got {_rows(gw, key)}")


def _text_item(text: str) -> dict:
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}


def test_text_turn_billed_from_usage(gw):
    key = gw.create_key(credits_usd=1.0)
    with _client(gw, key["key"]).realtime.connect(model="prism-rt") as conn:
        assert conn.recv().type == "session.created"
        conn.session.update(session={"type": "realtime", "output_modalities": ["text"]})
        conn.conversation.item.create(item=_text_item("say: hello from prism"))
        conn.response.create()
        events = _until(conn, "response.done")
        text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
        assert text == "hello from prism"
        usage = events[-1].response.usage
        # A second turn reads the first from the (simulated) prompt cache.
        conn.conversation.item.create(item=_text_item("say: again"))
        conn.response.create()
        second = _until(conn, "response.done")[-1].response.usage
        assert second.input_token_details.cached_tokens > 0
    rows = _settled(gw, key, 2)
    assert [r.cost_micros for r in rows] == [_cost(usage), _cost(second)]
    assert rows[1].cached_tokens == second.input_token_details.cached_tokens
    assert not any(r.estimated for r in rows)
    balance = float(gw.admin.get(f"/-/keys/{key['id']}").json()["balance_usd"])
    assert round((1.0 - balance) * 1e6) == _cost(usage) + _cost(second)


def test_audio_turn_with_a_wav(gw, tmp_path):
    path = tmp_path / "hello.wav"
    with wave.open(str(path), "wb") as w:       # 0.75 s of a 440 Hz tone, pcm16 mono 24 kHz
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(RATE)
        w.writeframes(b"".join(int(8000 * math.sin(2 * math.pi * 440 * n / RATE)).to_bytes(
            2, "little", signed=True) for n in range(RATE * 3 // 4)))
    with wave.open(str(path), "rb") as w:
        pcm = w.readframes(w.getnframes())
    key = gw.create_key(credits_usd=1.0)
    with _client(gw, key["key"]).realtime.connect(model="prism-rt") as conn:
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
    assert audio and "(audio 750 ms)" in transcript
    usage = events[-1].response.usage
    assert usage.input_token_details.audio_tokens == math.ceil(len(pcm) / 4800)
    assert usage.output_token_details.audio_tokens == math.ceil(len(audio) / 4800)
    rows = _settled(gw, key, 1)
    assert rows[0].cost_micros == _cost(usage)


def test_function_calling(gw):
    key = gw.create_key(credits_usd=1.0)
    tool = {"type": "function", "name": "get_weather", "description": "Weather for a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                           "required": ["city"]}}
    with _client(gw, key["key"]).realtime.connect(model="prism-rt") as conn:
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


def test_disconnect_mid_response_billed_exactly(gw):
    key = gw.create_key(credits_usd=1.0)
    long_text = " ".join(f"word{i}" for i in range(200))
    conn_cm = _client(gw, key["key"]).realtime.connect(model="prism-rt")
    conn = conn_cm.__enter__()
    conn.recv()
    conn.session.update(session={"type": "realtime", "output_modalities": ["text"]})
    conn.conversation.item.create(item=_text_item(f"say: {long_text} [[sim chunk_delay_ms=30]]"))
    conn.response.create()
    seen = 0
    for ev in conn:
        if ev.type == "response.output_text.delta":
            seen += 1
            if seen == 5:
                break
    conn_cm.__exit__(None, None, None)          # hang up mid-response
    rows = _settled(gw, key, 1)
    row = rows[0]
    full_out = 200 * 3                            # far more than the few deltas relayed
    assert 0 < row.tokens_out < full_out
    assert not row.estimated                      # the upstream's own count, after cancel
    assert row.cost_micros == math.ceil((row.tokens_in * 4_000_000 + row.tokens_out * 16_000_000)
                                        / 1_000_000)
    balance = float(gw.admin.get(f"/-/keys/{key['id']}").json()["balance_usd"])
    assert round((1.0 - balance) * 1e6) == row.cost_micros


def test_refused_key(gw):
    with pytest.raises(Exception) as exc:
        with _client(gw, "sk-prism-not-a-key").realtime.connect(model="prism-rt") as conn:
            conn.recv()
    assert "401" in str(exc.value) or isinstance(exc.value, openai.AuthenticationError)


def test_exhausted_wallet_refused_at_response_create(gw):
    key = gw.create_key(credits_usd=0.0)
    with _client(gw, key["key"]).realtime.connect(model="prism-rt") as conn:
        conn.recv()
        conn.conversation.item.create(item=_text_item("say: hi"))
        conn.response.create()
        events = []
        for ev in conn:
            events.append(ev)
            if ev.type == "error":
                break
        assert events[-1].error.type == "insufficient_balance"
        assert not any(e.type == "response.created" for e in events)
        # The session stays open and usable.
        conn.session.update(session={"type": "realtime", "instructions": "be brief"})
        assert _until(conn, "session.updated")[-1].session.instructions == "be brief"
    assert store.open_holds(gw.db()) == []


def test_rate_limited_key_refused_at_the_third_response(gw):
    """A response is an engine operation: the key's RPM limit applies to it, and the
    refusal is the dialect's error event, logged, with the session kept open."""
    key = gw.create_key(plan="rpm2")
    with _client(gw, key["key"]).realtime.connect(model="prism-rt") as conn:
        conn.recv()
        for _ in range(2):
            conn.conversation.item.create(item=_text_item("say: hi"))
            conn.response.create()
            _until(conn, "response.done")
        conn.response.create()
        events = []
        for ev in conn:
            events.append(ev)
            if ev.type == "error":
                break
        assert (events[-1].error.type, events[-1].error.code) == ("rate_limited", "key_rpm")
        assert not any(e.type == "response.created" for e in events)
        conn.session.update(session={"type": "realtime", "instructions": "still here"})
        assert _until(conn, "session.updated")[-1].session.instructions == "still here"
    rows = _settled(gw, key, 3)
    assert sorted(r.status for r in rows) == [200, 200, 429]
    refused = [r for r in rows if r.status == 429][0]
    assert (refused.error_type, refused.cost_micros) == ("rate_limited", 0)
    assert sum(r.cost_micros for r in rows) > 0
