"""A2A end to end: the official `a2a-sdk` client against Prism, which runs a local agent
(a model with MCP-free instructions, billed like chat) and fronts a remote agent written
with the a2a-sdk server."""
from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest
from a2a.client import ClientConfig, create_client
from a2a.client.card_resolver import A2ACardResolver
from a2a.helpers.proto_helpers import new_text_message
from a2a.types import a2a_pb2 as pb

import harness
import store

ROOT = Path(__file__).resolve().parents[2]
REMOTE = str(Path(__file__).with_name("remote_agent.py"))
TOKEN = "remote-agent-token"


@pytest.fixture(scope="module")
def remote_url():
    proc, port = harness.start_process_server(REMOTE, TOKEN)
    yield f"http://127.0.0.1:{port}"
    proc.terminate()
    proc.wait(10)


@pytest.fixture(scope="module")
def gw(tmp_path_factory, remote_url):
    os.environ["PRISM_TEST_AGENT_TOKEN"] = TOKEN
    gw = harness.start_gateway(
        tmp_path_factory.mktemp("a2a"), None,
        agents=[{"id": "helper", "kind": "local", "model": "prism-mini",
                 "description": "Answers questions", "instructions": "Be brief."},
                {"id": "echo", "kind": "remote", "url": remote_url, "price_usd": 0.002,
                 "headers": {"Authorization": "Bearer ${PRISM_TEST_AGENT_TOKEN}"}}],
        plans=[{"id": "rpm2", "key_rpm": 2}])
    yield gw
    gw.stop()


def _http(key: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=60)


def _user(text: str) -> pb.SendMessageRequest:
    return pb.SendMessageRequest(message=new_text_message(text, role=pb.Role.ROLE_USER))


async def test_card_discovery(gw):
    async with httpx.AsyncClient() as http:
        card = await A2ACardResolver(http, gw.url).get_agent_card()
        legacy = (await http.get(gw.url + "/.well-known/agent.json")).json()
    assert card.name == "Prism" and card.capabilities.streaming
    assert {s.id for s in card.skills} == {"helper", "echo"}
    assert legacy["url"] == gw.url + "/a2a" and legacy["securitySchemes"]["bearer"]["scheme"] == "bearer"
    key = gw.create_key()
    listed = httpx.get(gw.url + "/v1/agents", headers={"authorization": f"Bearer {key['key']}"}).json()
    assert [a["id"] for a in listed["data"]] == ["helper", "echo"]
    assert httpx.get(gw.url + "/v1/agents").status_code == 401


async def test_send_local_billed_like_chat(gw):
    key = gw.create_key(credits_usd=1.0)
    async with _http(key["key"]) as http:
        client = await create_client(gw.url, ClientConfig(httpx_client=http, streaming=False))
        events = [e async for e in client.send_message(_user("What is an otter?"))]
        assert len(events) == 1 and events[0].HasField("task")
        task = events[0].task
        assert task.status.state == pb.TaskState.TASK_STATE_COMPLETED
        answer = task.artifacts[0].parts[0].text
        assert answer
        fetched = await client.get_task(pb.GetTaskRequest(id=task.id))
        assert fetched.status.state == pb.TaskState.TASK_STATE_COMPLETED
        assert fetched.artifacts[0].parts[0].text == answer
    db = gw.db()
    rows = [r for r in store.request_logs(db, account_id=key["account_id"]) if r.route == "/a2a"]
    assert len(rows) == 1 and rows[0].cost_micros > 0 and rows[0].model == "prism-mini"
    other = gw.create_key()
    async with _http(other["key"]) as http:
        client = await create_client(gw.url, ClientConfig(httpx_client=http, streaming=False))
        with pytest.raises(Exception, match="not found"):
            await client.get_task(pb.GetTaskRequest(id=task.id))


