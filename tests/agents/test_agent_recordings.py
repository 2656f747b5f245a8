"""Recorded requests of Claude Code, Codex and Gemini CLI, replayed through Prism.

tests/agents/fixtures/<cli>.json hold every request body each CLI sent in one
non-interactive run (record.py made them against this gateway and the simulator): the
first turn, where the model is asked to read a file and calls the CLI's file tool, and
the turn carrying the file's contents back as a tool result. Each is replayed, as the
CLI sent it, through a route of every upstream kind, plain and streamed: the first
must come back as a call of the CLI's own tool, the second must reach the upstream as
a tool result (the simulator answers "Tool result received: <result>").
"""
from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

import agent_cli
import harness

FIXTURES = Path(__file__).parent / "fixtures"
KINDS = agent_cli.KINDS
TOOL = {"claude": "Read", "codex": "exec_command", "gemini": "read_file"}


def recording(cli: str) -> list[dict]:
    return json.loads((FIXTURES / f"{cli}.json").read_text())


@pytest.fixture(scope="module")
def gw(sim_url, tmp_path_factory):
    g = harness.start_gateway(tmp_path_factory.mktemp("agents"), sim_url,
                              **agent_cli.gateway_models(sim_url))
    yield g
    g.stop()


@pytest.fixture(scope="module")
def http(gw):
    key = gw.create_key(credits_usd=100)["key"]
    headers = {"authorization": f"Bearer {key}", "x-api-key": key, "x-goog-api-key": key,
               "anthropic-version": "2023-06-01"}
    with httpx.Client(base_url=gw.url, headers=headers, timeout=60) as c:
        yield c


def replay(http: httpx.Client, cli: str, body: dict, kind: str, stream: bool) -> httpx.Response:
    model = f"via-{kind}"
    if cli == "gemini":
        method = "streamGenerateContent?alt=sse" if stream else "generateContent"
        return http.post(f"/v1beta/models/{model}:{method}", json=body)
    path = "/v1/messages" if cli == "claude" else "/v1/responses"
    return http.post(path, json={**body, "model": model, "stream": stream})


def text_of(r: httpx.Response) -> str:
    """The answer's text: a plain body as is, a stream's text deltas joined."""
    if "text/event-stream" not in r.headers.get("content-type", ""):
        return r.text
    out: list[str] = []

    def walk(v: object, key: str = "") -> None:
        if isinstance(v, dict):
            if v.get("type") in ("response.output_text.done", "response.completed",
                                 "response.content_part.done", "response.output_item.done"):
                return   # repeats of the deltas
            for k, x in v.items():
                walk(x, k)
        elif isinstance(v, list):
            for x in v:
                walk(x, key)
        elif isinstance(v, str) and key in ("text", "delta"):
            out.append(v)

    for line in r.text.splitlines():
        if line.startswith("data: ") and line[6:].strip() not in ("", "[DONE]"):
            walk(json.loads(line[6:]))
    return "".join(out)


CASES = [(cli, kind, stream) for cli in TOOL for kind in KINDS for stream in (False, True)]


@pytest.mark.parametrize("cli,kind,stream", CASES, ids=[f"{c}-via-{k}-{'stream' if s else 'plain'}"
                                                          for c, k, s in CASES])
def test_recorded_tool_turn_replays(http, sim_url, cli, kind, stream):
    turns = [r["body"] for r in recording(cli)]
    assert len(turns) >= 2, "the recording holds the tool call turn and the tool result turn"
    first = replay(http, cli, turns[0], kind, stream)
    assert first.status_code == 200, first.text
    assert TOOL[cli] in first.text
    if cli == "codex" and kind == "responses":   # an upstream that runs web_search gets it
        assert "X-Prism-Dropped-Tools" not in first.headers
        assert "web_search" in httpx.get(sim_url + "/_sim/stats").json()["last_tools"]
    elif cli == "codex":   # no native route for web_search here: dropped, and said so
        assert first.headers["X-Prism-Dropped-Tools"] == "web_search"
    last = replay(http, cli, turns[-1], kind, stream)
    assert last.status_code == 200, last.text
    text = text_of(last)
    assert "Tool result received: " in text and agent_cli.SECRET in text


def test_recordings_hold_what_made_the_cli_fail_before():
    claude = recording("claude")[0]["body"]
    assert any(m["role"] == "system" for m in claude["messages"][1:])
    codex = recording("codex")[0]["body"]
    kinds = {t["type"] for t in codex["tools"]}
    assert {"namespace", "web_search"} <= kinds
    gemini = recording("gemini")[0]["body"]
    assert {"temperature", "topP"} <= set(gemini["generationConfig"])
