"""An upstream that quotes the credential it was sent in its error bodies (as some
OpenAI-compatible servers do) and names itself: on every provider kind, every client
dialect, streamed or not, for 4xx, 429 and 5xx, the client gets a clean error in its
own dialect with the upstream status class and the request id, and the credential
appears in no response, log line, metric or dashboard frame. The operator still gets
what the upstream said, redacted, on the dashboard's event."""
from __future__ import annotations

import json
import logging
import os
import re
import socket
import time

import httpx
import pytest
import trio
from hypercorn.config import Config as HyperConfig
from hypercorn.trio import serve

import harness
from gateway.control import wire

SECRET = "sk-echo-" + os.urandom(12).hex()
SECRET_ENV = "PRISM_TEST_ECHO_SECRET"
KINDS = ("openai", "anthropic", "gemini")


async def _echo_app(scope, receive, send) -> None:
    """Answers every call with the status named in the request body (`status=NNN`),
    quoting the credential it received, the way a careless upstream does."""
    if scope["type"] == "lifespan":
        while True:
            msg = await receive()
            await send({"type": msg["type"] + ".complete"})
            if msg["type"] == "lifespan.shutdown":
                return
    body = b""
    while True:
        msg = await receive()
        body += msg.get("body", b"")
        if not msg.get("more_body"):
            break
    headers = dict(scope["headers"])
    cred = (headers.get(b"authorization", b"").removeprefix(b"Bearer ")
            or headers.get(b"x-api-key", b"") or headers.get(b"x-goog-api-key", b"")).decode()
    m = re.search(rb"status=(\d{3})", body)
    status = int(m.group(1)) if m else 500
    text = (f"Incorrect API key provided: {cred}. upstream-node-7 (provider secret-corp) "
            f"refuses with {status}; key={cred}")
    out = json.dumps({"error": {"message": text, "type": "invalid_request_error",
                                "code": status, "status": "INVALID", "key": cred}}).encode()
    extra = [(b"retry-after", b"1")] if status == 429 else []
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"x-echo-key", cred.encode())] + extra})
    await send({"type": "http.response.body", "body": out})


def _start_echo() -> harness.ServerThread:
    async def run(stop: trio.Event, task_status=trio.TASK_STATUS_IGNORED) -> None:
        cfg = HyperConfig()
        cfg.bind = ["127.0.0.1:0"]
        cfg.accesslog = None
        async with trio.open_nursery() as nursery:
            binds = await nursery.start(serve, _echo_app, cfg)
            task_status.started(binds[0])
            await stop.wait()
            nursery.cancel_scope.cancel()
    return harness.ServerThread(run).start()


@pytest.fixture(scope="module")
def gw(tmp_path_factory):
    os.environ[SECRET_ENV] = SECRET
    echo = _start_echo()
    tmp = tmp_path_factory.mktemp("echo")
    providers, models = [], []
    for kind in KINDS:
        url = echo.url + "/v1" if kind == "openai" else echo.url
        providers.append({"id": f"echo-{kind}", "kind": kind, "base_url": url,
                          "api_key_env": SECRET_ENV, "images": kind == "openai",
                          "video": kind == "openai"})
        models.append({"id": f"via-{kind}", "input_usd_per_mtok": 1.0,
                       "output_usd_per_mtok": 2.0, "max_output_tokens": 100,
                       "capabilities": ["chat", "images", "video"], "image_usd": 0.04,
                       "video_usd": 0.5,
                       "routes": [{"provider": f"echo-{kind}", "model": f"m-{kind}"}]})
    base = harness.gateway_config(tmp, None)
    gateway = harness.start_gateway(tmp, None, providers=base["providers"] + providers,
                                    models=base["models"] + models,
                                    # Every call here fails on purpose; keep the breakers
                                    # closed so each one reaches the echoing upstream.
                                    routing={"breaker_failures": 1000})
    yield gateway
    gateway.stop()
    echo.stop()


