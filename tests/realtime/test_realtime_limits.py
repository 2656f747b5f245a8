"""Realtime session limits end each session with its own close code, and refusals at the
handshake answer in the OpenAI error shape; raw WebSocket clients (trio-websocket) so the
close codes and the subprotocol are visible."""
from __future__ import annotations

import json

import pytest
import trio
from trio_websocket import ConnectionClosed, HandshakeError, open_websocket_url

import harness

PRICES = {"input_usd_per_mtok": 1.0, "output_usd_per_mtok": 2.0}


@pytest.fixture(scope="module")
def gw(tmp_path_factory):
    base = harness.gateway_config(tmp_path_factory.mktemp("rl0"), None)
    models = base["models"] + [
        {"id": "rt-sim", "capabilities": ["chat", "realtime"], **PRICES,
         "routes": [{"provider": "up", "model": "sim-rt"}]},
        {"id": "no-rt", "capabilities": ["chat"], **PRICES,
         "routes": [{"provider": "up", "model": "sim-x"}]}]
    gw = harness.start_gateway(tmp_path_factory.mktemp("rl"), None, models=models,
                               realtime={"idle_timeout": 0.5, "max_session_seconds": 3.0,
                                         "max_message_bytes": 2048})
    yield gw
    gw.stop()


def _url(gw, model="rt-sim") -> str:
    return gw.url.replace("http://", "ws://") + f"/v1/realtime?model={model}"


async def _closed(ws) -> tuple[int, str]:
    with trio.fail_after(10):
        while True:
            try:
                await ws.get_message()
            except ConnectionClosed as exc:
                return exc.reason.code, exc.reason.reason


async def test_subprotocol_key_and_idle_timeout(gw):
    key = gw.create_key()["key"]
    async with open_websocket_url(_url(gw), subprotocols=["realtime",
                                  f"openai-insecure-api-key.{key}"]) as ws:
        assert ws.subprotocol == "realtime"
        assert json.loads(await ws.get_message())["type"] == "session.created"
        assert await _closed(ws) == (4001, "no client event for 0.5s")


async def test_message_too_big(gw):
    key = gw.create_key()["key"]
    async with open_websocket_url(_url(gw), extra_headers=[("Authorization", f"Bearer {key}")]) as ws:
        await ws.get_message()
        await ws.send_message(json.dumps({"type": "input_audio_buffer.append",
                                          "audio": "A" * 4000}))
        code, reason = await _closed(ws)
        assert code == 1009 and "exceeds 2048" in reason


async def test_max_session_duration(gw):
    key = gw.create_key()["key"]
    async with open_websocket_url(_url(gw), extra_headers=[("Authorization", f"Bearer {key}")]) as ws:
        await ws.get_message()
        with trio.move_on_after(5):
            try:
                while True:          # stay busy so the idle limit never fires
                    await ws.send_message(json.dumps({"type": "session.update", "session": {}}))
                    await ws.get_message()
                    await trio.sleep(0.2)
            except ConnectionClosed as exc:
                assert (exc.reason.code, exc.reason.reason) == (4002, "session exceeded 3s")
                return
        raise AssertionError("the session outlived max_session_seconds")


async def test_bad_event_is_an_error_event(gw):
    key = gw.create_key()["key"]
    async with open_websocket_url(_url(gw), extra_headers=[("Authorization", f"Bearer {key}")]) as ws:
        await ws.get_message()
        await ws.send_message("not json")
        event = json.loads(await ws.get_message())
        assert event["type"] == "error" and event["error"]["code"] == "invalid_event"


@pytest.mark.parametrize("model,status,kind", [("rt-sim", 401, "invalid_api_key"),
                                                ("no-rt", 400, "invalid_request"),
                                                ("nope", 404, "model_not_found")])
async def test_handshake_refusals(gw, model, status, kind):
    key = "sk-prism-wrong" if status == 401 else gw.create_key()["key"]
    with pytest.raises(HandshakeError) as exc:
        async with open_websocket_url(_url(gw, model),
                                      extra_headers=[("Authorization", f"Bearer {key}")]):
            pass
    assert exc.value.status_code == status
    assert json.loads(exc.value.body)["error"]["type"] == kind


@pytest.fixture
def roomy_gw(tmp_path):
    base = harness.gateway_config(tmp_path, None)
    gw = harness.start_gateway(tmp_path, None, models=base["models"] + [
        {"id": "rt-sim", "capabilities": ["chat", "realtime"], **PRICES,
         "routes": [{"provider": "up", "model": "sim-rt"}]}])
    yield gw
    gw.stop()


async def test_slow_client_holds_the_upstream_back(roomy_gw):
    """A client that stops reading: the gateway does not buffer the responses for it (they
    cannot finish, so none is settled), and once the client reads, all of them arrive and
    are billed."""
    import store
    gw = roomy_gw
    key = gw.create_key(credits_usd=5.0)
    words = "x" * 1900                 # each reply: ~1.8 MB of audio, ~2.4 MB as base64
    turns = 12
    async with open_websocket_url(_url(gw), extra_headers=[("Authorization", f"Bearer {key['key']}")],
                                  message_queue_size=1, max_message_size=1 << 24) as ws:
        await ws.get_message()
        await ws.send_message(json.dumps({"type": "conversation.item.create", "item": {
            "type": "message", "role": "user",
            "content": [{"type": "input_text", "text": f"say: {words}"}]}}))
        for _ in range(turns):
            await ws.send_message(json.dumps({"type": "response.create"}))
        await trio.sleep(3)                                   # not reading
        settled = [r for r in store.request_logs(gw.db(), account_id=key["account_id"])
                   if r.route == "/v1/realtime"]
        assert len(settled) < turns and store.open_holds(gw.db(), key["account_id"])
        done = 0
        with trio.fail_after(60):
            while done < turns:
                done += json.loads(await ws.get_message())["type"] == "response.done"
    with trio.fail_after(10):
        while len([r for r in store.request_logs(gw.db(), account_id=key["account_id"])
                   if r.route == "/v1/realtime"]) < turns:
            await trio.sleep(0.05)


async def test_expired_key_refused_at_handshake(gw):
    key = gw.create_key()
    r = await trio.to_thread.run_sync(
        lambda: gw.admin.put(f"/-/keys/{key['id']}", json={"expires_at": 1}))
    assert r.status_code == 200, r.text
    with pytest.raises(HandshakeError) as exc:
        async with open_websocket_url(_url(gw), extra_headers=[
                ("Authorization", f"Bearer {key['key']}")]):
            pass
    assert exc.value.status_code == 401
    assert json.loads(exc.value.body)["error"]["code"] == "key_expired"
