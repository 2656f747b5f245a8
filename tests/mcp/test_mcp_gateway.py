"""The MCP gateway end to end: the `mcp` SDK's Streamable HTTP client against Prism, which
fronts two upstream servers written with the same SDK (notes over stdio, calc over HTTP)."""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import httpx
import httpx2
import pytest
import trio
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp_types import ToolListChangedNotification

import harness
import store

ROOT = Path(__file__).resolve().parents[2]
SERVERS = str(Path(__file__).with_name("upstream_servers.py"))


@pytest.fixture(scope="module")
def calc_url():
    proc, port = harness.start_process_server(SERVERS, "http")
    yield f"http://127.0.0.1:{port}/mcp"
    proc.terminate()
    proc.wait(10)


@pytest.fixture(scope="module")
def mcp_gateway(tmp_path_factory, calc_url):
    os.environ["PRISM_TEST_MCP_TOKEN"] = "calc-secret"
    gw = harness.start_gateway(
        tmp_path_factory.mktemp("mcp"), None,
        plans=[{"id": "limited", "mcp_tools": ["notes__*", "calc__add"]},
               {"id": "rpm2", "key_rpm": 2}],
        agents=[{"id": "adder", "kind": "local", "model": "prism-mini",
                 "instructions": "Use your tools.", "mcp_tools": ["calc__*"]}],
        mcp_servers=[
            {"id": "notes", "transport": "stdio", "command": sys.executable,
             "args": [SERVERS, "stdio"], "cwd": str(ROOT), "env": {"PYTHONPATH": str(ROOT)},
             "ping_interval": 0.3, "backoff_initial": 0.2, "backoff_max": 1.0, "timeout": 20},
            {"id": "calc", "transport": "http", "url": calc_url, "price_usd": 0.01,
             "headers": {"Authorization": "Bearer ${PRISM_TEST_MCP_TOKEN}"}}])
    _wait_up(gw, {"notes", "calc"})
    yield gw
    gw.stop()


def _wait_up(gw, ids, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        servers = gw.admin.get("/-/mcp/status").json()["servers"]
        if all(s["state"] == "up" for s in servers if s["id"] in ids):
            return servers
        time.sleep(0.1)
    raise AssertionError(f"MCP servers not up: {servers}")


def _client(gw, key: str, **kw) -> Client:
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"},
                              timeout=httpx2.Timeout(30, read=300))
    return Client(streamable_http_client(gw.url + "/mcp", http_client=http), cache=None, **kw)


async def test_list_call_resources_prompts(mcp_gateway):
    key = mcp_gateway.create_key(credits_usd=1.0)
    async with _client(mcp_gateway, key["key"]) as client:
        names = {t.name for t in (await client.list_tools()).tools}
        assert {"notes__add_note", "notes__read_note", "calc__add", "calc__secret_pid"} <= names
        saved = await client.call_tool("notes__add_note", {"name": "todo", "text": "ship it"})
        assert not saved.is_error and "saved todo" in saved.content[0].text
        read = await client.call_tool("notes__read_note", {"name": "todo"})
        assert read.content[0].text == "ship it"
        total = await client.call_tool("calc__add", {"a": 2, "b": 40})
        assert total.content[0].text == "42"
        resources = (await client.list_resources()).resources
        assert [str(r.uri) for r in resources] == ["notes://welcome"]
        body = await client.read_resource("notes://welcome")
        assert body.contents[0].text == "Hello from the notes server"
        prompts = (await client.list_prompts()).prompts
        assert [p.name for p in prompts] == ["notes__summarize"]
        prompt = await client.get_prompt("notes__summarize", {"topic": "otters"})
        assert "otters" in prompt.messages[0].content.text
        with pytest.raises(MCPError, match="Unknown MCP tool"):
            await client.call_tool("calc__nope", {})
    # calc is priced at $0.01 a call: exactly one call was charged, and audited.
    db = mcp_gateway.db()
    rows = store.audit_log(db, limit=50)
    calls = [r for r in rows if r["action"] == "mcp.call" and r["actor"] == key["id"]]
    assert {r["detail"]["tool"] for r in calls} == {"notes__add_note", "notes__read_note",
                                                     "calc__add"}
    assert all(r["detail"]["outcome"] == "ok" and r["detail"]["duration_ms"] >= 0 for r in calls)
    charged = [r for r in calls if r["detail"]["cost_micros"]]
    assert [r["detail"]["tool"] for r in charged] == ["calc__add"]
    assert charged[0]["detail"]["cost_micros"] == 10_000
    balance = mcp_gateway.admin.get(f"/-/keys/{key['id']}").json()
    assert float(balance["balance_usd"]) == pytest.approx(0.99)


