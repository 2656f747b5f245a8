"""A2A push notifications: a task's webhooks (`tasks/pushNotificationConfig/*`, or the
1.0 `*TaskPushNotificationConfig*` methods) and the delivery of its updates to them.

A webhook URL is a request the gateway makes on a customer's behalf, so it passes the
same SSRF guard as a fetched image (gateway.media.fetch.vet): http(s) only, no
credentials in the URL, every resolved address vetted (no loopback, private, link-local
or metadata address unless `[a2a] push_allow_private_hosts`; metadata never), and the
connection made to the vetted address itself so DNS cannot swap it. Redirects are not
followed. The URL is vetted when it is set (a clear refusal then) and again at each
delivery (DNS may have changed since).

Delivery is best effort, as the protocol has it: one POST per update and webhook, with
`X-A2A-Notification-Token` and the client's `Authorization`, under a deadline; a failure
is logged and never touches the task. Each task's updates are posted in order by a
delivery task of their own, so the agent never waits for a webhook. What is posted follows the protocol version that
set the webhook: 0.3 posts the Task, 1.0 a StreamResponse of the update.
"""
from __future__ import annotations

import json
import logging
from typing import Any
from urllib.parse import urlsplit

import httpx
import trio

import store
from gateway import errors
from gateway.a2a import wire
from gateway.config_protocols import A2AConfig
from gateway.media.fetch import Resolver, system_resolver, vet

log = logging.getLogger("prism.a2a")
MAX_TOKEN_CHARS = 512
MAX_ID_CHARS = 128
_QUEUED_UPDATES = 16       # per task, waiting for a slow webhook


def _refused(err: errors.InvalidRequest) -> errors.InvalidRequest:
    reason = err.message.split(": ", 1)[-1]
    return errors.InvalidRequest(f"push notification URL refused: {reason}", field="url",
                                 code="push_url_refused")


def checked_config(raw: dict[str, Any], limits: A2AConfig) -> dict[str, Any]:
    """A 0.3 PushNotificationConfig (already shape-checked by the SDK's model) within
    our limits: the URL's length and scheme, the id's and token's lengths."""
    url = raw.get("url") or ""
    if len(url) > limits.max_url_chars:
        raise errors.InvalidRequest(f"url is longer than {limits.max_url_chars} characters",
                                    field="url")
    if urlsplit(url).scheme not in ("http", "https"):
        raise errors.InvalidRequest("url must be an http or https URL", field="url")
    config_id = raw.get("id")
    if config_id is not None and len(config_id) > MAX_ID_CHARS:
        raise errors.InvalidRequest(f"id is longer than {MAX_ID_CHARS} characters", field="id")
    token = raw.get("token")
    if token is not None and len(token) > MAX_TOKEN_CHARS:
        raise errors.InvalidRequest(f"token is longer than {MAX_TOKEN_CHARS} characters",
                                    field="token")
    auth = raw.get("authentication")
    if auth is not None and len(str(auth)) > 4096:
        raise errors.InvalidRequest("authentication is too large", field="authentication")
    return raw


