"""Real servers for integration tests: the simulator and the gateway, each on its own
trio loop in a background thread, listening on real loopback sockets.

Tests talk to them with the official SDKs and httpx exactly as a client would, and read
the SQLite file through the store's own functions to check the money.
"""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import httpx
import trio

import store
from gateway.config import parse_config

ADMIN_TOKEN = "test-admin-token"


class ServerThread:
    """Run `serve(task_status=...)` on a private trio loop; stop() triggers shutdown."""

    def __init__(self, serve: Callable[..., Any]) -> None:
        self._serve = serve
        self._started = threading.Event()
        self._token: trio.lowlevel.TrioToken | None = None
        self._stop: trio.Event | None = None
        self.url: str | None = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        async def main() -> None:
            self._token = trio.lowlevel.current_trio_token()
            self._stop = trio.Event()
            async with trio.open_nursery() as nursery:
                self.url = await nursery.start(self._serve, self._stop)
                self._started.set()
        try:
            trio.run(main)
        except BaseException as exc:  # surfaced to the test that started us
            self.error = exc
        finally:
            self._started.set()

    def start(self) -> "ServerThread":
        self._thread.start()
        self._started.wait(30)
        if self.error is not None or self.url is None:
            raise RuntimeError(f"server failed to start: {self.error!r}")
        return self

    def stop(self, timeout: float = 30) -> None:
        if self._token is not None and self._stop is not None:
            try:
                trio.from_thread.run_sync(self._stop.set, trio_token=self._token)
            except trio.RunFinishedError:
                pass
        self._thread.join(timeout)


