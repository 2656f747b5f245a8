"""One upstream MCP server, kept connected by a supervisor task.

The supervisor connects with the official `mcp` client (stdio: a child process; http:
Streamable HTTP), reads the server's tools, resources and prompts, then re-reads them every
`ping_interval` seconds. When the connection fails (the process died, the ping or a call
broke the transport) the server's catalogue is emptied at once, so its tools leave
`tools/list` while it is down, and it is reconnected after a backoff that doubles up
to `backoff_max`. Each change of catalogue calls `on_change` (the hub turns it into
`notifications/tools/list_changed`).
"""
from __future__ import annotations

import logging
import os
import re
import sys
import time
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

import trio

if TYPE_CHECKING:   # the SDK (~30 MB resident with its types) loads on first connect
    import mcp_types as types
    from mcp import Client

from gateway import errors
from gateway.config_protocols import McpServerConfig

log = logging.getLogger("prism.mcp")
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def expand_env(value: str, environ: dict[str, str] | os._Environ = os.environ) -> str:
    """`${NAME}` -> the environment's value (empty when unset), so secrets stay out of the file."""
    return _VAR.sub(lambda m: environ.get(m.group(1), ""), value)


def _broken_errors() -> tuple[type[BaseException], ...]:
    """What a broken transport raises; httpx2's errors only once an HTTP transport
    has loaded it (a stdio upstream never does)."""
    base = (OSError, trio.BrokenResourceError, trio.ClosedResourceError, ExceptionGroup)
    httpx2 = sys.modules.get("httpx2")
    return base + (httpx2.HTTPError,) if httpx2 is not None else base


@dataclass
class Stats:
    calls: int = 0
    errors: int = 0
    restarts: int = 0
    last_error: str = ""
    up_since: float | None = None


@dataclass
class Catalogue:
    tools: list[types.Tool] = field(default_factory=list)
    resources: list[types.Resource] = field(default_factory=list)
    prompts: list[types.Prompt] = field(default_factory=list)


