"""Prism as an MCP server: Streamable HTTP at /mcp, built on the official `mcp` SDK.

The SDK's session manager speaks the transport (JSON-RPC over POST answered as JSON or
SSE, the GET stream, `Mcp-Session-Id`, protocol version negotiation); this module gives
it handlers that answer from the hub, and an ASGI entry that authenticates the caller
first. The caller (key, account, allow list) rides in the ASGI scope, which the SDK
hands to each handler as `ctx.request`; a session is bound to the credential that
opened it (the SDK answers 404 to any other).

When the hub's catalogue changes (an upstream died or came back), every session that
has listed tools gets `notifications/tools/list_changed` on its standalone stream.
"""
from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any, Awaitable, Callable

import trio

from gateway import errors
from gateway.mcp.hub import Caller, McpHub

if TYPE_CHECKING:
    import mcp_types as types
    from mcp.server.lowlevel.server import Server
    from mcp.shared.exceptions import MCPError

log = logging.getLogger("prism.mcp")
SCOPE_KEY = "prism.caller"
MAX_TRACKED_SESSIONS = 10_000
Authenticate = Callable[[str | None], Awaitable[Caller]]

# JSON-RPC codes for our refusals: -32602 (invalid params) for a name that does not
# exist, and the implementation-defined server-error range for the rest.
_CODES = {404: -32602, 403: -32003, 402: -32004, 401: -32001}


def _mcp_error(err: errors.PrismError) -> MCPError:
    from mcp.shared.exceptions import MCPError
    return MCPError(_CODES.get(err.status, -32000), str(err),
                    {"type": err.type_name, "status": err.status})


async def _answer(call: Awaitable[Any]) -> Any:
    """The hub's answer, or our refusal as the JSON-RPC error the client reads."""
    try:
        return await call
    except errors.PrismError as err:
        raise _mcp_error(err) from None


def _caller(ctx: Any) -> Caller:
    request = ctx.request
    caller = None if request is None else request.scope.get(SCOPE_KEY)
    if caller is None:     # every request passes McpFrontend.asgi first; never expected
        from mcp.shared.exceptions import MCPError
        raise MCPError(-32001, "Not authenticated")
    return caller


class McpFrontend:
    """The SDK (~23 MB resident) is imported, and its server and session manager built
    and started, on the first request to /mcp: a gateway nobody asks for MCP never
    pays for it."""

    def __init__(self, hub: McpHub, authenticate: Authenticate) -> None:
        self.hub = hub
        self._authenticate = authenticate
        self._listeners: dict[int, Any] = {}
        self.server: Any = None
        self.manager: Any = None
        self._nursery: trio.Nursery | None = None
        self._starting = trio.Lock()

    def _build_server(self) -> Server:
        import mcp_types as types
        from mcp.server.lowlevel.server import Server
        hub = self.hub

        async def list_tools(ctx, params) -> types.ListToolsResult:
            if len(self._listeners) < MAX_TRACKED_SESSIONS:
                self._listeners[id(ctx.session._connection)] = ctx.session
            return types.ListToolsResult(tools=hub.tools(_caller(ctx)))

        async def call_tool(ctx, params: types.CallToolRequestParams) -> types.CallToolResult:
            return await _answer(hub.call_tool(params.name, params.arguments, _caller(ctx)))

        async def list_resources(ctx, params) -> types.ListResourcesResult:
            _caller(ctx)
            return types.ListResourcesResult(resources=hub.resources())

        async def read_resource(ctx, params: types.ReadResourceRequestParams):
            _caller(ctx)
            return await _answer(hub.read_resource(str(params.uri)))

        async def list_prompts(ctx, params) -> types.ListPromptsResult:
            _caller(ctx)
            return types.ListPromptsResult(prompts=hub.prompts())

        async def get_prompt(ctx, params: types.GetPromptRequestParams):
            _caller(ctx)
            return await _answer(hub.get_prompt(params.name, params.arguments))

        server = Server("prism", version="1", instructions=(
            "Tools, resources and prompts of the MCP servers this Prism gateway fronts; "
            "tool and prompt names are <server>__<name>."),
            on_list_tools=list_tools, on_call_tool=call_tool,
            on_list_resources=list_resources, on_read_resource=read_resource,
            on_list_prompts=list_prompts, on_get_prompt=get_prompt)
        return server

    async def run(self, task_status=trio.TASK_STATUS_IGNORED) -> None:
        """The list_changed notifier, and (from the first /mcp request) the session
        manager's task group, for the gateway's lifetime."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            nursery.start_soon(self._notify_changes)
            task_status.started()

    async def _started_manager(self) -> Any:
        async with self._starting:
            if self.manager is None:
                if self._nursery is None:
                    raise errors.UpstreamError("The MCP endpoint is not running")
                await self._nursery.start(self._run_manager)
        return self.manager

    async def _run_manager(self, task_status=trio.TASK_STATUS_IGNORED) -> None:
        from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
        server = self._build_server()
        manager = StreamableHTTPSessionManager(server, session_idle_timeout=1800)
        async with manager.run():
            self.server, self.manager = server, manager
            task_status.started()
            await trio.sleep_forever()

    async def _notify_changes(self) -> None:
        while True:
            await self.hub.wait_changed()
            for key, session in list(self._listeners.items()):
                try:
                    with trio.move_on_after(5):
                        await session.send_tool_list_changed()
                except Exception:   # the session ended: stop telling it
                    self._listeners.pop(key, None)

    async def asgi(self, scope: dict, receive: Callable, send: Callable) -> None:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1")
                   for k, v in scope.get("headers", ())}
        auth = headers.get("authorization", "")
        token = auth[7:].strip() if auth[:7].lower() == "bearer " else None
        try:
            caller = await self._authenticate(token)
            manager = await self._started_manager()
        except errors.PrismError as err:
            await _reject(send, err)
            return
        from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
        from mcp.server.auth.provider import AccessToken
        scope = dict(scope)
        scope[SCOPE_KEY] = caller
        # The SDK binds a session to the credential that opened it.
        scope["user"] = AuthenticatedUser(AccessToken(token=f"prism:{caller.key_id}",
                                                      client_id=caller.key_id, scopes=[]))
        await manager.handle_request(scope, receive, send)


async def _reject(send: Callable, err: errors.PrismError) -> None:
    body = json.dumps({"jsonrpc": "2.0", "id": None,
                       "error": {"code": _CODES.get(err.status, -32000), "message": str(err),
                                 "data": {"type": err.type_name}}}).encode()
    headers = [(b"content-type", b"application/json"),
               (b"content-length", str(len(body)).encode())]
    if err.status == 401:
        headers.append((b"www-authenticate", b'Bearer realm="prism"'))
    await send({"type": "http.response.start", "status": err.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
