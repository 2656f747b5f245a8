"""Gateway processes for the scale tests: real `prism serve` subprocesses sharing one
store (and Redis), each on its own port or several behind one `--workers` parent."""
from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

import harness

REPO = Path(__file__).resolve().parents[2]


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k} = {_toml_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(v)


def to_toml(cfg: dict) -> str:
    """Enough TOML for harness.gateway_config's shapes: tables and arrays of tables."""
    out = []
    for name, value in cfg.items():
        if isinstance(value, dict):
            out.append(f"[{name}]")
            out += [f"{k} = {_toml_value(v)}" for k, v in value.items()]
        else:
            for item in value:
                out.append(f"[[{name}]]")
                out += [f"{k} = {_toml_value(v)}" for k, v in item.items()]
        out.append("")
    return "\n".join(out)


def write_config(tmp: Path, sim_url: str, store_url: str, **overrides) -> Path:
    cfg = harness.gateway_config(tmp, sim_url, **overrides)
    cfg["store"]["url"] = store_url
    cfg["store"].setdefault("key_cache_ttl", 60.0)
    path = tmp / "prism.toml"
    path.write_text(to_toml(cfg), encoding="utf-8")
    return path


def env() -> dict:
    e = dict(os.environ, PYTHONPATH=str(REPO), PRISM_ADMIN_TOKEN=harness.ADMIN_TOKEN)
    e.setdefault("PRISM_TEST_UPSTREAM_KEY", "sk-upstream-test")
    return e


class Node:
    """One `prism serve` (or a `--workers` parent); `url` once it printed it."""

    def __init__(self, config: Path, *extra: str, port: int = 0) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "serve", "--config", str(config),
             "--port", str(port), *extra],
            cwd=config.parent, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, start_new_session=True)
        self.lines: queue.Queue = queue.Queue()
        self.stderr: list[str] = []
        threading.Thread(target=self._pump, args=(self.proc.stdout, self.lines.put),
                         daemon=True).start()
        threading.Thread(target=self._pump, args=(self.proc.stderr, self.stderr.append),
                         daemon=True).start()
        self.url = self._wait_for_url()
        self.admin = httpx.Client(base_url=self.url, timeout=30,
                                  headers={"authorization": f"Bearer {harness.ADMIN_TOKEN}"})

    @staticmethod
    def _pump(stream, put) -> None:
        for line in stream:
            put(line)

    def _wait_for_url(self, timeout: float = 60.0) -> str:
        deadline = time.monotonic() + timeout
        seen = []
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                if self.proc.poll() is not None:
                    break
                continue
            seen.append(line)
            m = re.match(r"prism: serving on (http://\S+)", line)
            if m:
                return m.group(1)
        self.kill()
        raise AssertionError(f"no URL: {seen!r} {''.join(self.stderr)[-3000:]}")

    def create_key(self, credits_usd: float = 10.0, name: str = "t") -> dict:
        r = self.admin.post("/-/keys", json={"name": name, "credits_usd": credits_usd})
        assert r.status_code == 201, r.text
        return r.json()

    def stop(self, timeout: float = 30.0) -> int:
        self.admin.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return -9

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
