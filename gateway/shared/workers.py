"""`prism serve --workers N`: one parent, N gateway processes on one listening socket.

The parent binds the port once and hands the socket to every worker (inherited file
descriptor; the kernel spreads connections over the processes accepting on it), so
the workers need no SO_REUSEPORT and a restarted worker serves the same port at once.
Before starting any, it opens the store once (migrations run in one process, not N
racing) and makes the development key on a fresh store.

Each worker is an ordinary `prism serve` with its own trio loop, writer and caches;
what they share is the store (and Redis if configured): see gateway.shared.backends.
A worker that dies is started again (backing off if it keeps dying at start-up); on
SIGINT/SIGTERM the parent passes SIGTERM on, so every worker drains its in-flight
requests for `server.shutdown_grace` seconds, and kills whatever is left after that.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from typing import Callable

from gateway.config import Config

_POLL_S = 0.2
_FAST_DEATH_S = 5.0       # a worker that dies sooner than this after starting...
_MAX_BACKOFF_S = 10.0     # ...is restarted after a growing pause, up to this


def bind_listener(host: str, port: int, backlog: int = 1024) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(backlog)
    sock.set_inheritable(True)
    return sock


def worker_command(config_path: str, fd: int, index: int, workers: int) -> list[str]:
    return [sys.executable, "-m", "gateway.cli", "serve", "--config", config_path,
            "--worker-fd", str(fd), "--worker-index", str(index), "--workers", str(workers)]


class Supervisor:
    def __init__(self, sock: socket.socket, workers: int,
                 command: Callable[[int], list[str]], grace: float) -> None:
        self._sock = sock
        self._n = workers
        self._command = command
        self._grace = grace
        self._procs: dict[int, subprocess.Popen] = {}
        self._started: dict[int, float] = {}
        self._backoff: dict[int, float] = {}
        self._due: dict[int, float] = {}
        self._stopping = False

    def _spawn(self, index: int) -> None:
        self._procs[index] = subprocess.Popen(self._command(index),
                                              pass_fds=(self._sock.fileno(),))
        self._started[index] = time.monotonic()

    def stop(self, *_: object) -> None:
        self._stopping = True

    def pids(self) -> list[int]:
        return [p.pid for p in self._procs.values()]

    def run(self) -> int:
        for index in range(self._n):
            self._spawn(index)
        while not self._stopping:
            time.sleep(_POLL_S)
            now = time.monotonic()
            for index, proc in list(self._procs.items()):
                if proc.poll() is None or index in self._due:
                    continue
                lived = now - self._started[index]
                pause = 0.0
                if lived < _FAST_DEATH_S:
                    pause = min(max(2 * self._backoff.get(index, 0.25), 0.5), _MAX_BACKOFF_S)
                self._backoff[index] = pause
                print(f"prism: worker {index} (pid {proc.pid}) exited with "
                      f"{proc.returncode}; restarting in {pause:.1f}s", file=sys.stderr,
                      flush=True)
                self._due[index] = now + pause
            for index, when in list(self._due.items()):
                if when <= now:
                    del self._due[index]
                    self._spawn(index)
        return self._drain()

    def _drain(self) -> int:
        for proc in self._procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self._grace + 5.0
        for proc in self._procs.values():
            try:
                proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._sock.close()
        return 0


def supervise(config: Config, config_path: str, host: str, port: int, workers: int,
              on_dev_key: Callable[[str], None]) -> int:
    import store
    from gateway.billing.pricing import usd_to_micros
    db = store.open_database(config.store_target())   # migrate once, here
    try:
        if config.bootstrap.dev_key and not store.list_keys(db):
            _, _, plaintext = store.create_account_with_key(
                db, "development", usd_to_micros(config.bootstrap.dev_key_credits_usd))
            on_dev_key(plaintext)
    finally:
        db.close()
    sock = bind_listener(host, port)
    bound = sock.getsockname()
    sup = Supervisor(sock, workers,
                     lambda i: worker_command(config_path, sock.fileno(), i, workers),
                     config.server.shutdown_grace)
    signal.signal(signal.SIGINT, sup.stop)
    signal.signal(signal.SIGTERM, sup.stop)
    print(f"prism: serving on http://{bound[0]}:{bound[1]} with {workers} workers "
          f"(parent pid {os.getpid()}; Ctrl-C to stop)", flush=True)
    return sup.run()
