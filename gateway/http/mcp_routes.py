"""MCP over HTTP: the `/mcp` mount for customers and the operator's `/-/mcp/*` routes.

`/mcp` is served by the `mcp` SDK's own Streamable HTTP transport (gateway.mcp.frontend),
mounted in front of the Quart app at the ASGI level because the SDK owns the whole
exchange (SSE answers, the GET stream, session headers). The admin routes are ordinary
JSON routes behind the admin token: servers and their state, the merged catalogue, and
a test call of one tool.
"""
from __future__ import annotations

from typing import Any, Callable

from quart import Blueprint

from gateway import errors
from gateway.http import admin, common
from gateway.mcp.hub import ADMIN

bp = Blueprint("mcp_admin", __name__, url_prefix="/-/mcp")
bp.before_request(admin._guard)
MOUNT = "/mcp"


def mount(app_asgi: Callable, frontend: Any) -> Callable:
    """An ASGI app that sends `/mcp` (HTTP only) to the MCP frontend and the rest on."""
    async def asgi(scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] == "http" and scope.get("path", "").rstrip("/") == MOUNT:
            await frontend.asgi(scope, receive, send)
        else:
            await app_asgi(scope, receive, send)
    return asgi


def _hub():
    return common.services().mcp.hub


def _dump(items: list[Any]) -> list[dict]:
    return [i.model_dump(mode="json", by_alias=True, exclude_none=True) for i in items]


@bp.get("/status")
async def status() -> dict:
    servers = _hub().status()
    return {"servers": servers,
            "tools": sum(s["tools"] for s in servers),
            "calls": sum(s["calls"] for s in servers),
            "errors": sum(s["errors"] for s in servers)}


@bp.get("/tools")
async def tools() -> dict:
    return {"data": _dump(_hub().tools(ADMIN))}


@bp.get("/resources")
async def resources() -> dict:
    return {"data": _dump(_hub().resources())}


@bp.get("/prompts")
async def prompts() -> dict:
    return {"data": _dump(_hub().prompts())}


@bp.post("/test")
async def test_call() -> dict:
    body = await common.read_json_object()
    tool = body.get("tool")
    arguments = body.get("arguments", {})
    if not isinstance(tool, str) or not tool:
        raise errors.InvalidRequest("tool is required: a tool name as listed by /-/mcp/tools",
                                    field="tool")
    if not isinstance(arguments, dict):
        raise errors.InvalidRequest("arguments must be a JSON object", field="arguments")
    result = await _hub().call_tool(tool, arguments, ADMIN)
    return result.model_dump(mode="json", by_alias=True, exclude_none=True)
