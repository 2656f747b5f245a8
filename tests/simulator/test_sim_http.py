"""The HTTP simulator on a real socket, driven by httpx and by the official openai SDK.

The SDK's clients run on asyncio/anyio, so under pytest-trio the sync ``openai.OpenAI``
client runs in a worker thread.
"""
from __future__ import annotations

import json
from functools import partial

import httpx
import openai
import pytest
import trio

from gateway import tokenizer
from gateway.codecs import openai_chat
from gateway.simulator import core
from gateway.simulator.server import serve_simulator

AUTH = {"Authorization": "Bearer sk-test"}
WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"},
                                                    "days": {"type": "integer"}},
                   "required": ["city"]}}}


@pytest.fixture
async def base(nursery) -> str:
    port = await nursery.start(serve_simulator, "127.0.0.1", 0, core.SimOptions())
    assert isinstance(port, int) and port > 0
    return f"http://127.0.0.1:{port}"


def body(text: str, **kw) -> dict:
    return {"model": "sim-small", "messages": [{"role": "user", "content": text}], **kw}


def expected(b: dict):
    return core.respond(openai_chat.to_canonical_request(b))


def sse_payloads(raw: bytes) -> list[str]:
    return [line[len("data: "):] for line in raw.decode().splitlines() if line.startswith("data: ")]


async def sdk(base: str, fn):
    client = openai.OpenAI(base_url=base + "/v1", api_key="sk-test", max_retries=0, timeout=10)
    try:
        return await trio.to_thread.run_sync(partial(fn, client))
    finally:
        client.close()


# ---------------------------------------------------------------- raw HTTP

async def test_health_models_and_auth(base):
    async with httpx.AsyncClient(base_url=base) as http:
        assert (await http.get("/healthz")).json() == {"status": "ok"}
        r = await http.get("/v1/models")
        assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
        assert set(r.json()["error"]) >= {"message", "type", "code"}
        r = await http.post("/v1/chat/completions", json=body("hi"),
                            headers={"Authorization": "Basic abc"})
        assert r.status_code == 401
        r = await http.get("/v1/models", headers=AUTH)
        assert r.json()["object"] == "list"
        assert [m["id"] for m in r.json()["data"]] == list(core.SIM_MODELS)
        assert (await http.get("/v1/nope", headers=AUTH)).status_code == 404
        r = await http.post("/v1/chat/completions", content=b"{nope", headers=AUTH)
        assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"


async def test_plain_chat(base):
    b = body("say: hello over http")
    async with httpx.AsyncClient(base_url=base) as http:
        r = await http.post("/v1/chat/completions", json=b, headers=AUTH)
    assert r.status_code == 200
    data = r.json()
    want = expected(b)
    assert data["id"] == want.id and data["model"] == "sim-small"
    assert data["choices"][0]["message"]["content"] == "hello over http"
    assert data["choices"][0]["finish_reason"] == "stop"
    assert data["usage"]["prompt_tokens"] == want.usage.input_tokens
    assert data["usage"]["completion_tokens"] == tokenizer.count_text("hello over http")


async def test_stream_with_usage_ends_with_done(base):
    b = body("say: a streamed answer [[sim chunk_chars=3]]", stream=True,
             stream_options={"include_usage": True})
    async with httpx.AsyncClient(base_url=base) as http:
        r = await http.post("/v1/chat/completions", json=b, headers=AUTH)
    assert r.headers["content-type"].startswith("text/event-stream")
    payloads = sse_payloads(r.content)
    assert payloads[-1] == "[DONE]"
    chunks = [json.loads(p) for p in payloads[:-1]]
    text = "".join(ch["choices"][0]["delta"].get("content") or ""
                   for ch in chunks if ch.get("choices"))
    assert text == "a streamed answer"
    usage = [ch["usage"] for ch in chunks if ch.get("usage")]
    assert len(usage) == 1 and usage[0]["completion_tokens"] == expected(b).usage.output_tokens
    assert sum(1 for ch in chunks if ch.get("choices") and
               ch["choices"][0]["delta"].get("content")) == 6


async def test_500_fault(base):
    async with httpx.AsyncClient(base_url=base) as http:
        r = await http.post("/v1/chat/completions", headers=AUTH,
                            json=body("hi [[sim status=503 message=\"down for a nap\"]]"))
    assert r.status_code == 503
    assert r.json()["error"]["message"] == "down for a nap"
    assert r.json()["error"]["type"] == "server_error"