async def test_allow_list_hides_and_refuses(mcp_gateway):
    key = mcp_gateway.create_key(plan="limited")
    async with _client(mcp_gateway, key["key"]) as client:
        names = {t.name for t in (await client.list_tools()).tools}
        assert "calc__add" in names and "notes__read_note" in names
        assert "calc__secret_pid" not in names
        with pytest.raises(MCPError, match="allow list") as exc:
            await client.call_tool("calc__secret_pid", {})
        assert exc.value.error.data["type"] == "permission_denied"


async def test_rate_limited_key_refused_on_the_third_call(mcp_gateway):
    """A tool call is an engine operation: the key's RPM limit refuses the third call
    before it reaches the upstream, and only the two served calls are charged."""
    key = mcp_gateway.create_key(credits_usd=1.0, plan="rpm2")
    async with _client(mcp_gateway, key["key"]) as client:
        for _ in range(2):
            assert (await client.call_tool("calc__add", {"a": 1, "b": 2})).content[0].text == "3"
        with pytest.raises(MCPError, match="Rate limit") as exc:
            await client.call_tool("calc__add", {"a": 1, "b": 2})
        assert exc.value.error.data == {"type": "rate_limited", "status": 429}
    db = mcp_gateway.db()
    rows = [r for r in store.request_logs(db, account_id=key["account_id"]) if r.route == "/mcp"]
    assert sorted((r.status, r.cost_micros, r.model) for r in rows) == [
        (200, 10_000, "calc__add"), (200, 10_000, "calc__add"), (429, 0, "calc__add")]
    assert store.open_holds(db) == []
    balance = mcp_gateway.admin.get(f"/-/keys/{key['id']}").json()
    assert float(balance["balance_usd"]) == pytest.approx(0.98)


