"""The MCP gateway: upstream MCP servers (upstream.py) merged by the hub (hub.py) and
served to customers over Streamable HTTP (frontend.py).

`McpService` is the one object the server builds: `run` is its long-lived task (the
upstream supervisors, the SDK's session manager, the change notifier) and `frontend`
the ASGI entry for /mcp.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Awaitable, Callable

import trio

from gateway.config_protocols import McpServerConfig
from gateway.mcp.frontend import McpFrontend
from gateway.mcp.hub import Caller, McpHub


@dataclass
class McpService:
    hub: McpHub
    frontend: McpFrontend
    # Bearer token -> Caller (key, account, the plan's allow list); A2A uses it too.
    authenticate: Callable[[str | None], Awaitable[Caller]]

    async def run(self, task_status=trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(self.frontend.run)
            await nursery.start(self.hub.run)
            task_status.started()


def build_mcp(configs: tuple[McpServerConfig, ...], *, pipeline: Any,
              audit: Callable[[str, str, dict[str, Any]], Awaitable[None]],
              authenticate: Callable[[str | None], Awaitable[Caller]]) -> McpService:
    hub = McpHub(configs, pipeline=pipeline, audit=audit)
    return McpService(hub, McpFrontend(hub, authenticate), authenticate)
