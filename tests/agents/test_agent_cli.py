"""Claude Code, Codex and Gemini CLI, unmodified, against a running Prism.

Each CLI runs non-interactively (``claude -p``, ``codex exec``, ``gemini -p``) with its
default settings, pointed at the gateway through its documented environment variables
(agent_cli.py), with a model routed to a simulator upstream of each kind. The prompt
makes the simulator ask for the CLI's own file-reading tool on a real file; the CLI
runs it and sends the result back, and the simulator's answer to a tool-result turn
("Tool result received: <result>") can only name the file's contents if they reached
the upstream as a tool result. Skipped where the CLIs are not installed (.ci/run
installs them from npm).
"""
from __future__ import annotations

import pytest

import agent_cli
import harness

CLIS = ("claude", "codex", "gemini")


@pytest.fixture(scope="module")
def gw(sim_url, tmp_path_factory):
    g = harness.start_gateway(tmp_path_factory.mktemp("agent-cli"), sim_url,
                              **agent_cli.gateway_models(sim_url))
    yield g
    g.stop()


@pytest.mark.parametrize("kind", agent_cli.KINDS)
@pytest.mark.parametrize("cli", CLIS)
def test_cli_reads_a_file_through_prism(gw, tmp_path, cli, kind):
    if agent_cli.find(cli) is None:
        pytest.skip(f"{cli} is not installed (npm i -g {agent_cli.PACKAGES[cli]})")
    key = gw.create_key(credits_usd=20)["key"]
    result = agent_cli.run(cli, gw.url, key, tmp_path, upstream=f"via-{kind}")
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-2000:]
    assert "Tool result received: " in result.stdout, out[-2000:]
    assert agent_cli.SECRET in result.stdout, out[-2000:]