class Upstream:
    def __init__(self, cfg: McpServerConfig, on_change: Callable[[], None]) -> None:
        self.cfg = cfg
        self.state = "starting"          # starting | up | down
        self.stats = Stats()
        self.catalogue = Catalogue()
        self._on_change = on_change
        self._client: Client | None = None
        self._broken = trio.Event()

    # ------------------------------------------------------------ supervision

    def _transport(self, stack: AsyncExitStack) -> Any:
        from mcp import StdioServerParameters
        from mcp.client.streamable_http import streamable_http_client
        cfg = self.cfg
        if cfg.transport == "stdio":
            return StdioServerParameters(
                command=cfg.command, args=list(cfg.args),
                env={k: expand_env(v) for k, v in cfg.env.items()} or None,
                cwd=cfg.cwd or None)
        import httpx2   # the SDK's HTTP client: loaded only for an HTTP upstream
        headers = {k: expand_env(v) for k, v in cfg.headers.items()}
        http = httpx2.AsyncClient(headers=headers,
                                  timeout=httpx2.Timeout(cfg.timeout, read=cfg.timeout + 300))
        stack.push_async_callback(http.aclose)
        return streamable_http_client(cfg.url, http_client=http)

    async def run(self, task_status=trio.TASK_STATUS_IGNORED) -> None:
        from mcp import Client
        task_status.started()
        delay = self.cfg.backoff_initial
        while True:
            try:
                async with AsyncExitStack() as stack:
                    # No fail_after around entering the client: it opens a task group,
                    # which must not outlive a cancel scope entered before it. Its
                    # read timeout bounds the handshake instead.
                    client = await stack.enter_async_context(
                        Client(self._transport(stack), cache=None,
                               read_timeout_seconds=self.cfg.timeout))
                    with trio.fail_after(self.cfg.timeout):
                        catalogue = await self._load(client)
                    self._up(client, catalogue)
                    delay = self.cfg.backoff_initial
                    await self._watch(client)
            except (Exception, trio.TooSlowError) as exc:
                self.stats.last_error = _describe(exc)
                log.warning("MCP server %s failed: %s", self.cfg.id, self.stats.last_error)
            finally:
                self._down()
            await trio.sleep(delay)
            delay = min(delay * 2, self.cfg.backoff_max)
            self.stats.restarts += 1

    async def _load(self, client: Client) -> Catalogue:
        caps = client.server_capabilities
        cat = Catalogue()
        if caps.tools is not None:
            cat.tools = await _all_pages(client.list_tools, "tools")
        if caps.resources is not None:
            cat.resources = await _all_pages(client.list_resources, "resources")
        if caps.prompts is not None:
            cat.prompts = await _all_pages(client.list_prompts, "prompts")
        return cat

    def _up(self, client: Client, catalogue: Catalogue) -> None:
        self._client, self.catalogue, self.state = client, catalogue, "up"
        self._broken = trio.Event()
        self.stats.up_since = time.time()
        log.info("MCP server %s up: %d tools", self.cfg.id, len(catalogue.tools))
        self._on_change()

    def _down(self) -> None:
        was_up = self.state == "up"
        self._client, self.catalogue, self.state = None, Catalogue(), "down"
        self.stats.up_since = None
        if was_up:
            self._on_change()

    async def _watch(self, client: Client) -> None:
        """Return (to reconnect) once a ping fails or a call saw the transport break."""
        while True:
            with trio.move_on_after(self.cfg.ping_interval):
                await self._broken.wait()
                return
            # A catalogue refresh doubles as the liveness probe: `ping` is gone from the
            # 2026 protocol, and a server's tools may change while it runs.
            with trio.fail_after(self.cfg.timeout):
                catalogue = await self._load(client)
            if catalogue != self.catalogue:
                self.catalogue = catalogue
                self._on_change()

    # ------------------------------------------------------------ calls

    def _live(self) -> Client:
        if self._client is None:
            raise errors.UpstreamError(f"MCP server {self.cfg.id!r} is not available")
        return self._client

    async def _guarded(self, op: Callable[[Client], Any]) -> Any:
        client = self._live()
        try:
            with trio.fail_after(self.cfg.timeout):
                return await op(client)
        except trio.TooSlowError:
            raise errors.UpstreamError(
                f"MCP server {self.cfg.id!r} did not answer within {self.cfg.timeout:g}s") from None
        except _broken_errors() as exc:
            # The transport broke under us: reconnect rather than wait for the next ping.
            self._broken.set()
            raise errors.UpstreamError(f"MCP server {self.cfg.id!r} failed: "
                                       f"{type(exc).__name__}") from None

    async def call_tool(self, name: str, arguments: dict[str, Any] | None) -> types.CallToolResult:
        self.stats.calls += 1
        try:
            result = await self._guarded(lambda c: c.call_tool(name, arguments))
        except Exception:
            self.stats.errors += 1
            raise
        if result.is_error:
            self.stats.errors += 1
        return result

    async def read_resource(self, uri: str) -> types.ReadResourceResult:
        return await self._guarded(lambda c: c.read_resource(uri))

    async def get_prompt(self, name: str, arguments: dict[str, str] | None) -> types.GetPromptResult:
        return await self._guarded(lambda c: c.get_prompt(name, arguments))


async def _all_pages(fetch: Callable[..., Any], attr: str) -> list[Any]:
    items: list[Any] = []
    cursor = None
    for _ in range(100):          # a paginator that never ends must not hang start-up
        page = await fetch(cursor=cursor)
        items.extend(getattr(page, attr))
        cursor = page.next_cursor
        if not cursor:
            break
    return items


def _describe(exc: BaseException) -> str:
    """The innermost cause, not 'Exceptions from Trio nursery (1 sub-exception)'."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return f"{type(exc).__name__}: {exc}"[:300]
