"""The MCP hub: every configured upstream server behind one namespaced catalogue.

Tools and prompts are published as `<prefix>__<name>`; resources keep their URIs and are
routed back to the server that listed them. A caller sees only the tools its plan's
`mcp_tools` allow list lets through (names or fnmatch patterns such as `files__*`), and
a call outside it is refused before anything reaches the upstream. Every call is audited
(who, which tool, how long, what outcome). Each customer call is one engine operation
(gateway.engine.pipeline.Pipeline.metered): the key's and account's rate limits, the
plan's windows and the wallet admit it, and the engine's close settles the server's
`price_usd` (nothing, for a free server) once the upstream answered, voids it when the
upstream never did, and writes the request-log row and the dashboard event.
"""
from __future__ import annotations

import fnmatch
import logging
import secrets
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Awaitable, Callable

import trio

from gateway import errors
from gateway.billing.pricing import usd_to_micros
from gateway.config_protocols import McpServerConfig
from gateway.engine.call import CallContext, Target
from gateway.engine.operations import Operation, Pricing
from gateway.mcp.upstream import Upstream

if TYPE_CHECKING:   # the SDK's types (~7 MB with pydantic) load with the SDK
    import mcp_types as types

log = logging.getLogger("prism.mcp")
SEP = "__"


@dataclass(frozen=True)
class Caller:
    """Who is calling: the key, its account, and the plan's allow list (None = all)."""
    key_id: str
    account_id: str
    allowed: tuple[str, ...] | None = None

    def may_use(self, public_name: str) -> bool:
        return self.allowed is None or any(fnmatch.fnmatchcase(public_name, p)
                                           for p in self.allowed)


ADMIN = Caller("admin", "", None)
Audit = Callable[[str, str, dict[str, Any]], Awaitable[None]]


def call_context(caller: Caller, route: str, dialect: str, prefix: str) -> CallContext:
    """The engine's context for one customer call made through MCP or A2A."""
    return CallContext(request_id=prefix + secrets.token_hex(12), route=route, dialect=dialect,
                       account_id=caller.account_id, key_id=caller.key_id)


def priced_call(kind: str, price_usd: float, noun: str) -> Operation:
    """A call with one fixed price of its own (a server's or an agent's `price_usd`,
    possibly 0): held before, settled in full once the far side answered."""
    price = usd_to_micros(price_usd)
    return Operation(kind=kind, capability=kind, pricing=Pricing.micros(),  # type: ignore[arg-type]
                     hold_units=lambda req: price, units_of=lambda res: price, noun=noun)


class McpHub:
    def __init__(self, configs: tuple[McpServerConfig, ...], *, pipeline: Any = None,
                 audit: Audit | None = None) -> None:
        self.upstreams = {c.id: Upstream(c, self._changed) for c in configs if c.enabled}
        self._ops = {c.id: priced_call("mcp", c.price_usd, "MCP tool call") for c in configs}
        self._pipeline = pipeline      # gateway.engine.pipeline.Pipeline (None: no billing)
        self._audit = audit
        self._changed_event = trio.Event()
        self.generation = 0

    async def run(self, task_status=trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            for up in self.upstreams.values():
                await nursery.start(up.run)
            task_status.started()

    # ------------------------------------------------------------ change feed

    def _changed(self) -> None:
        self.generation += 1
        event, self._changed_event = self._changed_event, trio.Event()
        event.set()

    async def wait_changed(self) -> None:
        await self._changed_event.wait()

    # ------------------------------------------------------------ catalogue

    def _public(self, up: Upstream, name: str) -> str:
        return f"{up.cfg.tool_prefix}{SEP}{name}"

    def _resolve(self, public_name: str) -> tuple[Upstream, str]:
        prefix, sep, name = public_name.partition(SEP)
        if sep:
            for up in self.upstreams.values():
                if up.cfg.tool_prefix == prefix:
                    return up, name
        raise errors.NotFound(f"Unknown MCP name {public_name!r}")

    def tools(self, caller: Caller) -> list[types.Tool]:
        out = []
        for up in self.upstreams.values():
            for tool in up.catalogue.tools:
                public = self._public(up, tool.name)
                if caller.may_use(public):
                    out.append(tool.model_copy(update={"name": public}))
        return out

    def prompts(self) -> list[types.Prompt]:
        return [p.model_copy(update={"name": self._public(up, p.name)})
                for up in self.upstreams.values() for p in up.catalogue.prompts]

    def resources(self) -> list[types.Resource]:
        return [r for up in self.upstreams.values() for r in up.catalogue.resources]

    def status(self) -> list[dict[str, Any]]:
        return [{"id": up.cfg.id, "transport": up.cfg.transport, "state": up.state,
                 "prefix": up.cfg.tool_prefix, "tools": len(up.catalogue.tools),
                 "resources": len(up.catalogue.resources), "prompts": len(up.catalogue.prompts),
                 "calls": up.stats.calls, "errors": up.stats.errors,
                 "restarts": up.stats.restarts, "last_error": up.stats.last_error or None,
                 "up_since": up.stats.up_since}
                for up in self.upstreams.values()]

    # ------------------------------------------------------------ operations

    async def call_tool(self, public_name: str, arguments: dict[str, Any] | None,
                        caller: Caller) -> types.CallToolResult:
        if not caller.may_use(public_name):
            raise errors.PermissionDenied(
                f"Tool {public_name!r} is not in this key's MCP allow list")
        up, name = self._resolve(public_name)
        if not any(t.name == name for t in up.catalogue.tools):
            raise errors.NotFound(f"Unknown MCP tool {public_name!r}"
                                  + ("" if up.state == "up" else f" (server {up.cfg.id!r} is down)"))
        started = time.monotonic()
        outcome, cost, result, request_id = "error", 0, None, ""
        try:
            if caller is ADMIN or self._pipeline is None:
                result = await up.call_tool(name, arguments)
            else:
                ctx = call_context(caller, "/mcp", "mcp", "mcp_")
                request_id = ctx.request_id
                result, billed = await self._pipeline.metered(
                    ctx, self._ops[up.cfg.id], public_name,
                    target=Target(public_name, up.cfg.id),
                    call=lambda: up.call_tool(name, arguments))
                cost = billed.cost_micros
            outcome = "tool_error" if result.is_error else "ok"
            return result
        except errors.ClientError as err:
            outcome = err.type_name        # refused by admission: never reached the upstream
            raise
        finally:
            if self._audit is not None:
                with trio.CancelScope(shield=True), trio.move_on_after(10):
                    await self._audit(caller.key_id, "mcp.call", {
                        "tool": public_name, "server": up.cfg.id, "account": caller.account_id,
                        "request_id": request_id,
                        "duration_ms": round((time.monotonic() - started) * 1000, 1),
                        "outcome": outcome, "cost_micros": cost})

    async def read_resource(self, uri: str) -> types.ReadResourceResult:
        for up in self.upstreams.values():
            if any(str(r.uri) == uri for r in up.catalogue.resources):
                return await up.read_resource(uri)
        raise errors.NotFound(f"Unknown MCP resource {uri!r}")

    async def get_prompt(self, public_name: str,
                         arguments: dict[str, str] | None) -> types.GetPromptResult:
        up, name = self._resolve(public_name)
        if not any(p.name == name for p in up.catalogue.prompts):
            raise errors.NotFound(f"Unknown MCP prompt {public_name!r}")
        return await up.get_prompt(name, arguments)