async def test_429_fault_sets_retry_after(base):
    async with httpx.AsyncClient(base_url=base) as http:
        r = await http.post("/v1/chat/completions", headers=AUTH,
                            json=body("hi [[sim status=429 retry_after=7]]"))
    assert r.status_code == 429 and r.headers["retry-after"] == "7"
    assert r.json()["error"]["code"] == "rate_limit_exceeded"


async def test_disconnect_mid_stream_is_an_error_for_the_client(base):
    b = body("say: " + "word " * 40 + "[[sim disconnect_after=4 chunk_chars=5]]", stream=True)
    received = b""
    async with httpx.AsyncClient(base_url=base) as http:
        with pytest.raises(httpx.RemoteProtocolError):
            async with http.stream("POST", "/v1/chat/completions", json=b, headers=AUTH) as r:
                assert r.status_code == 200
                async for piece in r.aiter_bytes():
                    received += piece
    assert b"data: " in received and b"[DONE]" not in received


async def test_disconnect_plain_answer_is_cut(base):
    async with httpx.AsyncClient(base_url=base) as http:
        with pytest.raises(httpx.RemoteProtocolError):
            await http.post("/v1/chat/completions", headers=AUTH,
                            json=body("say: hi [[sim disconnect_after=1]]"))


async def test_delay_fault(base):
    async with httpx.AsyncClient(base_url=base) as http:
        start = trio.current_time()
        r = await http.post("/v1/chat/completions", headers=AUTH,
                            json=body("say: late [[sim delay_ms=150]]"))
        assert r.status_code == 200 and trio.current_time() - start >= 0.15


# ---------------------------------------------------------------- the official SDK

async def test_sdk_chat_and_stream(base):
    done = await sdk(base, lambda c: c.chat.completions.create(
        model="sim-small", messages=[{"role": "user", "content": "say: from the sdk"}]))
    assert done.choices[0].message.content == "from the sdk"
    assert done.usage.completion_tokens == tokenizer.count_text("from the sdk")

    def streamed(c):
        parts, usage = [], None
        for ch in c.chat.completions.create(
                model="sim-small", stream=True, stream_options={"include_usage": True},
                messages=[{"role": "user", "content": "say: streamed by sdk"}]):
            if ch.choices and ch.choices[0].delta.content:
                parts.append(ch.choices[0].delta.content)
            usage = ch.usage or usage
        return "".join(parts), usage

    text, usage = await sdk(base, streamed)
    assert text == "streamed by sdk" and usage.completion_tokens > 0


async def test_sdk_tool_call(base):
    resp = await sdk(base, lambda c: c.chat.completions.create(
        model="sim-small", tools=[WEATHER],
        messages=[{"role": "user", "content": "get_weather city=Oslo"}]))
    choice = resp.choices[0]
    assert choice.finish_reason == "tool_calls"
    (call,) = choice.message.tool_calls
    assert call.id.startswith("call_") and call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Oslo", "days": 42}

    def streamed(c):
        args, names = {}, {}
        for ch in c.chat.completions.create(
                model="sim-small", tools=[WEATHER], stream=True,
                messages=[{"role": "user", "content": "get_weather city=Oslo [[sim chunk_chars=4]]"}]):
            for tc in (ch.choices[0].delta.tool_calls or []) if ch.choices else []:
                if tc.function and tc.function.name:
                    names[tc.index] = tc.function.name
                if tc.function and tc.function.arguments:
                    args[tc.index] = args.get(tc.index, "") + tc.function.arguments
        return names, args

    names, args = await sdk(base, streamed)
    assert names == {0: "get_weather"} and json.loads(args[0]) == {"city": "Oslo", "days": 42}


async def test_sdk_sees_faults(base):
    with pytest.raises(openai.InternalServerError):
        await sdk(base, lambda c: c.chat.completions.create(
            model="sim-small", messages=[{"role": "user", "content": "[[sim status=500]]"}]))
    with pytest.raises(openai.RateLimitError) as rl:
        await sdk(base, lambda c: c.chat.completions.create(
            model="sim-small", messages=[{"role": "user", "content": "[[sim status=429 retry_after=2]]"}]))
    assert rl.value.response.headers["retry-after"] == "2"

    def cut(c):
        for _ in c.chat.completions.create(
                model="sim-small", stream=True,
                messages=[{"role": "user", "content": "say: " + "x " * 50 + "[[sim disconnect_after=3]]"}]):
            pass

    with pytest.raises((httpx.RemoteProtocolError, openai.APIError)):
        await sdk(base, cut)
