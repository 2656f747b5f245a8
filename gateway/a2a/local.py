"""A local A2A agent: a model, its instructions and a set of MCP tools, run through the
engine like any chat call (each model turn is admitted, dispatched and settled there, so
an agent's task is billed exactly like the chat calls it makes).

The tool loop: ask the model with the agent's MCP tools; execute every tool call it
makes through the MCP hub (under the caller's own allow list, audited and priced like a
direct MCP call); hand the results back; stop when the model answers in text or after
`max_tool_rounds` rounds.
"""
from __future__ import annotations

import fnmatch
import json
from typing import Any, Awaitable, Callable

from gateway import canonical as c
from gateway import errors
from gateway.config_protocols import AgentConfig
from gateway.mcp.hub import Caller, McpHub

# (caller, request) -> (response, cost in micro-USD): one admitted, settled chat call.
Chat = Callable[[Caller, c.Request], Awaitable[tuple[c.Response, int]]]


def agent_tools(agent: AgentConfig, hub: McpHub | None, caller: Caller) -> tuple[c.Tool, ...]:
    if hub is None or not agent.mcp_tools:
        return ()
    return tuple(c.Tool(t.name, t.description, dict(t.input_schema))
                 for t in hub.tools(caller)
                 if any(fnmatch.fnmatchcase(t.name, p) for p in agent.mcp_tools))


async def _tool_result(hub: McpHub, call: c.ToolCallPart, caller: Caller) -> c.Message:
    try:
        arguments = json.loads(call.arguments or "{}")
        result = await hub.call_tool(call.name, arguments if isinstance(arguments, dict) else {},
                                     caller)
        text = "\n".join(getattr(p, "text", "") for p in result.content) or "(no output)"
        is_error = bool(result.is_error)
    except json.JSONDecodeError:
        text, is_error = "the tool arguments were not valid JSON", True
    except errors.ClientError as err:      # refused or unknown: the model may try otherwise
        text, is_error = err.message, True
    return c.Message("tool", (c.ToolResultPart(call.id, (c.TextPart(text),), is_error),))


def turns_of(history: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """A task's history as (role, text) turns: "user" and "assistant" (the agent's)."""
    out = []
    for message in history:
        text = "\n".join(p.get("text", "") for p in message.get("parts", ())
                         if isinstance(p, dict) and p.get("kind") == "text")
        if text:
            out.append(("assistant" if message.get("role") == "agent" else "user", text))
    return out


async def run_local(agent: AgentConfig, turns: list[tuple[str, str]], caller: Caller, *,
                    chat: Chat, hub: McpHub | None) -> tuple[str, int]:
    """The agent's answer to a conversation whose last turn is the user's, and what
    it cost."""
    messages: list[c.Message] = []
    if agent.instructions:
        messages.append(c.Message("system", (c.TextPart(agent.instructions),)))
    messages += [c.Message(role, (c.TextPart(text),)) for role, text in turns]
    tools = agent_tools(agent, hub, caller)
    cost = 0
    for round_no in range(agent.max_tool_rounds + 1):
        last = round_no == agent.max_tool_rounds
        req = c.Request(model=agent.model, messages=tuple(messages),
                        tools=() if last else tools)
        resp, spent = await chat(caller, req)
        cost += spent
        calls = resp.message.tool_calls
        if not calls or hub is None:
            return resp.message.text, cost
        messages.append(resp.message)
        for call in calls:
            messages.append(await _tool_result(hub, call, caller))
    raise AssertionError("unreachable: the last round offers no tools")


def skills_of(agent: AgentConfig) -> list[dict[str, Any]]:
    return [{"id": agent.id, "name": agent.name or agent.id,
             "description": agent.description or f"Agent {agent.id}",
             "tags": [agent.kind] + ([agent.model] if agent.model else [])}]