async def test_refused_key_gets_401(mcp_gateway):
    async with httpx.AsyncClient() as http:
        r = await http.post(mcp_gateway.url + "/mcp", headers={"authorization": "Bearer sk-prism-nope",
                                                               "accept": "application/json, text/event-stream"},
                            json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
    assert r.status_code == 401
    assert r.json()["error"]["data"]["type"] == "invalid_api_key"


async def test_upstream_crash_and_recovery(mcp_gateway):
    key = mcp_gateway.create_key()
    changed = trio.Event()

    async def on_message(message) -> None:
        if isinstance(message, ToolListChangedNotification):
            changed.set()

    before = {s["id"]: s for s in _wait_up(mcp_gateway, {"notes"})}["notes"]["restarts"]
    # The 2025 (session) era: Mcp-Session-Id, and the GET stream that carries
    # notifications/tools/list_changed.
    async with _client(mcp_gateway, key["key"], message_handler=on_message,
                       mode="legacy") as client:
        assert client.protocol_version == "2025-11-25" 
        assert "notes__crash" in {t.name for t in (await client.list_tools()).tools}
        with pytest.raises(MCPError):
            await client.call_tool("notes__crash", {})
        with trio.fail_after(10):
            while "notes__read_note" in {t.name for t in (await client.list_tools()).tools}:
                await trio.sleep(0.05)
        with trio.fail_after(10):
            await changed.wait()
        # Down: its tools are gone, calc's are still there.
        names = {t.name for t in (await client.list_tools()).tools}
        assert "calc__add" in names
        with trio.fail_after(30):
            while "notes__read_note" not in {t.name for t in (await client.list_tools()).tools}:
                await trio.sleep(0.1)
        result = await client.call_tool("notes__read_note", {"name": "welcome"})
        assert result.content[0].text == "Hello from the notes server"
    status = {s["id"]: s for s in mcp_gateway.admin.get("/-/mcp/status").json()["servers"]}
    assert status["notes"]["restarts"] > before and status["notes"]["state"] == "up"


def test_admin_routes(mcp_gateway):
    status = mcp_gateway.admin.get("/-/mcp/status").json()
    assert {s["id"]: s["transport"] for s in status["servers"]} == {"notes": "stdio", "calc": "http"}
    tools = {t["name"] for t in mcp_gateway.admin.get("/-/mcp/tools").json()["data"]}
    assert "calc__secret_pid" in tools
    assert mcp_gateway.admin.get("/-/mcp/resources").json()["data"][0]["uri"] == "notes://welcome"
    assert mcp_gateway.admin.get("/-/mcp/prompts").json()["data"][0]["name"] == "notes__summarize"
    r = mcp_gateway.admin.post("/-/mcp/test", json={"tool": "calc__add", "arguments": {"a": 1, "b": 2}})
    assert r.status_code == 200 and r.json()["content"][0]["text"] == "3"
    r = mcp_gateway.admin.post("/-/mcp/test", json={"tool": "calc__missing"})
    assert r.status_code == 404
    r = mcp_gateway.admin.post("/-/mcp/test", json={"arguments": {}})
    assert r.status_code == 400
    assert httpx.get(mcp_gateway.url + "/-/mcp/status").status_code in (401, 403)


def test_local_agent_uses_mcp_tools(mcp_gateway):
    """A local A2A agent's model calls an MCP tool through the hub, and answers with it."""
    key = mcp_gateway.create_key(credits_usd=1.0)
    r = httpx.post(mcp_gateway.url + "/a2a/adder", timeout=60,
                   headers={"authorization": f"Bearer {key['key']}"},
                   json={"jsonrpc": "2.0", "id": 7, "method": "message/send", "params": {
                       "message": {"kind": "message", "role": "user", "messageId": "m1",
                                   "parts": [{"kind": "text", "text": "use calc__add a=20 b=22"}]}}})
    task = r.json()["result"]
    assert task["status"]["state"] == "completed", task
    assert "42" in task["artifacts"][0]["parts"][0]["text"]
    calls = [row for row in store.audit_log(mcp_gateway.db(), action="mcp.call")
             if row["actor"] == key["id"]]
    assert [c["detail"]["tool"] for c in calls] == ["calc__add"]


def test_responses_hosted_mcp_tool(mcp_gateway):
    """The Responses API's hosted `mcp` tool, run by Prism for a simulator-backed model."""
    from openai import OpenAI
    key = mcp_gateway.create_key(credits_usd=1.0)
    client = OpenAI(base_url=mcp_gateway.url + "/v1", api_key=key["key"], max_retries=0)
    resp = client.responses.create(
        model="prism-mini", input="use calc__add a=2 b=5",
        tools=[{"type": "mcp", "server_label": "calc", "require_approval": "never",
                "allowed_tools": ["add"]}])
    kinds = [item.type for item in resp.output]
    assert kinds[:2] == ["mcp_list_tools", "mcp_call"] and kinds[-1] == "message"
    assert [t.name for t in resp.output[0].tools] == ["calc__add"]
    assert resp.output[1].name == "calc__add" and resp.output[1].output == "7"
    assert "7" in resp.output_text
    import openai
    with pytest.raises(openai.BadRequestError, match="require_approval"):
        client.responses.create(model="prism-mini", input="x", tools=[
            {"type": "mcp", "server_label": "calc", "require_approval": "always"}])
    with pytest.raises(openai.BadRequestError, match="no MCP server"):
        client.responses.create(model="prism-mini", input="x", tools=[
            {"type": "mcp", "server_label": "elsewhere", "server_url": "https://x/mcp",
             "require_approval": "never"}])
