"""The Responses API's hosted `mcp` tool, executed by Prism for any upstream model.

A request's `{"type": "mcp", "server_label", "server_url"?, "allowed_tools"?,
"require_approval": "never"}` tools name servers configured in `[[mcp_servers]]` (by id
or prefix, or by their URL). They are replaced by function tools (the servers' tools,
`<prefix>__<name>`, narrowed by `allowed_tools` and the caller's plan); when the model
calls one, Prism runs it through the hub (audited, priced, allow-listed) and asks the
model again with the result, up to MAX_ROUNDS times. The Response then carries an
`mcp_list_tools` item per server and an `mcp_call` item per call before the answer, as
OpenAI's hosted tool does. Each model turn is its own chat call, billed as such.
"""
from __future__ import annotations

import dataclasses
import json
import uuid
from typing import Any, Awaitable, Callable

from gateway import canonical as c
from gateway import errors
from gateway.mcp.hub import SEP, Caller, McpHub

MAX_ROUNDS = 8


@dataclasses.dataclass
class Hosted:
    """The hosted MCP tools of one request, resolved against the hub."""
    hub: McpHub
    caller: Caller
    servers: dict[str, list[Any]]           # server_label -> its (allowed) MCP tools
    names: dict[str, str]                   # public tool name -> server_label
    items: list[dict[str, Any]] = dataclasses.field(default_factory=list)


def _server_for(hub: McpHub, spec: dict[str, Any], where: str):
    label, url = spec.get("server_label"), spec.get("server_url")
    for up in hub.upstreams.values():
        if label in (up.cfg.id, up.cfg.tool_prefix) or (url and url == up.cfg.url):
            return up
    raise errors.InvalidRequest(f"{where}: no MCP server {label or url!r} is configured on this "
                                "gateway (GET /-/mcp/status lists them)", field=where)


def split_hosted(body: dict[str, Any], hub: McpHub, caller: Caller) -> Hosted | None:
    """Take the `mcp` tools out of `body["tools"]` (in place), adding function tools for
    them; None when the request has none."""
    tools = body.get("tools")
    if not isinstance(tools, list) or not any(isinstance(t, dict) and t.get("type") == "mcp"
                                              for t in tools):
        return None
    if body.get("stream"):
        raise errors.InvalidRequest("tools of type 'mcp' run inside the gateway and are "
                                    "supported without stream only", field="stream")
    visible = {t.name: t for t in hub.tools(caller)}
    hosted = Hosted(hub, caller, {}, {})
    kept: list[Any] = []
    for i, spec in enumerate(tools):
        if not (isinstance(spec, dict) and spec.get("type") == "mcp"):
            kept.append(spec)
            continue
        where = f"tools[{i}]"
        if spec.get("require_approval", "never") != "never":
            raise errors.InvalidRequest(f"{where}.require_approval: only 'never' is supported "
                                        "(the gateway runs the calls itself)",
                                        field=f"{where}.require_approval")
        up = _server_for(hub, spec, where)
        allowed = spec.get("allowed_tools")
        if isinstance(allowed, dict):
            allowed = allowed.get("tool_names")
        label = str(spec.get("server_label") or up.cfg.id)
        mine = [t for name, t in visible.items()
                if name.startswith(up.cfg.tool_prefix + SEP)
                and (not allowed or name.partition(SEP)[2] in allowed or name in allowed)]
        hosted.servers[label] = mine
        for t in mine:
            hosted.names[t.name] = label
            kept.append({"type": "function", "name": t.name, "description": t.description or "",
                         "parameters": t.input_schema})
        hosted.items.append({"type": "mcp_list_tools", "id": "mcpl_" + uuid.uuid4().hex,
                             "server_label": label, "tools": [
                                 {"name": t.name, "description": t.description,
                                  "input_schema": t.input_schema} for t in mine]})
    body["tools"] = kept
    return hosted


Complete = Callable[[Any, c.Request], Awaitable[tuple[c.Response, Any]]]


async def run(hosted: Hosted, complete: Complete, ctx: Any,
              req: c.Request) -> tuple[c.Response, Any]:
    """Model turns until it answers without calling a hosted tool. Function calls the
    client declared itself are returned to it as usual."""
    messages = list(req.messages)
    total = 0
    for n in range(MAX_ROUNDS + 1):
        turn_ctx = ctx if n == 0 else dataclasses.replace(ctx, request_id=f"{ctx.request_id}_{n}")
        resp, outcome = await complete(turn_ctx, dataclasses.replace(req, messages=tuple(messages)))
        total += outcome.cost_micros
        calls = resp.message.tool_calls
        if not calls or any(call.name not in hosted.names for call in calls) or n == MAX_ROUNDS:
            return resp, dataclasses.replace(outcome, cost_micros=total)
        messages.append(resp.message)
        for call in calls:
            item = {"type": "mcp_call", "id": "mcp_" + uuid.uuid4().hex,
                    "server_label": hosted.names[call.name], "name": call.name,
                    "arguments": call.arguments, "output": None, "error": None}
            try:
                args = json.loads(call.arguments or "{}")
                result = await hosted.hub.call_tool(call.name, args if isinstance(args, dict)
                                                    else {}, hosted.caller)
                text = "\n".join(getattr(p, "text", "") for p in result.content)
                item["output" if not result.is_error else "error"] = text
            except (json.JSONDecodeError, errors.PrismError) as exc:
                text = item["error"] = getattr(exc, "message", "invalid tool arguments")
            hosted.items.append(item)
            messages.append(c.Message("tool", (c.ToolResultPart(call.id, (c.TextPart(text),),
                                                                item["error"] is not None),)))
    raise AssertionError("unreachable")
