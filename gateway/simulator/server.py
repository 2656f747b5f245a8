"""The simulator over HTTP: a lean raw-ASGI app served by hypercorn's trio worker
(``prism simulate``), speaking each dialect through its WireAdapter (simulator/wire.py).

Routes: ``POST /v1/chat/completions`` (OpenAI, plain and SSE ending ``data: [DONE]``),
``POST /v1/responses`` (the OpenAI Responses API, typed SSE events),
``POST /v1/messages`` (Anthropic), ``POST /v1beta/models/{m}:generateContent`` and
``:streamGenerateContent`` (Gemini), ``GET /v1/models``, ``GET /healthz``, and for tests
``GET /_sim/stats`` / ``POST /_sim/reset``. Every generation route demands its dialect's
credential (any value) so tests can prove the gateway sends its provider key. Errors
use the dialect's error shape with the fault's own status; a 429 carries Retry-After.

disconnect_after cuts the connection abruptly: the app returns without sending the
final body message, so hypercorn's h11 protocol sees a response still in SEND_BODY and
closes the socket instead of writing the terminating chunk (or the rest of a
Content-Length body). The client reads an incomplete message: httpx raises
RemoteProtocolError rather than seeing a clean end.

Raw ASGI rather than Quart because the benchmark measures the gateway against this
server, and its own overhead should be close to nothing.
"""
from __future__ import annotations

import json
import time
from dataclasses import replace
from functools import partial
from typing import Any

import trio
from hypercorn.config import Config
from hypercorn.trio import serve

from gateway import errors, tokenizer
from gateway.simulator.core import (
    SIM_MODELS, SimOptions, pauses, respond, response_id, split_at_disconnect,
    stream_events,
)
from gateway.simulator.faults import parse_fault
from gateway.simulator.inproc import chunk_delay
from gateway.simulator.batch_native import NativeBatchSim
from gateway.simulator.media import MediaSim
from gateway.simulator.sim_routes import InferenceSim
from gateway.simulator.realtime_ws import PATHS as REALTIME_PATHS, realtime_asgi
from gateway.simulator.gemini_live import PATHS as LIVE_PATHS, live_asgi
from gateway.simulator.wire import OPENAI, WireAdapter, adapter_for, bearer, read_body

__all__ = ["create_sim_app", "serve_simulator", "main_simulate"]

MAX_BODY = 32 * 1024 * 1024
# Credentials starting with this are refused with 401 (key-rotation tests).
REVOKED_KEY_PREFIX = "sk-sim-revoked"
_JSON = [(b"content-type", b"application/json")]
_SSE = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]


