"""This process's membership of the cluster: heartbeats, and the changes every process
must apply within a second.

Each gateway process writes a heartbeat row (store.cluster) every `beat_s` seconds
with what it is doing, and polls the store's event feed every `poll_s` seconds. The
store itself appends the events that matter to everyone in the same transaction as
the change (a key revoked, provider flags set), so a change made through any door
(HTTP admin, the dashboard, `prism keys revoke`) reaches every process; a config
reload, which happens in one process's memory, is announced by that process.
"""
from __future__ import annotations

import logging
import os
import secrets
import socket
import time
from typing import Any, Awaitable, Callable

import trio

import store.cluster as cluster

log = logging.getLogger("prism.cluster")

Handler = Callable[[str, str, dict[str, Any]], Awaitable[None]]


def new_node_id() -> str:
    return f"node_{socket.gethostname()}_{os.getpid()}_{secrets.token_hex(3)}"


class Cluster:
    def __init__(self, writer: Any, on_event: Handler, *, node_id: str | None = None,
                 info: Callable[[], dict[str, Any]] = dict, beat_s: float = 2.0,
                 poll_s: float = 0.2, stale_s: float = 10.0) -> None:
        self.node_id = node_id or new_node_id()
        self.stale_s = stale_s
        self._writer = writer
        self._on_event = on_event
        self._info = info
        self._beat_s = beat_s
        self._poll_s = poll_s
        self._started = time.time()
        self._last_event = 0

    async def join(self) -> None:
        """Register (before the start-up sweep looks for other live processes) and
        skip the events that predate this process: its state is read fresh anyway."""
        self._last_event = await self._writer.call(cluster.last_event_id)
        await self._beat()

    async def _beat(self) -> None:
        await self._writer.call(cluster.heartbeat, self.node_id, socket.gethostname(),
                                os.getpid(), self._started, self._info())

    async def run(self, task_status=trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._beat_forever)
            task_status.started()
            await self._poll_forever()

    async def _beat_forever(self) -> None:
        while True:
            await trio.sleep(self._beat_s)
            try:
                await self._beat()
                await self._writer.call(cluster.prune, time.time())
            except Exception:   # a missed beat is retried at the next one
                log.exception("cluster heartbeat failed")

    async def _poll_forever(self) -> None:
        while True:
            await trio.sleep(self._poll_s)
            try:
                events = await self._writer.call(cluster.events_after, self._last_event)
            except Exception:
                log.exception("reading the cluster's events failed")
                continue
            for event_id, origin, kind, payload in events:
                self._last_event = event_id
                try:
                    await self._on_event(origin, kind, payload)
                except Exception:   # one bad event must not stop the feed
                    log.exception("applying cluster event %s (%s) failed", event_id, kind)

    async def publish(self, kind: str, payload: dict[str, Any]) -> None:
        await self._writer.call(cluster.publish, kind, payload, origin=self.node_id)

    async def nodes(self) -> list[dict[str, Any]]:
        return await self._writer.call(cluster.live_nodes, self.stale_s)

    async def leave(self) -> None:
        with trio.CancelScope(shield=True):
            await self._writer.call(cluster.leave, self.node_id)
