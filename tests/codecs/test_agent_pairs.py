"""Golden fixtures for what the coding agents send, in every client x upstream pair.

Three scenarios, each decoded in its client dialect and encoded for every upstream
kind, with the simulator's answer carried back to the client (plain and streamed):

- ``mid_system``: a system message in the middle of the conversation (Claude Code
  sends one; OpenAI Chat clients may). Order and meaning must survive: OpenAI keeps
  it in place, Anthropic keeps it in place, Gemini folds it into systemInstruction.
- ``namespace``: Codex's Responses ``namespace`` tools, flattened on the way up; the
  call the model makes comes back under the declared name and namespace.
- ``hosted``: each dialect's hosted tool (Responses web_search, Anthropic's
  web_search server tool, Gemini googleSearch) reaches only its own vendor's upstream
  and is left out everywhere else (routing/hosted.py decides whether to go on).

Regenerate after an intended change with PRISM_UPDATE_GOLDEN=1.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from gateway import canonical as c
from gateway.codecs import anthropic, gemini, openai_chat, openai_responses, openai_responses_up
from gateway.codecs.hosted import dropped_by
from gateway.codecs.openai_responses_stream import StreamEncoder as ResponsesStream
from gateway.simulator.core import respond, stream_events
from gateway.simulator.wire import OPENAI
from gateway.simulator.wire_anthropic import ANTHROPIC
from gateway.simulator.wire_gemini import GEMINI
from gateway.simulator.wire_responses import RESPONSES

GOLDEN = Path(__file__).parent / "golden" / "agent_pairs"
# openai_responses: an OpenAI-kind upstream with api = "responses".
KINDS = ("openai", "anthropic", "gemini", "openai_responses")
ENCODE = {"openai": openai_chat.from_canonical_request, "anthropic": anthropic.from_canonical_request,
          "gemini": gemini.from_canonical_request,
          "openai_responses": openai_responses_up.from_canonical_request}
DECODE = {"openai": openai_chat.to_canonical_response, "anthropic": anthropic.to_canonical_response,
          "gemini": gemini.to_canonical_response,
          "openai_responses": openai_responses_up.to_canonical_response}
WIRE = {"openai": OPENAI, "anthropic": ANTHROPIC, "gemini": GEMINI, "openai_responses": RESPONSES}
READ = {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}

CLIENT_BODIES = {
    ("mid_system", "openai"): {"model": "m", "messages": [
        {"role": "user", "content": "say: hi"}, {"role": "system", "content": "Be terse."},
        {"role": "user", "content": "say: again"}]},
    ("mid_system", "anthropic"): {"model": "m", "max_tokens": 100, "system": "Lead.", "messages": [
        {"role": "user", "content": "say: hi"}, {"role": "system", "content": "Be terse."},
        {"role": "assistant", "content": "hi"}, {"role": "user", "content": "say: again"}]},
    ("mid_system", "gemini"): {"systemInstruction": {"parts": [{"text": "Be terse."}]}, "contents": [
        {"role": "user", "parts": [{"text": "say: hi"}]}, {"role": "model", "parts": [{"text": "hi"}]},
        {"role": "user", "parts": [{"text": "say: again"}]}]},
    ("namespace", "responses"): {"model": "m", "input": "Use the fs__read tool path=/etc/hostname", "tools": [
        {"type": "function", "name": "exec", "parameters": READ},
        {"type": "namespace", "name": "fs", "description": "files", "tools": [
            {"type": "function", "name": "read", "parameters": READ}]}]},
    ("hosted", "responses"): {"model": "m", "input": "say: found", "tools": [
        {"type": "function", "name": "read", "parameters": READ},
        {"type": "web_search", "external_web_access": False}]},
    ("hosted", "anthropic"): {"model": "m", "max_tokens": 100, "messages": [
        {"role": "user", "content": "say: found"}], "tools": [
        {"name": "read", "input_schema": READ},
        {"type": "web_search_20250305", "name": "web_search", "max_uses": 1}]},
    ("hosted", "gemini"): {"contents": [{"role": "user", "parts": [{"text": "say: found"}]}], "tools": [
        {"functionDeclarations": [{"name": "read", "parameters": READ}]}, {"googleSearch": {}}]},
}
CASES = [(s, d, k) for (s, d) in CLIENT_BODIES for k in KINDS]


def _decode(dialect: str, body: dict, stream: bool) -> c.Request:
    if dialect == "openai":
        return openai_chat.to_canonical_request({**body, "stream": stream})
    if dialect == "anthropic":
        return anthropic.to_canonical_request({**body, "stream": stream})
    if dialect == "responses":
        return openai_responses.to_canonical_request({**body, "stream": stream})
    return gemini.to_canonical_request(body, model="m", stream=stream)


def _client_response(dialect: str, body: dict, resp: c.Response) -> dict:
    if dialect == "responses":
        return openai_responses.from_canonical_response(
            resp, model="m", response_id="resp_1", created_at=0,
            request_echo=openai_responses.request_echo(body))
    return json.loads(WIRE[dialect].encode_response(resp).decode()
                      if isinstance(WIRE[dialect].encode_response(resp), bytes)
                      else json.dumps(WIRE[dialect].encode_response(resp)))


def _client_stream(dialect: str, body: dict, req: c.Request) -> list:
    events = stream_events(req)
    if dialect == "responses":
        enc = ResponsesStream("resp_1", "m", 0, openai_responses.request_echo(body))
        return [e for ev in events for e in enc.encode(ev)] + enc.finish()
    writer = WIRE[dialect].stream_writer(req, "client-1", 0)
    raw = b"".join(writer.encode(ev) for ev in events) + writer.end()
    return [json.loads(line[6:]) for line in raw.decode().split("\n")
            if line.startswith("data: ") and line[6:] != "[DONE]"]


def transcript(scenario: str, dialect: str, kind: str) -> dict:
    body = CLIENT_BODIES[(scenario, dialect)]
    req = _decode(dialect, body, False)
    upstream_request = ENCODE[kind](req, "upstream-model")
    answer = DECODE[kind](json.loads(json.dumps(WIRE[kind].encode_response(respond(req)))))
    return {"client_request": body, "upstream_request": upstream_request,
            "dropped_tools": dropped_by(req, kind),
            "client_response": _client_response(dialect, body, answer),
            "client_stream": _client_stream(dialect, body, _decode(dialect, body, True))}


@pytest.mark.parametrize("scenario,dialect,kind", CASES, ids=[f"{s}-{d}-via-{k}" for s, d, k in CASES])
def test_agent_pair_matches_golden(scenario, dialect, kind):
    got = json.loads(json.dumps(transcript(scenario, dialect, kind)))
    path = GOLDEN / f"{scenario}-{dialect}-via-{kind}.json"
    if os.environ.get("PRISM_UPDATE_GOLDEN") or not path.exists():
        path.write_text(json.dumps(got, indent=1, sort_keys=True) + "\n")
    assert got == json.loads(path.read_text())


@pytest.mark.parametrize("dialect", ["openai", "anthropic", "gemini"])
@pytest.mark.parametrize("kind", KINDS)
def test_mid_conversation_system_keeps_its_place(dialect, kind):
    up = transcript("mid_system", dialect, kind)["upstream_request"]
    text = json.dumps(up)
    assert "Be terse." in text
    if kind == "gemini":
        assert "Be terse." in json.dumps(up["systemInstruction"])
    elif kind == "openai_responses" and dialect != "gemini":
        roles = [i.get("role") for i in up["input"]]
        i = roles.index("system", 1)
        assert roles[i - 1] == "user" and "say: hi" in json.dumps(up["input"][i - 1])
    elif dialect != "gemini":
        roles = [m["role"] for m in up["messages"]]
        i = roles.index("system", 1 if kind == "openai" and dialect == "anthropic" else 0)
        assert roles[i - 1] == "user" and "say: hi" in json.dumps(up["messages"][i - 1])


@pytest.mark.parametrize("kind", KINDS)
def test_namespace_calls_come_back_under_the_declared_names(kind):
    t = transcript("namespace", "responses", kind)
    assert "fs__read" in json.dumps(t["upstream_request"])
    calls = [i for i in t["client_response"]["output"] if i["type"] == "function_call"]
    assert [(i["namespace"], i["name"]) for i in calls] == [("fs", "read")]
    done = [e["item"] for e in t["client_stream"] if e["type"] == "response.output_item.done"]
    assert [(i.get("namespace"), i["name"]) for i in done if i["type"] == "function_call"] == [("fs", "read")]


@pytest.mark.parametrize("dialect,native,name", [("responses", "openai_responses", "web_search"),
                                                  ("anthropic", "anthropic", "web_search"),
                                                  ("gemini", "gemini", "googleSearch")])
@pytest.mark.parametrize("kind", KINDS)
def test_hosted_tools_reach_only_their_vendor(dialect, native, name, kind):
    t = transcript("hosted", dialect, kind)
    tools = json.dumps(t["upstream_request"].get("tools"))
    assert (name in tools) == (kind == native)
    assert t["dropped_tools"] == ([] if kind == native else [name])
    assert "read" in tools   # the function tool always goes
