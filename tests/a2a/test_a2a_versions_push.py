"""A2A 1.0 and 0.3 side by side, conversations (contextId / taskId) and push
notifications, with the official `a2a-sdk` client pinned to each protocol version of
Prism's card, and a real webhook receiver on a local socket."""
from __future__ import annotations

import json
import queue
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from a2a.client import ClientConfig, create_client
from a2a.client.card_resolver import A2ACardResolver
from a2a.helpers.proto_helpers import new_text_message
from a2a.types import a2a_pb2 as pb

import harness
import store

VERSIONS = ("1.0", "0.3.0")


@pytest.fixture(scope="module")
def gw(tmp_path_factory):
    gw = harness.start_gateway(
        tmp_path_factory.mktemp("a2a-v"), None,
        a2a={"push_allow_private_hosts": True, "push_timeout": 5.0},
        agents=[{"id": "helper", "kind": "local", "model": "prism-mini",
                 "description": "Answers questions"}])
    yield gw
    gw.stop()


@pytest.fixture(scope="module")
def hook():
    """A webhook receiver: every POST's headers and JSON body land in `received`."""
    received: queue.Queue = queue.Queue()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            received.put((self.path, dict(self.headers), json.loads(body)))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    server.received = received
    server.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield server
    server.shutdown()


class Recorder:
    """The JSON-RPC methods the SDK's client really sent."""

    def __init__(self) -> None:
        self.methods: list[str] = []

    async def __call__(self, request: httpx.Request) -> None:
        if request.method == "POST":
            self.methods.append(json.loads(request.content)["method"])


async def _client(http: httpx.AsyncClient, gw, version: str, **config):
    card = await A2ACardResolver(http, gw.url + "/a2a/helper").get_agent_card()
    pinned = [i for i in card.supported_interfaces if i.protocol_version == version]
    assert len(pinned) == 1, card.supported_interfaces
    del card.supported_interfaces[:]
    card.supported_interfaces.extend(pinned)
    return await create_client(card, ClientConfig(httpx_client=http, **config))


def _http(key: str, recorder: Recorder | None = None) -> httpx.AsyncClient:
    hooks = {"request": [recorder]} if recorder else {}
    return httpx.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=60,
                             event_hooks=hooks)


def _user(text: str, **fields) -> pb.SendMessageRequest:
    message = new_text_message(text, role=pb.Role.ROLE_USER)
    for name, value in fields.items():
        setattr(message, name, value)
    return pb.SendMessageRequest(message=message)


def _chat_rows(gw, key) -> list:
    rows = store.request_logs(gw.db(), account_id=key["account_id"])
    return sorted((r for r in rows if r.route == "/a2a"), key=lambda r: r.created_at)


@pytest.mark.parametrize("version", VERSIONS)
async def test_each_protocol_version_sends_gets_and_streams(gw, version):
    key = gw.create_key()
    recorder = Recorder()
    async with _http(key["key"], recorder) as http:
        client = await _client(http, gw, version, streaming=False)
        events = [e async for e in client.send_message(_user("say: otters"))]
        task = events[0].task
        assert task.status.state == pb.TaskState.TASK_STATE_COMPLETED
        assert task.artifacts[0].parts[0].text == "otters"
        fetched = await client.get_task(pb.GetTaskRequest(id=task.id))
        assert fetched.history[-1].parts[0].text == "otters"
        streaming = await _client(http, gw, version, streaming=True)
        streamed = [e async for e in streaming.send_message(_user("say: rivers"))]
        assert streamed[-1].status_update.status.state == pb.TaskState.TASK_STATE_COMPLETED
    expected = (["SendMessage", "GetTask", "SendStreamingMessage"] if version == "1.0"
                else ["message/send", "tasks/get", "message/stream"])
    assert recorder.methods == expected


