"""Golden transcripts for every client dialect x upstream kind pair.

For each pair the whole translation is recorded and checked against a file under
golden/pairs/: the client's request, the upstream request it becomes, the upstream's
answer and stream, and what the client receives for each. Any change in any codec that
alters a pair shows up here as a diff. Regenerate after an intended change with
PRISM_UPDATE_GOLDEN=1.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from gateway import canonical as c
from gateway.codecs import anthropic, gemini, openai_chat
from gateway.simulator.core import respond, stream_events
from gateway.simulator.wire import OPENAI
from gateway.simulator.wire_anthropic import ANTHROPIC
from gateway.simulator.wire_gemini import GEMINI

GOLDEN = Path(__file__).parent / "golden" / "pairs"
DIALECTS = ("openai", "anthropic", "gemini")
WIRE = {"openai": OPENAI, "anthropic": ANTHROPIC, "gemini": GEMINI}
ENCODE_REQUEST = {"openai": openai_chat.from_canonical_request,
                  "anthropic": anthropic.from_canonical_request,
                  "gemini": gemini.from_canonical_request}
DECODE_RESPONSE = {"openai": openai_chat.to_canonical_response,
                   "anthropic": anthropic.to_canonical_response,
                   "gemini": gemini.to_canonical_response}
STREAM_DECODER = {"openai": openai_chat.StreamDecoder,
                  "anthropic": anthropic.StreamDecoder,
                  "gemini": gemini.StreamDecoder}
TOOL = c.Tool("get_weather", "Weather for a city",
              {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]})


def _request(scenario: str) -> c.Request:
    system = c.Message("system", (c.TextPart("Be brief."),))
    if scenario == "text":
        user = c.Message("user", (c.TextPart("say: the quick brown fox jumps"),))
        return c.Request(model="m", messages=(system, user), max_tokens=100, temperature=0.2)
    user = c.Message("user", (c.TextPart("Use get_weather for city=Oslo"),))
    return c.Request(model="m", messages=(system, user), max_tokens=100, tools=(TOOL,))


def _decode_client(dialect: str, body: dict, stream: bool) -> c.Request:
    if dialect == "openai":
        return openai_chat.to_canonical_request({**body, "stream": stream})
    if dialect == "anthropic":
        return anthropic.to_canonical_request({**body, "stream": stream})
    return gemini.to_canonical_request(body, model="m", stream=stream)


def _sse_data(raw: bytes) -> list:
    out = []
    for block in raw.decode().split("\n\n"):
        for line in block.split("\n"):
            if line.startswith("data: "):
                payload = line[6:]
                out.append(payload if payload == "[DONE]" else json.loads(payload))
    return out


def transcript(inbound: str, kind: str, scenario: str) -> dict:
    base = _request(scenario)
    client_body = ENCODE_REQUEST[inbound](base, "m")
    req = _decode_client(inbound, client_body, False)
    upstream_request = ENCODE_REQUEST[kind](req, "upstream-model")
    answer = WIRE[kind].encode_response(respond(req))
    client_response = WIRE[inbound].encode_response(DECODE_RESPONSE[kind](json.loads(json.dumps(answer))))

    sreq = _decode_client(inbound, client_body, True)
    writer = WIRE[kind].stream_writer(sreq, "up-1", 0)
    events = stream_events(sreq)
    upstream_stream = _sse_data(b"".join(writer.encode(ev) for ev in events) + writer.end())
    decoder = STREAM_DECODER[kind]()
    client_writer = WIRE[inbound].stream_writer(sreq, "client-1", 0)
    out = b""
    for data in upstream_stream:
        if data == "[DONE]":
            continue
        for ev in decoder.feed(data):
            out += client_writer.encode(ev)
    for ev in decoder.close():
        out += client_writer.encode(ev)
    out += client_writer.end()
    return {"client_request": client_body, "upstream_request": upstream_request,
            "upstream_response": answer, "client_response": client_response,
            "upstream_stream": upstream_stream, "client_stream": _sse_data(out)}


PAIRS = [(i, k, s) for i in DIALECTS for k in DIALECTS for s in ("text", "tool")]


@pytest.mark.parametrize("inbound,kind,scenario", PAIRS, ids=[f"{i}-via-{k}-{s}" for i, k, s in PAIRS])
def test_pair_matches_golden_transcript(inbound, kind, scenario):
    got = json.loads(json.dumps(transcript(inbound, kind, scenario)))
    path = GOLDEN / f"{inbound}-via-{kind}-{scenario}.json"
    if os.environ.get("PRISM_UPDATE_GOLDEN") or not path.exists():
        GOLDEN.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(got, indent=1, sort_keys=True) + "\n")
    assert got == json.loads(path.read_text())


@pytest.mark.parametrize("inbound,kind", [(i, k) for i in DIALECTS for k in DIALECTS])
def test_stream_and_plain_translation_agree(inbound, kind):
    """The client's streamed answer carries the same text and tool calls as the plain one."""
    t = transcript(inbound, kind, "tool")
    plain = json.dumps(t["client_response"])
    streamed = json.dumps(t["client_stream"])
    assert "get_weather" in plain and "get_weather" in streamed
    assert "Oslo" in plain and "Oslo" in streamed