def _calls(model: str, prompt: str) -> list[tuple[str, str, dict, str]]:
    """(dialect, path, body, label) for every client dialect, streamed and not."""
    chat = [{"role": "user", "content": prompt}]
    gem = {"contents": [{"role": "user", "parts": [{"text": prompt}]}]}
    out = []
    for stream in (False, True):
        out += [
            ("openai", "/v1/chat/completions", {"model": model, "messages": chat,
                                                "stream": stream}, "chat"),
            ("openai", "/v1/completions", {"model": model, "prompt": prompt, "stream": stream},
             "completions"),
            ("openai", "/v1/responses", {"model": model, "input": prompt, "stream": stream},
             "responses"),
            ("anthropic", "/v1/messages", {"model": model, "messages": chat, "max_tokens": 20,
                                           "stream": stream}, "messages"),
        ]
        verb = "streamGenerateContent?alt=sse" if stream else "generateContent"
        out.append(("gemini", f"/v1beta/models/{model}:{verb}", gem, "gemini"))
    return out


def _error_of(dialect: str, r: httpx.Response) -> dict:
    """The error object of a refusal in the client's dialect (a whole body, or the
    first error event of a stream)."""
    text = r.text
    if r.headers.get("content-type", "").startswith("text/event-stream"):
        for line in text.splitlines():
            if line.startswith("data:") and '"error"' in line:
                data = json.loads(line[5:])
                return data.get("error", data.get("response", {}).get("error", {})) or data
        raise AssertionError(f"no error event in {text[:300]}")
    body = r.json()
    if dialect == "anthropic":
        assert body["type"] == "error" and set(body["error"]) == {"type", "message", "prism_code"}
    elif dialect == "gemini":
        assert set(body["error"]) == {"code", "message", "status"}
    else:
        assert {"type", "message", "code", "param"} <= set(body["error"])
    return body["error"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("status", [400, 429, 503])
def test_echoed_credential_never_reaches_a_client_log_metric_or_dashboard(
        gw, kind, status, caplog):
    caplog.set_level(logging.INFO)   # what `prism serve` logs (cli.py)
    key = gw.create_key(credits_usd=5.0)
    watcher = socket.socket(socket.AF_UNIX)
    watcher.settimeout(10)
    watcher.connect(gw.socket_path)
    watcher.sendall(wire.encode(wire.Subscribe(id=1)))
    frames = b""
    calls = _calls(f"via-{kind}", f"status={status} please")
    for dialect, path, body, label in calls:
        r = httpx.post(gw.url + path, json=body, timeout=30,
                       headers={"authorization": f"Bearer {key['key']}"})
        raw = r.text + json.dumps(dict(r.headers))
        assert SECRET not in raw and "secret-corp" not in raw and f"echo-{kind}" not in raw, \
            (label, raw[:500])
        if r.status_code == 200:   # a stream whose headers were out: the error is in-band
            assert r.headers["content-type"].startswith("text/event-stream"), (label, r.text)
        else:
            assert r.status_code == (429 if status == 429 else 400 if status < 500 else 502), \
                (label, r.status_code, r.text)
        err = _error_of(dialect, r)
        message = err.get("message", "")
        assert r.headers["x-request-id"] in message, (label, message)
        assert "4xx" in message if status < 500 else "5xx" in message, (label, message)
    # Images and video go through the media clients (openai kind only).
    if kind == "openai":
        for path, body in (("/v1/images/generations", {"model": "via-openai",
                                                       "prompt": f"status={status}"}),
                           ("/v1/videos", {"model": "via-openai", "prompt": f"status={status}"})):
            r = httpx.post(gw.url + path, json=body, timeout=30,
                           headers={"authorization": f"Bearer {key['key']}"})
            assert r.status_code >= 400 and SECRET not in r.text + json.dumps(dict(r.headers))
            assert "secret-corp" not in r.text and r.headers["x-request-id"] in r.text
        listing = httpx.get(gw.url + "/v1/videos", timeout=30,
                            headers={"authorization": f"Bearer {key['key']}"})
        assert SECRET not in listing.text and "secret-corp" not in listing.text
    # The dashboard's live events: collected for what was just sent.
    watcher.settimeout(0.5)
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        try:
            chunk = watcher.recv(65536)
        except socket.timeout:
            break
        if not chunk:
            break
        frames += chunk
    watcher.close()
    assert SECRET.encode() not in frames
    events = [m for m in wire.FrameDecoder().feed(frames) if isinstance(m, wire.Event)]
    details = [e.record.get("error_detail", "") for e in events]
    assert any("secret-corp" in d and "[redacted]" in d for d in details), details
    metrics = gw.admin.get("/-/metrics").text
    assert SECRET not in metrics
    logged = "\n".join(rec.getMessage() + str(rec.exc_info or "") for rec in caplog.records)
    assert SECRET not in logged
    assert "[redacted]" in logged   # the operator's log has the upstream's words