class PushSender:
    def __init__(self, limits: A2AConfig, *, resolver: Resolver = system_resolver,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self._limits = limits
        self._resolver = resolver
        self._transport = transport

    async def vet(self, url: str) -> None:
        """Refuse (400) a URL the gateway would never post to."""
        try:
            await vet(url, self._resolver, self._limits.push_allow_private_hosts)
        except errors.InvalidRequest as err:
            raise _refused(err) from None

    @staticmethod
    def _headers(config: dict[str, Any], host: str, port: int | None) -> dict[str, str]:
        headers = {"host": host if port is None else f"{host}:{port}",
                   "content-type": "application/json"}
        if config.get("token"):
            headers["X-A2A-Notification-Token"] = config["token"]
        auth = config.get("authentication") or {}
        schemes = auth.get("schemes") or ([auth["scheme"]] if auth.get("scheme") else [])
        if schemes and auth.get("credentials"):
            headers["Authorization"] = f"{schemes[0]} {auth['credentials']}"
        return headers

    async def deliver(self, config: dict[str, Any], body: bytes) -> bool:
        """POST one update to one webhook; False (logged) when it did not arrive."""
        url = config["url"]
        try:
            with trio.fail_after(self._limits.push_timeout):
                target, _ip, host = await vet(url, self._resolver,
                                              self._limits.push_allow_private_hosts)
                parts = urlsplit(url)
                extensions = {"sni_hostname": host} if target.scheme == "https" else {}
                async with httpx.AsyncClient(transport=self._transport, trust_env=False,
                                             follow_redirects=False, timeout=None) as client:
                    r = await client.post(target, content=body,
                                          headers=self._headers(config, host, parts.port),
                                          extensions=extensions)
            if 200 <= r.status_code < 300:
                return True
            log.warning("push to %s for task %s: HTTP %s", url, config["task_id"], r.status_code)
        except trio.TooSlowError:
            log.warning("push to %s for task %s: no answer in %gs", url, config["task_id"],
                        self._limits.push_timeout)
        except (errors.InvalidRequest, httpx.HTTPError) as exc:
            log.warning("push to %s for task %s failed: %s", url, config["task_id"], exc)
        return False


def _wire_config(row: dict[str, Any]) -> dict[str, Any]:
    """A stored webhook as 0.3's TaskPushNotificationConfig."""
    inner = {"id": row["id"], "url": row["url"]}
    if row.get("token"):
        inner["token"] = row["token"]
    if row.get("authentication"):
        inner["authentication"] = row["authentication"]
    return {"taskId": row["task_id"], "pushNotificationConfig": inner}


def _parsed(model: Any, params: dict[str, Any]) -> Any:
    from pydantic import ValidationError
    try:
        return model.model_validate(params)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise wire.RpcError(wire.INVALID_PARAMS, f"Invalid params at {where}: {first['msg']}") from None


class PushConfigs:
    """The `tasks/pushNotificationConfig/*` methods on an account's tasks, and the
    delivery of a task's updates to its webhooks."""

    def __init__(self, writer: Any, sender: PushSender, limits: A2AConfig) -> None:
        self._writer = writer
        self._sender = sender
        self._limits = limits
        self._nursery: trio.Nursery | None = None
        self._queues: dict[str, trio.MemorySendChannel] = {}   # task id -> its updates

    async def check(self, config: dict[str, Any]) -> dict[str, Any]:
        """A webhook config within our limits, to a URL the gateway would post to."""
        config = checked_config(config, self._limits)
        await self._sender.vet(config["url"])
        return config

    async def set(self, caller: Any, task_id: str, config: dict[str, Any], protocol: str
                  ) -> dict[str, Any]:
        config = await self.check(config)
        try:
            row = await self._writer.call(
                store.save_a2a_push_config, task_id=task_id, account_id=caller.account_id,
                config_id=config.get("id") or task_id, url=config["url"],
                token=config.get("token"), authentication=config.get("authentication"),
                protocol=protocol, max_per_task=self._limits.max_push_configs_per_task)
        except ValueError as exc:
            raise wire.RpcError(wire.INVALID_PARAMS, str(exc)) from None
        if row is None:
            raise wire.RpcError(wire.TASK_NOT_FOUND, f"Task {task_id!r} not found")
        return _wire_config(row)

    async def rpc(self, caller: Any, method: str, params: dict[str, Any], protocol: str) -> Any:
        if method == "tasks/pushNotificationConfig/set":
            from a2a.compat.v0_3 import types as v03   # the SDK: loaded on first use
            p = _parsed(v03.TaskPushNotificationConfig, params)
            raw = p.push_notification_config.model_dump(mode="json", by_alias=True,
                                                         exclude_none=True)
            return await self.set(caller, p.task_id, raw, protocol)
        task_id = wire.task_id_param(params)
        if await self._writer.call(store.get_a2a_task, task_id, caller.account_id) is None:
            raise wire.RpcError(wire.TASK_NOT_FOUND, f"Task {task_id!r} not found")
        rows = await self._writer.call(store.list_a2a_push_configs, task_id, caller.account_id)
        if method == "tasks/pushNotificationConfig/list":
            return [_wire_config(r) for r in rows]
        config_id = params.get("pushNotificationConfigId")
        if method == "tasks/pushNotificationConfig/delete":
            if not isinstance(config_id, str) or not config_id:
                raise wire.RpcError(wire.INVALID_PARAMS, "params.pushNotificationConfigId "
                                    "is required")
            await self._writer.call(store.delete_a2a_push_config, task_id, caller.account_id,
                                    config_id)
            return None
        for r in rows:      # get: the named config, else the task's first
            if config_id in (None, "", r["id"]):
                return _wire_config(r)
        raise wire.RpcError(wire.TASK_NOT_FOUND, f"Task {task_id!r} has no push notification "
                            f"config {config_id!r}" if config_id else
                            f"Task {task_id!r} has no push notification config")

    async def run(self, task_status=trio.TASK_STATUS_IGNORED) -> None:
        """Own the delivery tasks: one per task with updates to post, so a slow webhook
        never holds the task back and its updates still arrive in order."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started()
            await trio.sleep_forever()

    async def notify(self, account_id: str, task: dict[str, Any], event: dict[str, Any]) -> None:
        """Queue one update of `task` for each of its webhooks (best effort: a task whose
        queue is full loses the update, logged). Without the delivery service running
        (tests of the parts), delivery happens here and now."""
        rows = await self._writer.call(store.list_a2a_push_configs, task["id"], account_id)
        if not rows:
            return
        from gateway.a2a import v1   # the 1.0 SDK (protobuf): loaded on first use
        posts = [(row, json.dumps(task if row["protocol"] != v1.PROTOCOL_VERSION
                                  else v1.stream_event(event)).encode()) for row in rows]
        final = task["status"]["state"] in wire.FINAL
        if self._nursery is None:
            await self._post(posts)
            return
        queue = self._queues.get(task["id"])
        if queue is None:
            queue, pending = trio.open_memory_channel[list[tuple[dict[str, Any], bytes]]](
                _QUEUED_UPDATES)
            self._queues[task["id"]] = queue
            self._nursery.start_soon(self._deliver_all, pending)
        try:
            queue.send_nowait(posts)
        except trio.WouldBlock:
            log.warning("push for task %s: %d updates queued already, one dropped",
                        task["id"], _QUEUED_UPDATES)
        if final:
            self._queues.pop(task["id"], None)
            queue.close()

    async def _deliver_all(self, pending: trio.MemoryReceiveChannel) -> None:
        async with pending:
            async for posts in pending:
                await self._post(posts)

    async def _post(self, posts: list[tuple[dict[str, Any], bytes]]) -> None:
        for row, body in posts:
            await self._sender.deliver(row, body)
