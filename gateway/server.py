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
import functools
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
from gateway.billing.ledger import Ledger
from gateway.engine.admission import Admission
from gateway.engine.dispatch import Dispatcher
from gateway.engine.idempotency import Idempotency
from gateway.engine.jobs import MediaService
from gateway.engine.live import Live, Observers
from gateway.engine.pipeline import Pipeline
from gateway.engine.select import Router
from gateway.engine.services import Services
from gateway.engine.sessions import Sessions
from gateway.billing.pricing import usd_to_micros
from gateway.config import Config
from gateway.control.server import serve_control
from gateway.http import front
from gateway.http.app import create_app
from gateway.inference.clients import InferenceClients
from gateway.media.images import Images, MediaRoutes
from gateway.media.videos import Videos
from gateway.orgs.service import Orgs
from gateway.providers import build_providers
from gateway.resources import Resources
from gateway.resources.account import AccountRecords
from gateway.resources.responses import StoredResponses
from gateway.resources.chat import PipelineChat
from gateway.resources.embedder import PipelineEmbed
from gateway.routing.catalog import Catalog
from gateway.runtime.flags import ProviderFlags, build_catalog
from gateway.runtime.keys import KeyCache, KeyInfo
from gateway.runtime.metrics import Metrics
from gateway.shared import backends
from gateway.shared.cluster import Cluster
from gateway.engine.shadow import Shadow
from gateway.runtime.fleet import ConfigHash, Fleet, version as fleet_version
from gateway.runtime.rotation import Rotations
from gateway.runtime.sealing import Sealer

log = logging.getLogger("prism")


