"""How to run each coding-agent CLI non-interactively against a gateway (tests' helper).

Each CLI runs with its default settings except what points it at us: the base URL and
key through the environment variables its documentation names, a throwaway HOME, the
model, and the flag that lets it use its file-reading tool without asking. The CLIs are
npm packages; ``find`` looks on PATH and under $PRISM_AGENT_CLI_PREFIX/bin (where
.ci/run installs them).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

PACKAGES = {"claude": "@anthropic-ai/claude-code", "codex": "@openai/codex",
            "gemini": "@google/gemini-cli"}
NATIVE = {"claude": "anthropic", "codex": "openai", "gemini": "gemini"}
SECRET = "prism-agent-secret-7f3a91"


# Upstream "kinds" the agent tests route through: each provider kind, and an
# OpenAI-kind provider speaking the Responses API (api = "responses").
KINDS = ("openai", "anthropic", "gemini", "responses")


def gateway_models(sim_url: str) -> dict:
    """start_gateway overrides: a ``via-<kind>`` model per entry of KINDS, each with an
    output limit above what the CLIs ask for (Claude Code asks for 32000 tokens)."""
    import harness
    providers, models = harness.upstream_providers(sim_url)
    providers.append({"id": "sim-responses", "kind": "openai", "api": "responses",
                      "base_url": sim_url + "/v1", "api_key_env": "PRISM_TEST_UPSTREAM_KEY",
                      "read_timeout": 30.0})
    models.append(dict(models[0], id="via-responses",
                       routes=[{"provider": "sim-responses", "model": "sim-responses-model"}]))
    return {"providers": providers,
            "models": [dict(m, max_output_tokens=64000, context_window=1_000_000) for m in models]}


def find(name: str) -> str | None:
    prefix = os.environ.get("PRISM_AGENT_CLI_PREFIX")
    if prefix and (Path(prefix) / "bin" / name).exists():
        return str(Path(prefix) / "bin" / name)
    return shutil.which(name)


def prompt(name: str, path: Path) -> str:
    """A prompt that makes the simulator call the CLI's file-reading tool on ``path``:
    it names the tool, and ``<param>=<value>`` fills the tool's string arguments."""
    if name == "claude":
        return f"Use the Read tool. file_path={path} offset=0 limit=20 pages=1"
    if name == "codex":
        return (f'Use the shell tool exec_command. cmd="cat {path}" shell=/bin/sh '
                f'workdir={path.parent} yield_time_ms=2000 max_output_tokens=2000')
    return f"Use the read_file tool. file_path={path} absolute_path={path} start_line=1 end_line=5"


def run(name: str, base_url: str, key: str, work: Path, *, upstream: str,
        timeout: float = 180) -> subprocess.CompletedProcess:
    exe = find(name)
    if exe is None:
        raise FileNotFoundError(name)
    work.mkdir(parents=True, exist_ok=True)
    home = work / "home"
    home.mkdir(exist_ok=True)
    target = work / "secret.txt"
    target.write_text(SECRET + "\n")
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(home), "TERM": "dumb",
           "NO_COLOR": "1", "CI": "1"}
    text = prompt(name, target)
    if name == "claude":
        env.update(ANTHROPIC_BASE_URL=base_url, ANTHROPIC_API_KEY=key, ANTHROPIC_MODEL=upstream,
                   ANTHROPIC_SMALL_FAST_MODEL=upstream, ANTHROPIC_DEFAULT_HAIKU_MODEL=upstream,
                   DISABLE_TELEMETRY="1", DISABLE_AUTOUPDATER="1",
                   CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1")
        argv = [exe, "-p", text, "--allowedTools", "Read", "--max-turns", "3"]
    elif name == "codex":
        env.update(OPENAI_BASE_URL=base_url + "/v1", OPENAI_API_KEY=key, CODEX_API_KEY=key,
                   CODEX_HOME=str(home / ".codex"))
        (home / ".codex").mkdir(exist_ok=True)
        # Codex reads its base URL from config (OPENAI_BASE_URL is only its older spelling).
        (home / ".codex" / "config.toml").write_text(f'openai_base_url = "{base_url}/v1"\n')
        argv = [exe, "exec", "--skip-git-repo-check", "-m", upstream,
                "--dangerously-bypass-approvals-and-sandbox", text]
    else:
        env.update(GOOGLE_GEMINI_BASE_URL=base_url, GEMINI_API_KEY=key)
        # Headless runs need the auth method named (API key) and the folder trusted.
        (home / ".gemini").mkdir(exist_ok=True)
        (home / ".gemini" / "settings.json").write_text(json.dumps({
            "security": {"auth": {"selectedType": "gemini-api-key"},
                         "folderTrust": {"enabled": False}}}))
        argv = [exe, "-p", text, "-m", upstream, "--yolo"]
    return subprocess.run(argv, cwd=work, env=env, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)
