"""Calling the upstream for a prepared request: which route, with what deadline, and
what to do when a route fails.

The only place that picks a provider out of a Selection's routes. Routes are tried in
order; a route whose circuit breaker is open is skipped; a failure that says the route
is unwell (routing/failover.fails_over) moves on to the next route. All of that happens
before the client has seen a byte: complete() returns a whole Response, and open()
pulls the stream's first event before returning, so a stream that fails before its
first event is retried elsewhere while one that fails later is not (its failure
reaches the client in-band, and the pipeline settles what was delivered). Whatever
happened underneath, the pipeline sees one call and settles once.

Breakers are per route (provider + upstream model), live as long as the dispatcher,
and survive catalog rebuilds and reloads; ``breaker_states()`` shows them to the
admin API and the dashboard.
"""
from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, AsyncIterator, Awaitable, Callable, TypeVar

import trio

from gateway import canonical as c
from gateway import errors
from gateway.config import RouteConfig
from gateway.engine.operations import Upstream
from gateway.providers.base import api_key, scrub
from gateway.routing.breaker import Breaker
from gateway.routing.failover import exhausted, fails_over
from gateway.routing.hosted import system_refusal

if TYPE_CHECKING:
    from gateway.engine.call import Prepared
    from gateway.engine.live import Live

T = TypeVar("T")


def upstream_timeout(exc: trio.TooSlowError) -> errors.UpstreamTimeout:
    return errors.UpstreamTimeout("upstream did not answer within the request deadline")


def _route_key(route: RouteConfig) -> str:
    return f"{route.provider}/{route.model}"