async def test_streamed_send(gw):
    key = gw.create_key()
    async with _http(key["key"]) as http:
        client = await create_client(gw.url, ClientConfig(httpx_client=http, streaming=True))
        events = [e async for e in client.send_message(_user("Tell me about rivers"))]
    kinds = [e.WhichOneof("payload") if hasattr(e, "WhichOneof") else None for e in events]
    assert events[0].HasField("task")
    assert any(e.HasField("artifact_update") for e in events)
    last = events[-1]
    assert last.HasField("status_update") and last.status_update.status.state == \
        pb.TaskState.TASK_STATE_COMPLETED, kinds


async def test_task_cancelled(gw):
    key = gw.create_key()
    async with _http(key["key"]) as http:
        client = await create_client(gw.url, ClientConfig(httpx_client=http, streaming=False,
                                                          polling=True))
        events = [e async for e in client.send_message(_user("slow one [[sim delay_ms=20000]]"))]
        task = events[0].task
        assert task.status.state == pb.TaskState.TASK_STATE_WORKING
        cancelled = await client.cancel_task(pb.CancelTaskRequest(id=task.id))
        assert cancelled.status.state == pb.TaskState.TASK_STATE_CANCELED
        fetched = await client.get_task(pb.GetTaskRequest(id=task.id))
        assert fetched.status.state == pb.TaskState.TASK_STATE_CANCELED
        with pytest.raises(Exception):
            await client.cancel_task(pb.CancelTaskRequest(id=task.id))


async def test_remote_agent_proxied_and_billed(gw):
    key = gw.create_key(credits_usd=1.0)
    async with _http(key["key"]) as http:
        client = await create_client(gw.url + "/a2a/echo", ClientConfig(httpx_client=http,
                                                                         streaming=False))
        events = [e async for e in client.send_message(_user("hello there"))]
        task = events[0].task
        assert task.artifacts[0].parts[0].text == "remote echo: hello there"
        fetched = await client.get_task(pb.GetTaskRequest(id=task.id))
        assert fetched.status.state == pb.TaskState.TASK_STATE_COMPLETED
        streaming = await create_client(gw.url + "/a2a/echo", ClientConfig(httpx_client=http,
                                                                            streaming=True))
        streamed = [e async for e in streaming.send_message(_user("again"))]
        texts = [e.artifact_update.artifact.parts[0].text for e in streamed
                 if e.HasField("artifact_update")]
        assert texts == ["remote echo: again"]
    balance = gw.admin.get(f"/-/keys/{key['id']}").json()
    assert float(balance["balance_usd"]) == pytest.approx(1.0 - 2 * 0.002)


async def test_rate_limited_key_refused_on_the_third_send(gw):
    """A proxied agent call is an engine operation: the key's RPM limit refuses the
    third send with the gateway's HTTP 429, and only the two answered calls are charged."""
    key = gw.create_key(credits_usd=1.0, plan="rpm2")
    async with _http(key["key"]) as http:
        client = await create_client(gw.url + "/a2a/echo", ClientConfig(httpx_client=http,
                                                                         streaming=False))
        for text in ("one", "two"):
            events = [e async for e in client.send_message(_user(text))]
            assert events[0].task.artifacts[0].parts[0].text == f"remote echo: {text}"
        with pytest.raises(Exception) as exc:
            [e async for e in client.send_message(_user("three"))]
        raw = await http.post(gw.url + "/a2a/echo", json={
            "jsonrpc": "2.0", "id": 1, "method": "message/send",
            "params": {"message": {"kind": "message", "role": "user", "messageId": "m4",
                                   "parts": [{"kind": "text", "text": "four"}]}}})
    assert "429" in str(exc.value) or "rate" in str(exc.value).lower(), exc.value
    assert raw.status_code == 429
    assert (raw.json()["error"]["type"], raw.json()["error"]["code"]) == ("rate_limited", "key_rpm")
    db = gw.db()
    rows = [r for r in store.request_logs(db, account_id=key["account_id"])
            if r.route == "/a2a/echo"]
    assert sorted((r.status, r.cost_micros) for r in rows) == [
        (200, 2000), (200, 2000), (429, 0), (429, 0)]
    assert store.open_holds(db) == []