@pytest.mark.parametrize("version", VERSIONS)
async def test_context_continues_the_conversation(gw, version):
    key = gw.create_key()
    async with _http(key["key"]) as http:
        client = await _client(http, gw, version, streaming=False)
        first = [e async for e in client.send_message(_user("say: alpha"))][0].task
        again = [e async for e in client.send_message(
            _user("say: beta", context_id=first.context_id))][0].task
        fresh = [e async for e in client.send_message(_user("say: beta"))][0].task
    assert again.context_id == first.context_id and again.id != first.id
    assert fresh.context_id != first.context_id
    assert again.artifacts[0].parts[0].text == "beta"
    # The continued task's model call carried the first exchange: more input than the
    # same message in a fresh context.
    rows = _chat_rows(gw, key)
    assert len(rows) == 3
    assert rows[1].tokens_in > rows[2].tokens_in + 4


@pytest.mark.parametrize("version", VERSIONS)
async def test_task_id_rules(gw, version):
    key = gw.create_key()
    async with _http(key["key"]) as http:
        client = await _client(http, gw, version, streaming=False)
        done = [e async for e in client.send_message(_user("say: one"))][0].task
        with pytest.raises(Exception, match="completed and takes no more messages"):
            [e async for e in client.send_message(_user("say: two", task_id=done.id))]
        with pytest.raises(Exception, match="not found"):
            [e async for e in client.send_message(_user("say: two", task_id="nope"))]
    other = gw.create_key()
    async with _http(other["key"]) as http:
        client = await _client(http, gw, version, streaming=False)
        with pytest.raises(Exception, match="not found"):
            [e async for e in client.send_message(_user("say: mine", task_id=done.id))]


def _drain(received: queue.Queue, task_id: str, until: float) -> list:
    got = []
    while time.monotonic() < until:
        try:
            got.append(received.get(timeout=max(0.01, until - time.monotonic())))
        except queue.Empty:
            break
        if _final(got[-1][2], task_id):
            return got
    return got


def _final(body: dict, task_id: str) -> bool:
    if "statusUpdate" in body:      # 1.0: a StreamResponse
        s = body["statusUpdate"]
        return s["taskId"] == task_id and s["status"]["state"] == "TASK_STATE_COMPLETED"
    return body.get("id") == task_id and body["status"]["state"] == "completed"   # 0.3: a Task


@pytest.mark.parametrize("version", VERSIONS)
async def test_push_config_crud_and_delivery(gw, hook, version):
    key = gw.create_key()
    async with _http(key["key"]) as http:
        client = await _client(http, gw, version, streaming=False, polling=True)
        task = [e async for e in client.send_message(
            _user("say: pushed [[sim delay_ms=1500]]"))][0].task
        assert task.status.state == pb.TaskState.TASK_STATE_WORKING
        url = f"{hook.url}/hook/{version}"
        made = await client.create_task_push_notification_config(pb.TaskPushNotificationConfig(
            task_id=task.id, id="hook-1", url=url, token="tok-123"))
        assert (made.task_id, made.id, made.url, made.token) == (task.id, "hook-1", url, "tok-123")
        got = await client.get_task_push_notification_config(
            pb.GetTaskPushNotificationConfigRequest(task_id=task.id, id="hook-1"))
        assert got.url == url
        listed = await client.list_task_push_notification_configs(
            pb.ListTaskPushNotificationConfigsRequest(task_id=task.id))
        assert [c.id for c in listed.configs] == ["hook-1"]
        deliveries = _drain(hook.received, task.id, time.monotonic() + 20)
        assert deliveries and _final(deliveries[-1][2], task.id), deliveries
        path, headers, body = deliveries[-1]
        assert path == f"/hook/{version}"
        assert {k.lower(): v for k, v in headers.items()}["x-a2a-notification-token"] == "tok-123"
        if version == "1.0":
            assert body["statusUpdate"]["status"]["message"]["parts"][0]["text"] == "pushed"
        else:
            assert body["artifacts"][0]["parts"][0]["text"] == "pushed"
        await client.delete_task_push_notification_config(
            pb.DeleteTaskPushNotificationConfigRequest(task_id=task.id, id="hook-1"))
        listed = await client.list_task_push_notification_configs(
            pb.ListTaskPushNotificationConfigsRequest(task_id=task.id))
        assert list(listed.configs) == []
    # Another account sees neither the task nor its webhooks.
    other = gw.create_key()
    async with _http(other["key"]) as http:
        client = await _client(http, gw, version, streaming=False)
        with pytest.raises(Exception, match="not found"):
            await client.list_task_push_notification_configs(
                pb.ListTaskPushNotificationConfigsRequest(task_id=task.id))


