"""The pure wire of upstream batch APIs (gateway.jobs.native_wire): each kind's line
envelope, and each kind's result lines (succeeded, errored, canceled, expired) back to
canonical, round-tripped through the simulator's own batch answers."""
from __future__ import annotations

import pytest

from gateway import canonical as c
from gateway import errors
from gateway.jobs.native_wire import decode_result, encode_line, status_of
from gateway.simulator.batch_native import NativeBatchSim
from gateway.simulator.core import SimOptions

REQ = c.Request(model="m", messages=(c.Message("user", (c.TextPart("say: hi there"),)),),
                max_tokens=50)
_PATHS = {"openai": "/v1/chat/completions", "anthropic": "/v1/messages",
          "gemini": "/v1beta/models/up-model:generateContent"}


def _wrap(kind: str, line: dict, status: int, body: dict) -> dict:
    """The result line the upstream writes for one answered request."""
    if kind == "openai":
        return {"id": "batch_req_1", "custom_id": line["custom_id"], "error": None,
                "response": {"status_code": status, "request_id": "r", "body": body}}
    if kind == "anthropic":
        result = ({"type": "succeeded", "message": body} if status == 200 else
                  {"type": "errored", "error": body})
        return {"custom_id": line["custom_id"], "result": result}
    return {**({"response": body} if status == 200 else {"error": body["error"]}),
            "metadata": line["metadata"]}


@pytest.mark.parametrize("kind", ["openai", "anthropic", "gemini"])
def test_line_round_trips_through_the_upstream(kind):
    line = encode_line(kind, "chat", "line-3", REQ, "up-model")
    if kind == "openai":
        assert line["custom_id"] == "line-3" and line["url"] == "/v1/chat/completions"
        assert line["body"]["model"] == "up-model" and line["body"]["stream"] is False
        payload = line["body"]
    elif kind == "anthropic":
        assert set(line) == {"custom_id", "params"} and line["params"]["max_tokens"] == 50
        assert "stream" not in line["params"]
        payload = line["params"]
    else:
        assert line["metadata"] == {"key": "line-3"} and "contents" in line["request"]
        payload = line["request"]
    sim = NativeBatchSim(SimOptions())
    status, body = sim._answer(_PATHS[kind], payload)
    assert status == 200
    res = decode_result(kind, "chat", _wrap(kind, line, status, body))
    assert res.key == "line-3" and res.outcome == "succeeded"
    text = "".join(p.text for p in res.response.message.parts if isinstance(p, c.TextPart))
    assert text == "hi there" and res.response.usage.output_tokens > 0


@pytest.mark.parametrize("kind", ["openai", "anthropic", "gemini"])
def test_refused_line_is_an_upstream_client_error(kind):
    line = encode_line(kind, "chat", "line-0",
                       c.Request(model="m", messages=(c.Message("user", (
                           c.TextPart("x [[sim status=400]]"),)),), max_tokens=5), "up-model")
    payload = line.get("body") or line.get("params") or line.get("request")
    status, body = NativeBatchSim(SimOptions())._answer(_PATHS[kind], payload)
    res = decode_result(kind, "chat", _wrap(kind, line, status, body))
    assert res.outcome == "errored" and isinstance(res.error, errors.UpstreamClientError)
    assert "simulated" not in res.error.message           # upstream words stay in detail


def test_cancelled_and_expired_lines():
    assert decode_result("anthropic", "chat", {"custom_id": "a", "result": {"type": "canceled"}}
                         ).outcome == "canceled"
    assert decode_result("anthropic", "chat", {"custom_id": "a", "result": {"type": "expired"}}
                         ).outcome == "expired"
    assert decode_result("openai", "chat", {"custom_id": "a", "response": None, "error": {
        "code": "batch_cancelled", "message": "x"}}).outcome == "canceled"
    assert decode_result("openai", "chat", {"custom_id": "a", "response": None, "error": {
        "code": "batch_expired", "message": "x"}}).outcome == "expired"
    assert decode_result("gemini", "chat", {"error": {"code": 499, "status": "CANCELLED"},
                                            "metadata": {"key": "k"}}).outcome == "canceled"
    assert decode_result("gemini", "chat", {"response": {}}) is None      # no key: not ours


def test_status_words():
    assert status_of("openai", {"status": "in_progress"}).ended is False
    assert status_of("openai", {"status": "failed"}).failed is True
    assert status_of("anthropic", {"processing_status": "canceling"}).ended is False
    assert status_of("anthropic", {"processing_status": "ended"}).ended is True
    for word in ("BATCH_STATE_SUCCEEDED", "JOB_STATE_SUCCEEDED", "BATCH_STATE_CANCELLED"):
        assert status_of("gemini", {"name": "batches/x", "metadata": {"state": word}}).ended
    assert not status_of("gemini", {"metadata": {"state": "BATCH_STATE_RUNNING"}}).ended


def test_openai_responses_api_lines():
    """A provider with api = "responses" gets /v1/responses lines and answers."""
    line = encode_line("openai", "responses", "line-1", REQ, "up-model")
    assert line["url"] == "/v1/responses" and line["body"]["model"] == "up-model"
    assert "stream" not in line["body"]
    status, body = NativeBatchSim(SimOptions())._answer("/v1/responses", line["body"])
    assert status == 200
    res = decode_result("openai", "responses", _wrap("openai", line, status, body))
    text = "".join(p.text for p in res.response.message.parts if isinstance(p, c.TextPart))
    assert res.outcome == "succeeded" and text == "hi there"
