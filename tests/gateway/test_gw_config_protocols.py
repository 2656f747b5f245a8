"""The [[mcp_servers]], [[agents]] and [realtime] sections: shapes and meaning checks."""
from __future__ import annotations

import pytest

from gateway.config import ConfigError, parse_config

MODEL = {"id": "m", "routes": [{"provider": "p", "model": "x"}]}
BASE = {"providers": [{"id": "p", "kind": "simulator"}], "models": [MODEL]}


def test_valid_sections_parse():
    cfg = parse_config({**BASE,
                        "mcp_servers": [{"id": "fs", "transport": "stdio", "command": "srv",
                                         "env": {"TOKEN": "${T}"}},
                                        {"id": "web", "transport": "http",
                                         "url": "https://x/mcp", "prefix": "w"}],
                        "agents": [{"id": "a", "kind": "local", "model": "m"},
                                   {"id": "b", "kind": "remote", "url": "http://b"}],
                        "realtime": {"idle_timeout": 5.0},
                        "plans": [{"id": "pl", "mcp_tools": ["fs__*"]}]})
    assert cfg.mcp_servers[0].env == {"TOKEN": "${T}"}
    assert cfg.mcp_servers[1].tool_prefix == "w" and cfg.mcp_servers[0].tool_prefix == "fs"
    assert cfg.realtime.idle_timeout == 5.0 and cfg.plans[0].mcp_tools == ("fs__*",)


@pytest.mark.parametrize("extra,problem", [
    ({"mcp_servers": [{"id": "x", "transport": "ftp"}]}, "mcp_servers[0].transport"),
    ({"mcp_servers": [{"id": "x", "transport": "stdio"}]}, "mcp_servers[0].command"),
    ({"mcp_servers": [{"id": "x", "transport": "http", "url": "x"}]}, "mcp_servers[0].url"),
    ({"mcp_servers": [{"id": "x", "transport": "stdio", "command": "c", "prefix": "a__b"}]},
     "mcp_servers[0].prefix"),
    ({"mcp_servers": [{"id": "x", "transport": "stdio", "command": "c", "env": {"A": 1}}]},
     "mcp_servers[0].env"),
    ({"agents": [{"id": "a", "kind": "local", "model": "nope"}]}, "agents[0].model"),
    ({"agents": [{"id": "a", "kind": "remote"}]}, "agents[0].url"),
    ({"agents": [{"id": "a", "kind": "other"}]}, "agents[0].kind"),
    ({"realtime": {"max_message_bytes": 0}}, "realtime.max_message_bytes"),
])
def test_bad_sections_name_the_key(extra, problem):
    with pytest.raises(ConfigError) as exc:
        parse_config({**BASE, **extra})
    assert any(p.startswith(problem) for p in exc.value.problems), exc.value.problems
