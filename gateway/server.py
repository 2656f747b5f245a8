"""Start-up, the service nursery and shutdown for `prism serve`.

run_gateway opens the store on its writer thread, expires holds orphaned by a previous
process, warms the key cache, builds providers and the app, then serves hypercorn and
the hold sweeper in one nursery, beside the operator's control socket
(gateway.control.server). On shutdown hypercorn stops accepting, in-flight
requests get `server.shutdown_grace` seconds, and whatever is still running after that
is cancelled; their shielded settlements still run before the writer closes.
"""
from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from typing import Awaitable, Callable, Iterator

import trio
from hypercorn.config import Config as HyperConfig
from hypercorn.trio import serve as hyper_serve

import store
from gateway import tokenizer
from gateway.auth import KeyCache, KeyInfo
from gateway.billing.ledger import Ledger
from gateway.billing.pricing import usd_to_micros
from gateway.config import Config
from gateway.control.server import serve_control
from gateway.flags import ProviderFlags
from gateway.http.app import create_app
from gateway.media.jobs import media_of
from gateway.metrics import Metrics
from gateway.providers import build_providers
from gateway.routing.catalog import Catalog
from gateway.services import Services

log = logging.getLogger("prism")


def _hyper_config(config: Config, host: str, port: int) -> HyperConfig:
    s = config.server
    hc = HyperConfig()
    hc.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    # hypercorn's read_timeout bounds every receive on the connection, and a client
    # waiting for a long (streamed) answer sends nothing, so server.read_timeout there
    # would cut answers off after that many seconds. Slow bodies are bounded by the
    # app's BODY_TIMEOUT (= server.read_timeout), slow headers and idle connections by
    # keep_alive_timeout; this is only the backstop for a connection left silent
    # longer than any request may last (e.g. one wedged by an early error answer).
    hc.read_timeout = s.max_request_seconds + s.read_timeout
    hc.keep_alive_timeout = s.keep_alive_timeout
    hc.graceful_timeout = s.shutdown_grace
    hc.accesslog = None
    hc.errorlog = log
    return hc


async def _bootstrap_dev_key(config: Config, writer) -> str | None:
    """On a fresh store, make one development key so the first curl works."""
    if not config.bootstrap.dev_key:
        return None
    if await writer.call(store.list_keys):
        return None
    _, _, plaintext = await writer.call(store.create_account_with_key, "development",
                                        usd_to_micros(config.bootstrap.dev_key_credits_usd))
    return plaintext


async def _sweeper(writer, interval: float) -> None:
    while True:
        await trio.sleep(interval)
        # Wallet and plan-window holds alike, and idempotency records past their day.
        swept = await writer.call(store.sweep, time.time())
        if swept.holds:
            log.warning("expired %d orphaned hold(s) (%d wallet, %d window)", swept.holds,
                        swept.wallet_holds, swept.window_holds)


def build_services(config: Config, writer, admin_token: str | None) -> Services:
    async def lookup(digest: str) -> KeyInfo | None:
        key = await writer.call(store.find_key_by_hash, digest)
        if key is None or key.revoked_at is not None:
            return None
        return KeyInfo(key.id, key.account_id, key.name, key.key_hash)

    services = Services(
        config=config, writer=writer,
        ledger=Ledger(writer, hold_ttl_seconds=config.store.hold_ttl_seconds),
        keys=KeyCache(lookup, ttl=config.store.key_cache_ttl),
        catalog=Catalog(config), providers=build_providers(config), admin_token=admin_token)
    services.flags = ProviderFlags(writer, config, on_change=services.rebuild_catalog)
    services.metrics = Metrics(m.id for m in config.models)
    services.observers.append(services.metrics.observe)
    return services


async def run_gateway(config: Config, *, host: str | None = None, port: int | None = None,
                      admin_token: str | None = None,
                      shutdown_trigger: Callable[[], Awaitable[None]] | None = None,
                      on_dev_key: Callable[[str], None] | None = None,
                      config_path: str | None = None,
                      clock: Callable[[], float] | None = None,
                      task_status=trio.TASK_STATUS_IGNORED) -> None:
    """Serve until shutdown_trigger returns; task_status gets the bound base URL.
    `config_path` is the file `config` came from, re-read by POST /-/reload.
    `clock` replaces the wall clock for session expiry (tests)."""
    host = host or config.server.host
    port = config.server.port if port is None else port
    writer = store.Writer(config.resolve_path(config.store.path))
    # Build first: a provider that cannot be built raises before the writer thread
    # exists, instead of leaving it running outside the `finally` that closes it.
    services = build_services(config, writer, admin_token)
    services.config_path = config_path
    if clock is not None:
        services.clock = clock
    writer.start()
    try:
        orphans = (await writer.call(store.startup_sweep)).holds
        if orphans:
            log.warning("expired %d hold(s) left open by a previous run", orphans)
        plaintext = await _bootstrap_dev_key(config, writer)
        if plaintext and on_dev_key:
            on_dev_key(plaintext)
        for key_hash, key_id, account_id, name in await writer.call(store.load_active_keys):
            services.keys.put(KeyInfo(key_id, account_id, name, key_hash))
        await services.flags.load()
        # The BPE tables take ~0.5-2 s and ~140 MB to load. Requests to real upstreams
        # never need them (holds use tokenizer.bound_*); the in-process simulator counts
        # every answer, so with one configured pay it before listening, off the loop.
        if any(p.kind == "simulator" for p in config.providers):
            await trio.to_thread.run_sync(tokenizer.count_text, "warm up")
        services.ready = True
        app = create_app(services)
        async with trio.open_nursery() as nursery:
            async def serve_then_stop(task_status) -> None:
                await hyper_serve(app, _hyper_config(config, host, port),
                                  shutdown_trigger=shutdown_trigger, task_status=task_status)
                # The server has drained; the sweeper has nothing left to guard.
                nursery.cancel_scope.cancel()

            nursery.start_soon(_sweeper, writer, config.store.sweep_interval)
            nursery.start_soon(services.sessions.purge_forever, config.store.sweep_interval)
            await nursery.start(serve_control, services)
            await nursery.start(media_of(services).run)   # the video poller (issue 6)
            binds = await nursery.start(serve_then_stop)
            task_status.started(binds[0])
    finally:
        services.ready = False
        with trio.CancelScope(shield=True):
            for p in [*services.providers.values(), *services.retired]:
                await p.aclose()
            await trio.to_thread.run_sync(writer.close)


@contextlib.contextmanager
def signal_trigger() -> Iterator[Callable[[], Awaitable[None]]]:
    """A shutdown trigger for SIGINT/SIGTERM that catches them from the moment the
    block is entered. Opening the receiver only once hypercorn awaits the trigger left
    a window (start-up, and just after the URL is printed) where Ctrl-C surfaced as a
    KeyboardInterrupt traceback instead of a clean drain. After the first signal the
    receiver closes, so a second Ctrl-C interrupts the drain."""
    with contextlib.ExitStack() as stack:
        signals = stack.enter_context(trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM))

        async def wait() -> None:
            async for _ in signals:
                log.warning("shutting down: draining in-flight requests")
                stack.close()
                return
        yield wait


def admin_token_from_env() -> str | None:
    return os.environ.get("PRISM_ADMIN_TOKEN") or None