def _hyper_config(config: Config, host: str, port: int,
                  listen_fd: int | None = None) -> HyperConfig:
    s = config.server
    hc = HyperConfig()
    # A worker of `prism serve --workers` serves the socket its parent bound.
    hc.bind = [f"fd://{listen_fd}" if listen_fd is not None else
               f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    # hypercorn's read_timeout bounds every receive on the connection, and a client
    # waiting for a long (streamed) answer sends nothing, so server.read_timeout there
    # would cut answers off after that many seconds. Slow bodies are bounded by the
    # app's BODY_TIMEOUT (= server.read_timeout), slow headers and idle connections by
    # keep_alive_timeout; this is only the backstop for a connection left silent
    # longer than any request may last (e.g. one wedged by an early error answer).
    hc.read_timeout = s.max_request_seconds + s.read_timeout
    hc.keep_alive_timeout = s.keep_alive_timeout
    hc.backlog = s.backlog
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


def build_services(config: Config, writer, admin_token: str | None, *,
                   config_path: str | None = None,
                   clock: Callable[[], float] = time.time,
                   close_fault: Callable[[str], None] | None = None,
                   limiter=None, shared: bool = False) -> Services:
    """Every part, each with the collaborators it uses, in dependency order.
    `clock` is the wall clock session expiry reads (tests replace it). `limiter` is
    the shared rate limiter, if any, and `shared` says other processes share the store
    (gateway.shared.backends)."""
    async def lookup(digest: str) -> KeyInfo | None:
        key = await writer.call(store.find_key_by_hash, digest)
        if key is None or key.revoked_at is not None:
            return None
        return KeyInfo(key.id, key.account_id, key.name, key.key_hash)

    live = Live(config, Catalog(config), build_providers(config))

    def rebuild_catalog() -> None:
        # Routing re-derived from the config and the operator's flags, in one swap.
        live.catalog = build_catalog(live.config, flags)

    flags = ProviderFlags(writer, config, on_change=rebuild_catalog)
    metrics = Metrics(m.id for m in config.models)
    finished = backends.Finished()
    observers = Observers(metrics.observe, finished)
    ledger = Ledger(writer, hold_ttl_seconds=config.store.hold_ttl_seconds,
                    close_fault=close_fault)
    # Organizations (issue 16): org configs, per-key settings, budgets, own credentials.
    orgs = Orgs(writer, live, ttl=config.store.key_cache_ttl)
    admission = Admission(live, writer, ledger, observers, limiter=limiter, orgs=orgs)
    media = MediaService(live, writer, admission, observers)
    # Key rotation and shadow traffic (issue 16): which credential a call uses, and
    # the sampled second call after a settled one (gateway.runtime.fleet).
    rotations = Rotations(writer, lambda: live.config, live.retired.append,
                          sealer=Sealer.from_env())
    dispatcher = Dispatcher(live, media, orgs=orgs, rotations=rotations)
    router = Router(live, writer)
    sessions = Sessions(live, writer, clock)
    pipeline = Pipeline(router, sessions, admission, dispatcher,
                        settled=lambda *args: shadow.offer(*args))
    shadow = Shadow(writer, pipeline.complete)
    inference = InferenceClients(config, live.providers)
    keys = KeyCache(lookup, ttl=config.store.key_cache_ttl)
    # MCP, A2A and realtime (issue 15): every billed call is an engine operation
    # (pipeline.metered / hold / close), and local agents' chat is pipeline.complete.
    mcp = _build_mcp(config, writer, keys, admission, pipeline)
    a2a = _build_a2a(config, writer, admission, pipeline, mcp)
    async def sole_process() -> bool:
        """No other live process shares the store (read once the cluster has joined)."""
        if cluster is None:
            return True
        return not await writer.call(store.cluster.others_alive, cluster.node_id,
                                     cluster.stale_s, time.time())

    resources = Resources(config, writer, PipelineChat(pipeline, admission),
                          PipelineEmbed(pipeline, admission, inference), sole=sole_process)
    # Async, scheduled and batch completions (issue 14): one durable runner.
    from gateway.http.common import error_body
    from gateway.http.inference_routes import embed_tokens
    from gateway.jobs import Jobs
    jobs = Jobs(live, writer, pipeline, admission, inference, resources, media, clock=clock,
                render_error=error_body, embed_units=embed_tokens)
    # The cluster applies other processes' changes to the parts built here; it reaches
    # them through the Services value built just below (read when an event arrives).
    # Every process beats and follows the store's event feed, so the cluster view lists
    # them all and several `prism serve` on one SQLite file apply each other's changes
    # (rotations, revocations, flags); a process that is not expected to share polls
    # less often. Sharing processes also carry each other's live requests to their
    # dashboards (gateway.shared.feed).
    config_hash, running_version = ConfigHash(), fleet_version()
    membership = Cluster(writer, backends.event_handler(lambda: services),
                         poll_s=0.2 if shared else 1.0,
                         info=lambda: {**backends.node_info(admission, finished),
                                       "version": running_version,
                                       "config_hash": config_hash(live.config)},
                         feed=backends.live_feed(config) if shared else None)
    cluster = membership if shared else None
    if membership.feed is not None:
        observers.append(membership.feed.observe)
    # The customer routes' own records, so http/ never calls the store itself.
    responses = StoredResponses(writer)
    idempotency = Idempotency(writer, lambda: live.config.server.max_request_seconds + 60.0)
    accounts = AccountRecords(writer, keys)
    media_routes = MediaRoutes(live, media, images_on=flags.images, video_on=flags.video)
    images = Images(pipeline, media_routes, live)
    videos = Videos(pipeline, media_routes, media, writer, ledger, live, jobs)
    services = Services(inference=inference, live=live, writer=writer, ledger=ledger, keys=keys,
                        admission=admission, dispatcher=dispatcher, router=router,
                        sessions=sessions, media=media, pipeline=pipeline, flags=flags,
                        metrics=metrics, observers=observers, admin_token=admin_token,
                        config_path=config_path, clock=clock, mcp=mcp,
                        a2a=a2a, cluster=cluster, resources=resources, responses=responses,
                        idempotency=idempotency, accounts=accounts, images=images,
                        videos=videos, jobs=jobs, orgs=orgs,
                        fleet=Fleet(rotations, shadow, membership, writer))
    return services


def _build_a2a(config: Config, writer, admission: Admission, pipeline: Pipeline, mcp):
    from gateway import canonical as c
    from gateway.a2a.push import PushConfigs, PushSender
    from gateway.a2a.remote import RemoteAgents
    from gateway.a2a.service import A2AService
    from gateway.engine.call import CallContext

    async def chat(caller, req: c.Request) -> tuple[c.Response, int]:
        """One chat call of a local agent, through the same admission, dispatch and
        settlement as /v1/chat/completions."""
        ctx = CallContext(request_id="req_" + os.urandom(12).hex(), route="/a2a",
                          dialect="a2a", account_id=caller.account_id, key_id=caller.key_id)
        ctx.allowed_models = await admission.allowed_models(caller.account_id)
        ctx.model = req.model
        resp, outcome = await pipeline.complete(ctx, req)
        return resp, outcome.cost_micros

    remote = RemoteAgents(config.agents, writer=writer, pipeline=pipeline)
    push = PushConfigs(writer, PushSender(config.a2a), config.a2a)
    return A2AService(config.agents, writer=writer, chat=chat, hub=mcp.hub, remote=remote,
                      push=push, limits=config.a2a)


def _build_mcp(config: Config, writer, keys: KeyCache, admission: Admission,
               pipeline: Pipeline):
    from gateway.mcp import build_mcp
    from gateway.mcp.hub import Caller

    async def authenticate(token: str | None) -> Caller:
        info = await keys.verify(token)
        plan = await admission.plan_for(info.account_id)
        allowed = tuple(plan.mcp_tools) if plan is not None and plan.mcp_tools else None
        return Caller(info.key_id, info.account_id, allowed)

    async def audit(actor: str, action: str, detail: dict) -> None:
        await writer.call(store.append_audit, actor, action, detail)

    return build_mcp(config.mcp_servers, pipeline=pipeline, audit=audit,
                     authenticate=authenticate)


async def run_gateway(config: Config, *, host: str | None = None, port: int | None = None,
                      admin_token: str | None = None,
                      shutdown_trigger: Callable[[], Awaitable[None]] | None = None,
                      on_dev_key: Callable[[str], None] | None = None,
                      config_path: str | None = None,
                      clock: Callable[[], float] | None = None,
                      close_fault: Callable[[str], None] | None = None,
                      listen_fd: int | None = None, workers: int = 1,
                      control_path: str | None = None,
                      task_status=trio.TASK_STATUS_IGNORED) -> None:
    """Serve until shutdown_trigger returns; task_status gets the bound base URL.
    `config_path` is the file `config` came from, re-read by POST /-/reload.
    `clock` replaces the wall clock for session expiry (tests). `close_fault` is
    test-only: see billing.ledger.Ledger. `listen_fd` and `workers` are set for a
    worker of `prism serve --workers` (gateway.shared.workers)."""
    host = host or config.server.host
    port = config.server.port if port is None else port
    shared = backends.is_shared(config, workers)
    writer = store.Writer(config.store_target(), threads=backends.writer_threads(config))
    # Build first: a provider that cannot be built raises before the writer thread
    # exists, instead of leaving it running outside the `finally` that closes it.
    services = build_services(config, writer, admin_token, config_path=config_path,
                              clock=clock or time.time, close_fault=close_fault,
                              limiter=backends.build_limiter(config, writer, shared),
                              shared=shared)
    writer.start()
    try:
        if services.cluster is not None:
            await services.cluster.join()
            swept = await writer.call(store.startup_sweep,
                                      node_id=services.cluster.node_id,
                                      stale_after=services.cluster.stale_s)
        else:
            await services.fleet.nodes.join()
            swept = await writer.call(store.startup_sweep)
        orphans = swept.holds
        if orphans:
            log.warning("expired %d hold(s) left open by a previous run", orphans)
        plaintext = await _bootstrap_dev_key(config, writer)
        if plaintext and on_dev_key:
            on_dev_key(plaintext)
        for key_hash, key_id, account_id, name in await writer.call(store.load_active_keys):
            services.keys.put(KeyInfo(key_id, account_id, name, key_hash))
        await services.flags.load()
        await services.fleet.rotations.load()
        # The BPE tables take ~0.5-2 s and ~140 MB to load. Requests to real upstreams
        # never need them (holds use tokenizer.bound_*); the in-process simulator counts
        # every answer, so with one configured pay it before listening, off the loop.
        if any(p.kind == "simulator" for p in config.providers):
            await trio.to_thread.run_sync(tokenizer.count_text, "warm up")
        services.ready = True
        app = create_app(services)
        async with trio.open_nursery() as nursery:
            async def serve_then_stop(task_status) -> None:
                hyper = _hyper_config(config, host, port, listen_fd)
                if config.server.fast_http1:
                    await front.serve(app, hyper, max_connections=config.server.max_connections,
                                      shutdown_trigger=shutdown_trigger, task_status=task_status)
                else:
                    await hyper_serve(app, hyper, shutdown_trigger=shutdown_trigger,
                                      task_status=task_status)
                # The server has drained; the sweeper has nothing left to guard.
                nursery.cancel_scope.cancel()

            nursery.start_soon(_sweeper, writer, config.store.sweep_interval)
            nursery.start_soon(services.sessions.purge_forever, config.store.sweep_interval)
            await nursery.start(services.fleet.nodes.run)   # == services.cluster if shared
            await nursery.start(services.fleet.shadow.run)
            await nursery.start(functools.partial(serve_control, services, path=control_path))
            await nursery.start(services.media.run)   # media clients; videos to the runner
            await nursery.start(services.mcp.run)     # MCP upstreams and /mcp
            await nursery.start(services.a2a.run)     # A2A background tasks
            await nursery.start(services.resources.run)   # files, vector stores, runs
            await nursery.start(services.jobs.run)        # async, scheduled, batch jobs
            await nursery.start(services.orgs.run)        # org webhooks, org providers
            binds = await nursery.start(serve_then_stop)
            task_status.started(binds[0])
    finally:
        services.ready = False
        with trio.CancelScope(shield=True):
            if services.fleet is not None:
                with trio.move_on_after(2):
                    await services.fleet.nodes.leave()
            for p in [*services.providers.values(), *services.retired]:
                await p.aclose()
            await services.inference.aclose()
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
