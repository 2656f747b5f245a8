"""The prism.toml sections of the non-HTTP protocols: `[[mcp_servers]]`, `[[agents]]`
and `[realtime]`, as frozen dataclasses that gateway.config validates like every other
section (its table-driven shape check, then check_protocols for meaning).

Secrets never sit in the file: an HTTP MCP server's header values and an upstream's
environment may say `${NAME}`, replaced from the gateway's environment when the
connection is made (gateway.mcp.upstream), so the file can be committed.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

MCP_TRANSPORTS = ("stdio", "http")
AGENT_KINDS = ("remote", "local")
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


@dataclass(frozen=True)
class McpServerConfig:
    """One upstream MCP server. Its tools appear as `<prefix>__<tool>` (prefix defaults to
    the id); `price_usd` charges each call of one of its tools to the caller's wallet."""
    id: str
    transport: str
    command: str = ""                      # stdio: the program and its arguments
    args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    cwd: str = ""
    url: str = ""                          # http: the Streamable HTTP endpoint
    headers: dict[str, str] = field(default_factory=dict)
    prefix: str = ""
    timeout: float = 30.0                  # one call, connect included
    ping_interval: float = 5.0             # how soon a dead server is noticed
    backoff_initial: float = 0.5
    backoff_max: float = 30.0
    price_usd: float = 0.0
    enabled: bool = True

    @property
    def tool_prefix(self) -> str:
        return self.prefix or self.id


@dataclass(frozen=True)
class AgentConfig:
    """An A2A agent Prism serves at /a2a/<id>: a remote A2A agent it fronts (`url`), or a
    local one made of a model, instructions and MCP tools. `price_usd` is charged per
    proxied call to a remote agent; a local agent is billed like chat."""
    id: str
    kind: str
    name: str = ""
    description: str = ""
    url: str = ""                          # remote: the agent's base URL (its card lives there)
    headers: dict[str, str] = field(default_factory=dict)
    timeout: float = 60.0
    card_ttl: float = 300.0
    price_usd: float = 0.0
    model: str = ""                        # local
    instructions: str = ""
    mcp_tools: tuple[str, ...] = ()        # local: tool names or `server__*` patterns
    max_tool_rounds: int = 4


@dataclass(frozen=True)
class RealtimeConfig:
    """Limits of one /v1/realtime session; each ends it with its own close code."""
    max_session_seconds: float = 1800.0
    idle_timeout: float = 300.0
    max_message_bytes: int = 4 * 1024 * 1024
    default_max_output_tokens: int = 4096


@dataclass(frozen=True)
class A2AConfig:
    """A2A beyond the agents themselves: push notifications and conversations.
    Webhooks are posted through the SSRF guard (gateway.media.fetch.vet): never to a
    private, loopback or metadata address unless `push_allow_private_hosts` (tests, or
    a deployment whose clients live on its own network; metadata stays refused)."""
    push_allow_private_hosts: bool = False
    push_timeout: float = 5.0
    max_push_configs_per_task: int = 10
    max_url_chars: int = 2048
    context_max_tasks: int = 20      # earlier tasks of a context a new one sees


def _check_id(ident: str, where: str, seen: set[str], what: str, problems: list[str]) -> None:
    if not _ID.match(ident):
        problems.append(f"{where}.id: letters, digits, '-' and '_' only")
    if ident in seen:
        problems.append(f"{where}.id: duplicate {what} id {ident!r}")
    seen.add(ident)


def check_protocols(cfg: Any, model_ids: set[str], problems: list[str]) -> None:
    seen: set[str] = set()
    for i, s in enumerate(cfg.mcp_servers):
        where = f"mcp_servers[{i}]"
        _check_id(s.id, where, seen, "MCP server", problems)
        if "__" in s.tool_prefix:
            problems.append(f"{where}.prefix: must not contain '__' (it separates the tool name)")
        if s.transport not in MCP_TRANSPORTS:
            problems.append(f"{where}.transport: {s.transport!r} is not one of "
                            f"{', '.join(MCP_TRANSPORTS)}")
        elif s.transport == "stdio" and not s.command:
            problems.append(f"{where}.command: required for transport 'stdio'")
        elif s.transport == "http" and not s.url.startswith(("http://", "https://")):
            problems.append(f"{where}.url: an http(s) URL is required for transport 'http'")
        for name in ("timeout", "ping_interval", "backoff_initial", "backoff_max"):
            if getattr(s, name) <= 0:
                problems.append(f"{where}.{name}: must be positive")
        if s.price_usd < 0:
            problems.append(f"{where}.price_usd: must not be negative")
    agents: set[str] = set()
    for i, a in enumerate(cfg.agents):
        where = f"agents[{i}]"
        _check_id(a.id, where, agents, "agent", problems)
        if a.kind not in AGENT_KINDS:
            problems.append(f"{where}.kind: {a.kind!r} is not one of {', '.join(AGENT_KINDS)}")
        elif a.kind == "remote" and not a.url.startswith(("http://", "https://")):
            problems.append(f"{where}.url: an http(s) URL is required for a remote agent")
        elif a.kind == "local" and a.model not in model_ids:
            problems.append(f"{where}.model: unknown model {a.model!r}")
        if a.timeout <= 0 or a.card_ttl <= 0:
            problems.append(f"{where}: timeout and card_ttl must be positive")
        if a.price_usd < 0:
            problems.append(f"{where}.price_usd: must not be negative")
    a = cfg.a2a
    for name in ("push_timeout", "max_push_configs_per_task", "max_url_chars",
                 "context_max_tasks"):
        if getattr(a, name) <= 0:
            problems.append(f"a2a.{name}: must be positive")
    r = cfg.realtime
    for name in ("max_session_seconds", "idle_timeout", "max_message_bytes",
                 "default_max_output_tokens"):
        if getattr(r, name) <= 0:
            problems.append(f"realtime.{name}: must be positive")