def start_simulator(**options: Any) -> ServerThread:
    from gateway.simulator.core import SimOptions
    from gateway.simulator.server import serve_simulator

    async def serve(stop: trio.Event, task_status=trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            port = await nursery.start(serve_simulator, "127.0.0.1", 0, SimOptions(**options))
            task_status.started(f"http://127.0.0.1:{port}")
            await stop.wait()
            nursery.cancel_scope.cancel()

    return ServerThread(serve).start()


UPSTREAM_KINDS = ("openai", "anthropic", "gemini")


def upstream_providers(sim_url: str, kinds=UPSTREAM_KINDS) -> tuple[list[dict], list[dict]]:
    """One provider per upstream kind, all answered by the HTTP simulator, and a model
    `via-<kind>` routed to each, so every inbound x upstream pair can be exercised."""
    providers, models = [], []
    for kind in kinds:
        base = sim_url + "/v1" if kind == "openai" else sim_url
        providers.append({"id": f"sim-{kind}", "kind": kind, "base_url": base,
                          "api_key_env": "PRISM_TEST_UPSTREAM_KEY", "read_timeout": 30.0})
        models.append({"id": f"via-{kind}", "input_usd_per_mtok": 1.0, "output_usd_per_mtok": 2.0,
                       "max_output_tokens": 1000, "capabilities": ["chat", "tools", "json", "vision"],
                       "routes": [{"provider": f"sim-{kind}", "model": f"sim-{kind}-model"}]})
    return providers, models


def gateway_config(tmp: Path, sim_url: str | None, *, upstream_kinds=(), **overrides: Any) -> dict:
    """A config whose models route to the simulator over HTTP (kind openai) when a URL is
    given, else to the in-process simulator. ``upstream_kinds`` adds a `via-<kind>` model
    per upstream kind (see upstream_providers)."""
    if sim_url:
        provider = {"id": "up", "kind": "openai", "base_url": sim_url + "/v1",
                    "api_key_env": "PRISM_TEST_UPSTREAM_KEY", "read_timeout": 30.0}
    else:
        provider = {"id": "up", "kind": "simulator"}
    cfg: dict = {
        "server": {"host": "127.0.0.1", "port": 0, "shutdown_grace": 2.0},
        "store": {"path": str(tmp / "prism.db"), "sweep_interval": 3600.0},
        "control": {"socket": str(tmp / "prism.sock")},
        "bootstrap": {"dev_key": False},
        "providers": [provider],
        "models": [
            {"id": "prism-mini", "aliases": ["mini"], "tier": "eco",
             "input_usd_per_mtok": 1.0, "output_usd_per_mtok": 2.0, "max_output_tokens": 1000,
             "capabilities": ["chat", "tools", "json", "vision"],
             "routes": [{"provider": "up", "model": "sim-mini"}]},
            {"id": "prism-big", "tier": "sport", "input_usd_per_mtok": 10.0,
             "output_usd_per_mtok": 30.0, "max_output_tokens": 4000,
             "capabilities": ["chat", "tools", "json"],
             "routes": [{"provider": "up", "model": "sim-big"}]},
            {"id": "prism-unpriced", "capabilities": ["chat"],
             "routes": [{"provider": "up", "model": "sim-free"}]},
            {"id": "prism-off", "enabled": False, "input_usd_per_mtok": 1.0,
             "output_usd_per_mtok": 1.0, "routes": [{"provider": "up", "model": "x"}]},
        ],
    }
    if upstream_kinds and sim_url:
        extra_providers, extra_models = upstream_providers(sim_url, upstream_kinds)
        cfg["providers"] += extra_providers
        cfg["models"] += extra_models
    for section, values in overrides.items():
        if isinstance(values, dict) and isinstance(cfg.get(section), dict):
            cfg[section].update(values)
        else:
            cfg[section] = values
    return cfg


@dataclass
class Gateway:
    thread: ServerThread
    db_path: str
    url: str
    socket_path: str = ""   # the control socket (gateway.control.server)
    admin: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.admin = httpx.Client(base_url=self.url,
                                  headers={"authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=30)

    def create_key(self, credits_usd: float = 10.0, name: str = "test",
                   plan: str | None = None) -> dict:
        body: dict = {"name": name, "credits_usd": credits_usd}
        if plan is not None:
            body["plan"] = plan
        r = self.admin.post("/-/keys", json=body)
        assert r.status_code == 201, r.text
        return r.json()

    def db(self):
        return store.open_database(self.db_path)

    def stop(self) -> None:
        self.admin.close()
        self.thread.stop()


_DEFAULT_TOKEN = object()


def start_gateway(tmp: Path, sim_url: str | None, *, upstream_kinds=(),
                  admin_token: Any = _DEFAULT_TOKEN, config_path: str | None = None,
                  clock: Callable[[], float] | None = None,
                  close_fault: Callable[[str], None] | None = None, **overrides: Any) -> Gateway:
    """A gateway on its own store under `tmp`. ``admin_token`` defaults to ADMIN_TOKEN;
    None starts it as if PRISM_ADMIN_TOKEN were unset. With ``config_path`` the
    config is read from that file instead (and /-/reload re-reads it). ``clock``
    replaces the wall clock the gateway uses for session expiry. ``close_fault`` is
    called where each request settles after its upstream answered (raise to test the
    close path)."""
    from gateway.server import run_gateway
    token = ADMIN_TOKEN if admin_token is _DEFAULT_TOKEN else admin_token
    os.environ.setdefault("PRISM_TEST_UPSTREAM_KEY", "sk-upstream-test")
    if config_path is None:
        raw = gateway_config(tmp, sim_url, upstream_kinds=upstream_kinds, **overrides)
        config = parse_config(raw, base_dir=str(tmp))
    else:
        from gateway.config import load_config
        config = load_config(config_path)

    async def serve(stop: trio.Event, task_status=trio.TASK_STATUS_IGNORED) -> None:
        await run_gateway(config, admin_token=token, shutdown_trigger=stop.wait,
                          config_path=config_path, clock=clock, close_fault=close_fault,
                          task_status=task_status)

    thread = ServerThread(serve).start()
    return Gateway(thread, config.store_target(), thread.url,
                   config.resolve_path(config.control.socket))


def start_process_server(script: str, *args: str) -> tuple[Any, int]:
    """Run `python script PORT *args` from the repo root (this tree's `gateway` on its
    path) and wait until it accepts connections; returns (process, port)."""
    import socket
    import subprocess
    import sys
    import time
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.Popen([sys.executable, script, str(port), *args], cwd=root, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, port
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"{script} did not start listening")