def _dumps(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


async def _send_json(send: Any, status: int, value: Any,
                     headers: list[tuple[bytes, bytes]] | None = None) -> None:
    body = _dumps(value)
    length = [(b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status,
                "headers": _JSON + length + (headers or [])})
    await send({"type": "http.response.body", "body": body})


async def _send_error(send: Any, status: int, message: str, *, code: str | None = None,
                      headers: list[tuple[bytes, bytes]] | None = None,
                      wire: WireAdapter = OPENAI) -> None:
    body = wire.error_body(status, message)
    if code and wire is OPENAI:
        body["error"]["code"] = code
    await _send_json(send, status, body, headers)


async def _lifespan(receive: Any, send: Any) -> None:
    while True:
        msg = await receive()
        if msg["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif msg["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


class _SimApp:
    def __init__(self, options: SimOptions) -> None:
        self.options = options
        # Counters tests read over /_sim/stats: how many chat calls arrived and how
        # many were ever open at once (the gateway's admission control shows up here).
        self.requests = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.last_authorization = ""
        # The tools of the last chat call as it arrived: each one's "type", or its one
        # key (Gemini's {"googleSearch": {}}), so tests can see which hosted tools an
        # upstream was sent.
        self.last_tools: list[str] = []
        # Chat calls per credential (its last 12 characters), refused ones included.
        self.by_credential: dict[str, int] = {}
        self.media = MediaSim()   # images and videos (simulator/media.py)
        self.inference = InferenceSim()   # embeddings, rerank, audio, search, OCR
        self.batches = NativeBatchSim(options)   # upstream batch APIs (batch_native.py)

    def _stats(self) -> dict[str, Any]:
        return {"requests": self.requests, "in_flight": self.in_flight,
                "max_in_flight": self.max_in_flight, "last_authorization": self.last_authorization,
                "last_tools": self.last_tools,
                "by_credential": dict(self.by_credential),
                **self.media.stats(), "inference": dict(self.inference.calls),
                "native_batches": self.batches.stats()}

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] == "websocket" and scope["path"] in REALTIME_PATHS:
            await realtime_asgi(scope, receive, send, self.options)
            return
        if scope["type"] == "websocket" and scope["path"] in LIVE_PATHS:
            await live_asgi(scope, receive, send, self.options)
            return
        if scope["type"] != "http":
            return
        path, method = scope["path"], scope["method"]
        if path == "/healthz":
            await _send_json(send, 200, {"status": "ok"})
            return
        if path == "/_sim/stats":
            await _send_json(send, 200, self._stats())
            return
        if path == "/_sim/reset" and method == "POST":
            self.requests = self.max_in_flight = 0
            self.last_authorization = ""
            self.by_credential.clear()
            self.media.reset()
            self.inference.reset()
            self.batches.reset()
            await _send_json(send, 200, self._stats())
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        if await self.batches.handle(scope, receive, send, headers):
            return
        if path in ("/v1/models", "/models") and method == "GET":
            if not bearer(headers):
                await _send_error(send, 401, "Missing bearer token in the Authorization header")
                return
            await _send_json(send, 200, {"object": "list", "data": [
                {"id": m, "object": "model", "created": 0, "owned_by": "prism-simulator"}
                for m in SIM_MODELS]})
            return
        if await self.media.handle(scope, receive, send, bool(bearer(headers))):
            return
        served = await self.inference.handle(scope, receive, send, headers)
        if served is True:
            return
        wire = adapter_for(path)
        if wire is None:
            await _send_error(send, 404, f"Unknown route {method} {path}", code="unknown_url")
            return
        credential = wire.credential(headers, scope.get("query_string", b"").decode("latin-1"))
        if not credential:
            await _send_error(send, 401, "Missing credentials for the simulated upstream", wire=wire)
            return
        if method != "POST":
            await _send_error(send, 405, f"Use POST for {path}", code="method_not_allowed", wire=wire)
            return
        self.by_credential[credential[-12:]] = self.by_credential.get(credential[-12:], 0) + 1
        if credential.startswith(REVOKED_KEY_PREFIX):
            # A credential the upstream does not (or no longer) accept, for key-rotation
            # tests: any key starting with this prefix is refused like a revoked one.
            await _send_error(send, 401, "Incorrect API key provided", wire=wire)
            return
        self.requests += 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        self.last_authorization = credential
        try:
            await self._generate(wire, path, receive, send,
                                 served if isinstance(served, bytes) else None)
        finally:
            self.in_flight -= 1

    async def _generate(self, wire: WireAdapter, path: str, receive: Any, send: Any,
                        raw: bytes | None = None) -> None:
        # raw: a body the inference routes already read (a Gemini call that is chat's).
        raw = raw if raw is not None else await read_body(receive, MAX_BODY)
        if raw is None:
            await _send_error(send, 413, f"Request body over {MAX_BODY} bytes", wire=wire)
            return
        try:
            data = json.loads(raw)
        except ValueError:  # UnicodeDecodeError included
            await _send_error(send, 400, "Request body is not valid JSON", wire=wire)
            return
        tools = data.get("tools") if isinstance(data, dict) else None
        self.last_tools = [str(t.get("type") or next(iter(t), "")) for t in tools
                           if isinstance(t, dict)] if isinstance(tools, list) else []
        try:
            req = wire.decode(path, data)
        except errors.InvalidRequest as exc:
            await _send_error(send, 400, exc.message, wire=wire)
            return
        fault = parse_fault(req)
        wait = self.options.latency + fault.delay
        if wait > 0:
            await trio.sleep(wait)
        if fault.status is not None and fault.status >= 400:
            headers = []
            if fault.status == 429:
                headers = [(b"retry-after", str(fault.retry_after or 1).encode())]
            await _send_error(send, fault.status,
                              fault.message or f"simulated upstream error {fault.status}",
                              headers=headers, wire=wire)
            return
        created = int(time.time())
        if not req.stream:
            resp = replace(respond(req, self.options), created=created)
            body = _dumps(wire.encode_response(resp))
            await send({"type": "http.response.start", "status": 200,
                        "headers": _JSON + [(b"content-length", str(len(body)).encode())]})
            if fault.disconnect_after is not None and split_at_disconnect(
                    stream_events(req, self.options, fault), fault)[1]:
                # Half a body and no end: hypercorn drops the connection (see docstring).
                await send({"type": "http.response.body", "body": body[:len(body) // 2],
                            "more_body": True})
                return
            await send({"type": "http.response.body", "body": body})
            return
        events, cut = split_at_disconnect(stream_events(req, self.options, fault), fault)
        await send({"type": "http.response.start", "status": 200, "headers": _SSE})
        writer = wire.stream_writer(req, response_id(req), created)
        delays = pauses(events, chunk_delay(self.options, fault))
        async with trio.open_nursery() as nursery:
            # A client that hangs up must not leave a slow stream ticking on for nobody.
            nursery.start_soon(_cancel_on_disconnect, receive, nursery.cancel_scope)
            for ev, pause in zip(events, delays):
                if pause > 0:
                    await trio.sleep(pause)
                data = writer.encode(ev)
                if data:
                    await send({"type": "http.response.body", "more_body": True, "body": data})
            if not cut:
                await send({"type": "http.response.body", "body": writer.end()})
            # With cut, returning without the final message makes hypercorn drop the
            # socket mid-body (see the module docstring).
            nursery.cancel_scope.cancel()


async def _cancel_on_disconnect(receive: Any, scope: trio.CancelScope) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    scope.cancel()


def create_sim_app(options: SimOptions = SimOptions()) -> _SimApp:
    """An ASGI 3 app serving the simulator in the OpenAI Chat Completions dialect."""
    return _SimApp(options)


def _port_of(bind: str) -> int:
    return int(bind.rsplit(":", 1)[1])


async def serve_simulator(host: str, port: int, options: SimOptions = SimOptions(), *,
                          task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
    """Serve until cancelled; ``task_status.started`` gets the bound port (port 0: any)."""
    config = Config()
    config.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    config.accesslog = None
    config.loglevel = "WARNING"  # main_simulate prints the URL itself
    # The BPE tables take ~0.5 s to load; pay that before listening, not on request one.
    await trio.to_thread.run_sync(tokenizer.count_text, "warm up")
    async with trio.open_nursery() as nursery:
        binds = await nursery.start(partial(serve, create_sim_app(options), config, mode="asgi"))
        task_status.started(_port_of(binds[0]))


async def main_simulate(host: str = "127.0.0.1", port: int = 8001,
                        options: SimOptions = SimOptions()) -> None:
    """Run the HTTP simulator forever, printing where it listens (for ``prism simulate``)."""
    async with trio.open_nursery() as nursery:
        bound = await nursery.start(serve_simulator, host, port, options)
        shown = f"[{host}]" if ":" in host else host
        print(f"Prism simulator listening on http://{shown}:{bound}/v1", flush=True)