class Dispatcher:
    def __init__(self, live: "Live", media: Any,
                 clock: Callable[[], float] = time.monotonic, orgs: Any = None,
                 rotations: Any = None) -> None:
        """``media`` gives a provider's media client (engine.jobs.MediaService);
        ``orgs`` (gateway.orgs.service.Orgs) an org's own provider instances;
        ``rotations`` (runtime.rotation.Rotations) which credential a call uses."""
        self.live = live
        self.orgs = orgs
        self.media = media
        self.rotations = rotations
        self._clock = clock
        self._breakers: dict[str, Breaker] = {}

    # ------------------------------------------------------------ breakers

    def breaker(self, route: RouteConfig, org_id: str | None = None) -> Breaker:
        key = _route_key(route) if org_id is None else f"{org_id}:{_route_key(route)}"
        b = self._breakers.get(key)
        if b is None:
            r = self.live.config.routing
            b = self._breakers[key] = Breaker(r.breaker_failures, r.breaker_cooldown, self._clock)
        return b

    def breaker_states(self) -> dict[str, dict[str, Any]]:
        """Every configured route's breaker, keyed "provider/upstream_model": state
        (closed | open | half_open), consecutive_failures, retry_in_seconds, and
        lifetime failures/successes. Routes never called show as closed."""
        out: dict[str, dict[str, Any]] = {}
        for m in self.live.config.models:
            for r in m.routes:
                key = _route_key(r)
                if key in out:
                    continue
                b = self._breakers.get(key)
                snap = b.snapshot() if b is not None else {
                    "state": "closed", "consecutive_failures": 0, "retry_in_seconds": 0.0,
                    "failures": 0, "successes": 0}
                out[key] = {"provider": r.provider, "upstream_model": r.model, **snap}
        return out

    def breaker_snapshot(self, route: RouteConfig, org_id: str | None = None) -> dict[str, Any]:
        """One route's breaker (an org's own when ``org_id``), closed if never called."""
        key = _route_key(route) if org_id is None else f"{org_id}:{_route_key(route)}"
        b = self._breakers.get(key)
        return b.snapshot() if b is not None else {
            "state": "closed", "consecutive_failures": 0, "retry_in_seconds": 0.0,
            "failures": 0, "successes": 0}

    def provider_breaker_states(self) -> dict[str, str]:
        """One state per provider for gauges that are per provider: the worst of its
        routes' (open > half_open > closed)."""
        rank = {"closed": 0, "half_open": 1, "open": 2}
        out: dict[str, str] = {p.id: "closed" for p in self.live.config.providers}
        for st in self.breaker_states().values():
            if rank[st["state"]] > rank[out.get(st["provider"], "closed")]:
                out[st["provider"]] = st["state"]
        return out

    # ------------------------------------------------------------ calls

    def read_timeout(self, prep: "Prepared") -> float:
        return self.live.config.provider(prep.route.provider).read_timeout

    def _attempt_deadline(self, route: RouteConfig) -> float:
        pc = self.live.config.provider(route.provider)
        return pc.connect_timeout + pc.read_timeout

    async def _each_route(self, prep: "Prepared",
                          attempt: Callable[[Any, RouteConfig], Awaitable[T]]) -> T:
        """Run ``attempt(provider, route)`` on each usable route until one succeeds."""
        failures: list[BaseException] = []
        paused: float | None = None
        org = prep.ctx.org
        for i, route in enumerate(prep.selection.routes):
            provider = self.live.providers.get(route.provider)
            if provider is None:       # removed by a reload while this request was queued
                continue
            own = self.orgs.provider(org, route.provider) if org is not None and self.orgs else None
            # An org's own credential is a route of its own: its breaker is separate.
            breaker = self.breaker(route, org.id if own is not None else None)
            provider = own or provider
            if not breaker.allow():
                wait = breaker.retry_in()
                paused = wait if paused is None else min(paused, wait)
                continue
            prep.route = route
            prep.failover = prep.failover or i > 0
            try:
                # An org's own credential is not the gateway's to rotate.
                result = await (attempt(provider, route) if own is not None
                                else self._with_credential(provider, route, attempt))
            except errors.PrismError as exc:
                self._scrub(exc, prep, route)
                if not fails_over(exc):
                    breaker.success()   # it answered: the request was at fault, not the route
                    refusal = system_refusal(prep.req, exc, prep.selection.entry.public_id)
                    if refusal is not None:
                        raise refusal from None
                    raise
                breaker.failure()
                failures.append(exc)
                continue
            except BaseException:
                breaker.release()       # cancelled: no verdict on the route
                raise
            breaker.success()
            return result
        raise exhausted(prep.selection.entry.model.id, failures, paused)

    async def _with_credential(self, provider: Any, route: RouteConfig,
                               attempt: Callable[[Any, RouteConfig], Awaitable[T]]) -> T:
        """One attempt on the credential a rotation picks. A refusal (401/403) of a
        rotation's new credential rolls it back and the call is made again on the
        current one at once: the client is not the one to pay for a bad new key."""
        chosen = self.rotations.pick(route.provider) if self.rotations is not None else None
        if chosen is None:
            return await attempt(provider, route)
        slot, rotated = chosen
        try:
            result = await attempt(rotated or provider, route)
        except errors.PrismError as exc:
            self.rotations.record(route.provider, slot, exc)
            if slot != "new" or not isinstance(exc, errors.UpstreamAuthFailed):
                raise
            await self.rotations.refused(route.provider)
            slot, current = "current", self.rotations.current(route.provider) or provider
            try:
                result = await attempt(current, route)
            except errors.PrismError as again:
                self.rotations.record(route.provider, slot, again)
                raise
        self.rotations.record(route.provider, slot, None)
        return result

    def _scrub(self, exc: errors.PrismError, prep: "Prepared", route: RouteConfig) -> None:
        """Every upstream failure passes here on its way to a client: its words go to
        the operator (redacted), the client keeps the status class and the request id."""
        pc = self.live.config.provider(route.provider)
        org_secrets = prep.ctx.org.secret_values if prep.ctx.org is not None else ()
        extra = self.rotations.secrets(route.provider) if self.rotations is not None else ()
        scrub(exc, route.provider, (api_key(pc), *org_secrets, *extra), prep.ctx.request_id)

    async def complete(self, prep: "Prepared") -> c.Response:
        return await self.unary(prep, lambda up, route: up.provider.complete(prep.req, route.model))

    async def unary(self, prep: "Prepared",
                    call: Callable[[Upstream, RouteConfig], Awaitable[T]]) -> T:
        """One whole result from the first route that gives one, each attempt under the
        route's deadline and the whole under the request's."""
        media = prep.op is not None and prep.op.kind in ("image", "video")

        # Bare cancel scopes rather than trio.fail_after: the same deadlines without a
        # generator-based context manager on every request (issue 18's profile).
        async def attempt(provider: Any, route: RouteConfig) -> T:
            up = Upstream(provider, self.media.client(route.provider) if media else None)
            try:
                with trio.CancelScope(
                        deadline=trio.current_time() + self._attempt_deadline(route)):
                    return await call(up, route)
            except trio.TooSlowError as exc:   # a deadline of the call's own
                raise upstream_timeout(exc) from None
            raise upstream_timeout(trio.TooSlowError())

        deadline = trio.current_time() + self.live.config.server.max_request_seconds
        if trio.current_effective_deadline() <= deadline:
            # An enclosing scope (the lean chat path's request deadline) ends this
            # request no later than this one would: it would never fire.
            return await self._each_route(prep, attempt)
        try:
            with trio.CancelScope(deadline=deadline):
                return await self._each_route(prep, attempt)
        except trio.TooSlowError as exc:
            raise upstream_timeout(exc) from None
        raise upstream_timeout(trio.TooSlowError())

    async def open(self, prep: "Prepared") -> tuple[AsyncIterator[c.StreamEvent], c.StreamEvent]:
        async def attempt(provider: Any, route: RouteConfig):
            events = provider.stream(prep.req, route.model)
            try:
                with trio.fail_after(self.live.config.provider(route.provider).read_timeout):
                    first = await events.__anext__()
            except BaseException as exc:
                with trio.CancelScope(shield=True):
                    await events.aclose()
                if isinstance(exc, StopAsyncIteration):
                    raise errors.UpstreamProtocolError("upstream sent an empty stream") from None
                if isinstance(exc, trio.TooSlowError):
                    raise upstream_timeout(exc) from None
                raise
            prep.timed_reads = getattr(provider, "timed_reads", False)
            return events, first

        events, first = await self._each_route(prep, attempt)
        return self._watch(events, prep, prep.route), first

    async def _watch(self, events: AsyncIterator[c.StreamEvent], prep: "Prepared",
                     route: RouteConfig) -> AsyncIterator[c.StreamEvent]:
        """Relay the rest of a stream, telling the route's breaker if it breaks mid-way
        (too late to fail over, but the next request should know)."""
        org = prep.ctx.org
        own = org is not None and self.orgs is not None and \
            self.orgs.provider(org, route.provider) is not None
        breaker = self.breaker(route, org.id if own else None)
        try:
            async for ev in events:
                yield ev
        except errors.PrismError as exc:
            self._scrub(exc, prep, route)
            if fails_over(exc):
                breaker.failure()
            raise
        finally:
            with trio.CancelScope(shield=True):
                await events.aclose()   # type: ignore[attr-defined]