async def test_push_url_through_the_ssrf_guard(gw):
    key = gw.create_key()
    async with _http(key["key"]) as http:
        client = await _client(http, gw, "1.0", streaming=False)
        task = [e async for e in client.send_message(_user("say: guarded"))][0].task
        for url in ("http://169.254.169.254/latest/meta-data", "ftp://example.com/x",
                    "http://user:pw@127.0.0.1/x"):
            with pytest.raises(Exception, match="refused|http or https"):
                await client.create_task_push_notification_config(
                    pb.TaskPushNotificationConfig(task_id=task.id, url=url))
        listed = await client.list_task_push_notification_configs(
            pb.ListTaskPushNotificationConfigsRequest(task_id=task.id))
        assert list(listed.configs) == []


async def test_list_tasks_pages_and_filters(gw):
    key = gw.create_key()
    async with _http(key["key"]) as http:
        client = await _client(http, gw, "1.0", streaming=False)
        first = [e async for e in client.send_message(_user("say: one"))][0].task
        for text in ("say: two", "say: three"):
            [e async for e in client.send_message(_user(text, context_id=first.context_id))]
        [e async for e in client.send_message(_user("say: elsewhere"))]
        page = await client.list_tasks(pb.ListTasksRequest(context_id=first.context_id,
                                                           page_size=2))
        assert page.total_size == 3 and len(page.tasks) == 2 and page.next_page_token
        rest = await client.list_tasks(pb.ListTasksRequest(
            context_id=first.context_id, page_size=2, page_token=page.next_page_token))
        assert len(rest.tasks) == 1 and not rest.next_page_token
        assert rest.tasks[0].id == first.id                   # newest first
        assert list(rest.tasks[0].artifacts) == []            # only when asked for
        done = await client.list_tasks(pb.ListTasksRequest(
            status=pb.TaskState.TASK_STATE_COMPLETED, include_artifacts=True))
        assert done.total_size == 4 and done.tasks[0].artifacts[0].parts[0].text == "elsewhere"
    other = gw.create_key()
    async with _http(other["key"]) as http:
        client = await _client(http, gw, "1.0", streaming=False)
        assert (await client.list_tasks(pb.ListTasksRequest())).total_size == 0


async def test_push_config_inline_with_the_message(gw, hook):
    """A 0.3 client's configuration.pushNotificationConfig rides on message/send; a URL
    the guard refuses is refused before any task exists."""
    key = gw.create_key()
    async with _http(key["key"]) as http:
        send = {"jsonrpc": "2.0", "id": 1, "method": "message/send", "params": {
            "message": {"kind": "message", "role": "user", "messageId": "m1",
                        "parts": [{"kind": "text", "text": "say: inline"}]},
            "configuration": {"blocking": True, "pushNotificationConfig": {
                "url": f"{hook.url}/inline", "token": "tok-inline"}}}}
        task = (await http.post(gw.url + "/a2a/helper", json=send)).json()["result"]
        deliveries = _drain(hook.received, task["id"], time.monotonic() + 20)
        assert deliveries and deliveries[-1][0] == "/inline"
        assert deliveries[-1][2]["artifacts"][0]["parts"][0]["text"] == "inline"
        send["params"]["configuration"]["pushNotificationConfig"]["url"] = \
            "http://169.254.169.254/x"
        refused = (await http.post(gw.url + "/a2a/helper", json=send)).json()
    assert "refused" in refused["error"]["message"]
    listed = await _list_all(gw, key)
    assert len(listed) == 1


async def _list_all(gw, key) -> list:
    async with _http(key["key"]) as http:
        client = await _client(http, gw, "1.0", streaming=False)
        return list((await client.list_tasks(pb.ListTasksRequest())).tasks)
