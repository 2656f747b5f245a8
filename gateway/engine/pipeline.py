"""The dialect-independent request path, in one fixed order.

Blueprints decode their wire format into a canonical Request, hand it here, and encode
what comes back:

    select model and routes (router -> routing/select)
    -> prepend the session's history (sessions), when X-Prism-Session names one
    -> count the prompt
    -> admit: reserve the worst case, one guarded write (billing/admission)
    -> call the upstream (dispatch)            -> close: settle or void, shielded
    -> save the turn to the session, after a successful close only

Other operations take the same admission and close: `unary` (one call, one result),
`submit` (a long job closed by the job runner), `metered` (a call that names no catalog
model: an MCP tool, a remote agent, billed against a Target), and `hold` + `close` for a
call whose result arrives later on another channel (one realtime response).

Each step lives in its own module; this one only fixes their order and the rule that
every admitted request is closed exactly once, whatever happens in between.
"""
from __future__ import annotations

import dataclasses
import logging
from typing import Any, AsyncIterator, Awaitable, Callable

import trio

from gateway import canonical as c
from gateway import errors, tokenizer
from gateway.billing.meter import Meter
from gateway.routing import hosted
from gateway.engine.call import CallContext, OpenStream, Outcome, Prepared, RouteCheck, Target
from gateway.engine.operations import CHAT, Operation

from gateway.engine.admission import Admission
from gateway.engine.dispatch import Dispatcher
from gateway.engine.select import Router
from gateway.engine.sessions import Sessions

__all__ = ["CallContext", "Outcome", "Prepared", "OpenStream", "Pipeline", "Relay"]

log = logging.getLogger("prism.pipeline")

# Prompts longer than this are counted on a worker thread so the event loop keeps moving.
_THREAD_COUNT_CHARS = 200_000


def _meter(prep: Prepared) -> Meter:
    # prep.prompt_tokens is the hold's upper bound; an estimated bill counts exactly.
    return Meter(lambda: tokenizer.count_request(prep.req))


def _usage_of(resp: c.Response, prep: Prepared) -> c.Usage:
    if resp.usage is not None:
        return resp.usage
    meter = _meter(prep)
    for ev in c.response_events(resp):
        meter.delivered(ev)
    return meter.usage()


class Pipeline:
    def __init__(self, router: Router, sessions: Sessions, admission: Admission,
                 dispatcher: Dispatcher,
                 settled: Callable[[Prepared, Callable[[], str], Outcome], None] | None = None
                 ) -> None:
        """``settled(prep, output_text, outcome)`` hears of each chat call that settled
        (engine.shadow); it must be quick and must not raise. ``output_text`` is called
        only by a listener that wants the answer's text (a sampled shadow), so a stream's
        delivered text is not joined for every request."""
        self.router = router
        self.sessions = sessions
        self.admission = admission
        self.dispatcher = dispatcher
        self.settled = settled

    async def _count_prompt(self, req: c.Request) -> int:
        size = sum(len(p.text) for m in req.messages for p in m.parts if isinstance(p, c.TextPart))
        if size > _THREAD_COUNT_CHARS:
            return await trio.to_thread.run_sync(tokenizer.bound_request, req)
        return tokenizer.bound_request(req)

    async def prepare(self, ctx: CallContext, req: c.Request, capability: str = "chat",
                      routes: RouteCheck | None = None) -> Prepared:
        """Select and admit a chat request. ``routes`` is the capability a route asks
        for beyond the model's (a dialect-native feature only some upstreams keep)."""
        selection = await self.router.select(ctx, req, capability)
        if routes is not None:
            selection = dataclasses.replace(selection, routes=routes(selection))
        # The router's catalog is the live one (reload swaps it) and knows each
        # provider's kind already.
        req, selection = hosted.shape(req, selection, self.router.live.catalog.provider_kind)
        turn = None
        if ctx.hints is not None and ctx.hints.session:
            req, turn = await self.sessions.attach(ctx, req, self.complete)
        prep = Prepared(ctx, req, selection, await self._count_prompt(req), op=CHAT, turn=turn)
        prep.headers.update(selection.headers)
        try:
            await self.admission.admit(prep)
        except (errors.InsufficientBalance, errors.QuotaExceeded, errors.RateLimited):
            # Refused on the table-free bound: an exact count may still fit. Loading the
            # tables is paid only by requests that run into a limit.
            exact = await trio.to_thread.run_sync(tokenizer.count_request, req)
            if exact >= prep.prompt_tokens:
                raise
            prep.prompt_tokens = exact
            await self.admission.admit(prep)
        if prep.req.max_tokens is None:
            # The hold covers the model's output cap, so the upstream must be held to it
            # too (Anthropic would otherwise apply its own, possibly larger, default).
            prep.req = dataclasses.replace(prep.req, max_tokens=selection.entry.model.max_output_tokens)
        return prep

    async def log_refusal(self, ctx: CallContext, err: errors.PrismError) -> None:
        await self.admission.log_refusal(ctx, err)

    async def unary(self, ctx: CallContext, op: Operation, req: Any, *, model: str,
                    routes: RouteCheck | None = None) -> tuple[Any, Outcome]:
        """Serve one non-chat operation: select, admit, dispatch, close (exactly once),
        settling on the units the result carries (void when it carries none)."""
        prep = await self._admit_op(ctx, op, req, model, routes)
        try:
            result = await self.dispatcher.unary(
                prep, lambda up, route: op.call(up, req, route))   # type: ignore[misc]
            units = op.units_of(result)
        except BaseException as exc:
            await self.admission.close(prep, None, exc)
            raise
        if units <= 0:
            error = errors.UpstreamProtocolError(
                f"upstream {prep.route.provider if prep.route else ''} returned nothing")
            await self.admission.close(prep, None, error)
            raise error
        return result, await self.admission.close(prep, op.usage_of(result), None, units=units)

    async def _admit_op(self, ctx: CallContext, op: Operation, req: Any, model: str,
                        routes: RouteCheck | None) -> Prepared:
        ctx.model = model
        selection = self.router.select_for(ctx, op, model)
        if routes is not None:
            selection = dataclasses.replace(selection, routes=routes(selection))
        op.unit_price(selection.entry)
        prep = Prepared(ctx, req, selection, 0, op=op, units=op.hold_units(req))
        await self.admission.admit(prep)
        return prep

    async def hold(self, ctx: CallContext, op: Operation, req: Any, *, model: str | None = None,
                   target: Target | None = None, routes: RouteCheck | None = None) -> Prepared:
        """Admit a call whose result arrives later and elsewhere (one realtime response
        on a session's socket, a proxied agent's stream): the caller ends it with
        ``close``, shielded, exactly once. It names a catalog ``model`` (and routes, of
        which the first is the one called) or a ``target`` with no model. No HTTP layer
        stands behind these callers, so a refusal is logged here."""
        try:
            if target is None:
                prep = await self._admit_op(ctx, op, req, model or "", routes)
                prep.route = prep.selection.routes[0]
                return prep
            ctx.model = target.name
            prep = Prepared(ctx, req, None, 0, op=op, units=op.hold_units(req), target=target)
            await self.admission.admit(prep)
            return prep
        except errors.ClientError as err:
            await self.admission.log_refusal(ctx, err)
            raise

    async def close(self, prep: Prepared, usage: c.Usage | None, error: BaseException | None,
                    *, units: int | None = None) -> Outcome:
        """End a held call: settle on ``units`` (void when none), log it, tell the
        observers; shielded, and a second close changes nothing."""
        return await self.admission.close(prep, usage, error, units=units)

    async def metered(self, ctx: CallContext, op: Operation, req: Any, *, target: Target,
                      call: Callable[[], Awaitable[Any]]) -> tuple[Any, Outcome]:
        """One call that names no model (an MCP tool, a remote agent's answer): admit,
        run ``call``, settle on op.units_of(result) or void when it raised."""
        prep = await self.hold(ctx, op, req, target=target)
        try:
            result = await call()
            units = op.units_of(result)
        except BaseException as exc:
            await self.admission.close(prep, None, exc)
            raise
        return result, await self.admission.close(prep, op.usage_of(result), None, units=units)

    async def submit(self, ctx: CallContext, op: Operation, req: Any, *, model: str,
                     routes: RouteCheck | None = None,
                     started: Callable[[Prepared], Awaitable[None]],
                     failed: Callable[[Prepared, BaseException], Awaitable[None]]
                     ) -> tuple[Any, Prepared]:
        """Admit and start a long job (video): the hold outlives this call and the job's
        own close (engine/jobs) settles or voids it when the job ends. ``started``
        records the job before the upstream sees it; ``failed`` ends it (shielded) when
        no route would take it."""
        prep = await self._admit_op(ctx, op, req, model, routes)
        self.admission.forget(ctx.request_id)
        ctx.logged = True   # the job's close writes the log row, when it ends
        await started(prep)
        try:
            result = await self.dispatcher.unary(
                prep, lambda up, route: op.call(up, req, route))   # type: ignore[misc]
        except BaseException as exc:
            with trio.CancelScope(shield=True):
                await failed(prep, exc)
            raise
        return result, prep

    async def complete(self, ctx: CallContext, req: c.Request,
                       routes: RouteCheck | None = None) -> tuple[c.Response, Outcome]:
        prep = await self.prepare(ctx, req, routes=routes)
        try:
            resp = await self.dispatcher.complete(prep)
        except BaseException as exc:
            await self.admission.close(prep, None, exc)
            raise
        self._served(prep)
        # A SettleFailed from close means the hold was voided: it propagates, and the
        # client's error matches a bill of nothing.
        usage = resp.usage
        if usage is None:   # estimated: counting may load the tables, so off the loop
            usage = await trio.to_thread.run_sync(_usage_of, resp, prep)
        outcome = await self.admission.close(prep, usage, None)
        if prep.turn is not None:
            await self._save_turn(prep, resp.message)
        if self.settled is not None:
            self.settled(prep, lambda: resp.message.text, outcome)
        return resp, outcome

    def _served(self, prep: Prepared) -> None:
        """Report what the route that answered left out: dispatch may have failed over
        from the first route, which keeps the request's hosted tools, to one that drops
        them."""
        kind = self.router.live.catalog.provider_kind(prep.route) if prep.route else None
        dropped = hosted.dropped_header(prep.req, kind)
        if dropped:
            prep.headers[hosted.DROPPED_TOOLS] = dropped
        else:
            prep.headers.pop(hosted.DROPPED_TOOLS, None)

    async def _save_turn(self, prep: Prepared, message: Any) -> None:
        """Session memory after a settled answer. The client has paid for this answer
        and will receive it; a turn that cannot be saved is the operator's problem (it
        is logged), not a reason to answer an error for something billed."""
        try:
            await self.sessions.save(prep, message)
        except Exception:
            log.exception("request %s: could not save the session turn", prep.ctx.request_id)

    async def open_stream(self, ctx: CallContext, req: c.Request,
                          routes: RouteCheck | None = None) -> OpenStream:
        """Admit and pull the upstream's first event, so failures before the first byte
        still become a proper error response rather than a broken 200 stream. The
        result's ``headers`` are what the stream's response starts with."""
        prep = await self.prepare(ctx, req, routes=routes)
        try:
            events, first = await self.dispatcher.open(prep)
        except BaseException as exc:
            await self.admission.close(prep, None, exc)
            raise
        self._served(prep)
        return OpenStream(prep, events, first, _meter(prep))

    def stream_body(self, st: OpenStream, encode: Callable[[c.StreamEvent], bytes],
                    trailer: Callable[[Outcome], bytes],
                    error_frame: Callable[[errors.PrismError], bytes]) -> "Relay":
        """Relay events to the client, metering what each write delivered.

        An event counts as delivered once the server took its bytes; a client that hangs
        up is billed for the prompt plus those events. Usage the upstream reports after
        the client left is not awaited: we stop reading at once. Closing the relay before
        its first read (the client left while the headers were being sent) still ends
        the hold.
        """
        return Relay(self._relay(st, encode, trailer, error_frame),
                     lambda: self._end(st, _Abandoned()))

    async def _relay(self, st: OpenStream, encode: Callable[[c.StreamEvent], bytes],
                     trailer: Callable[[Outcome], bytes],
                     error_frame: Callable[[errors.PrismError], bytes]) -> AsyncIterator[bytes]:
        error: BaseException | None = None
        idle = self.dispatcher.read_timeout(st.prep)
        timed = st.prep.timed_reads
        try:
            ev = st.first
            while True:
                data = encode(ev)
                if data:
                    yield data
                st.meter.delivered(ev)
                if st.prep.turn is not None:
                    st.prep.turn.observe(ev)
                if timed:
                    # Every wait in the provider's stream is a network read under its
                    # read timeout (the same `idle`): that deadline already applies.
                    try:
                        ev = await st.events.__anext__()
                    except StopAsyncIteration:
                        break
                    continue
                # The deadline wraps only the read: a cancel scope must never span a yield.
                # A bare scope, not trio.fail_after: this runs once per relayed event.
                with trio.CancelScope(deadline=trio.current_time() + idle) as quiet:
                    try:
                        ev = await st.events.__anext__()
                    except StopAsyncIteration:
                        break
                if quiet.cancelled_caught:
                    raise trio.TooSlowError
        except (errors.PrismError, trio.TooSlowError) as exc:
            # Mid-stream upstream failure: headers are gone, so say it in-band.
            error = exc if isinstance(exc, errors.PrismError) else errors.UpstreamTimeout(
                "upstream went quiet mid-stream")
            yield error_frame(error)
        except BaseException as exc:
            error = exc
            raise
        finally:
            settle_error = await self._end(st, error)
        if error is None:
            yield trailer(st.outcome) if settle_error is None else error_frame(settle_error)
            if settle_error is None and self.settled is not None and st.outcome is not None:
                self.settled(st.prep, lambda: st.meter.delivered_text, st.outcome)

    async def _end(self, st: OpenStream, error: BaseException | None) -> errors.SettleFailed | None:
        """Close an open stream's upstream and its hold, once; the SettleFailed that
        voided it instead, if any."""
        with trio.CancelScope(shield=True):
            await st.events.aclose()
        # Only an upstream failure before any output costs the client nothing. A client
        # that leaves mid-stream pays for the prompt the upstream consumed plus what
        # reached it.
        failed_early = (isinstance(error, errors.PrismError) and not st.meter.produced_output
                        and st.meter.upstream_usage is None)
        usage = None
        if not failed_early:
            usage = st.meter.upstream_usage
            if usage is None:   # estimated: counting may load the tables
                with trio.CancelScope(shield=True):
                    usage = await trio.to_thread.run_sync(st.meter.usage)
        try:
            st.outcome = await self.admission.close(st.prep, usage, error)
        except errors.SettleFailed as exc:
            # Voided, not settled: the stream ends in an error instead of a bill.
            return exc
        if error is None and st.prep.turn is not None:
            await self._save_turn(st.prep, None)
        return None


class _Abandoned(Exception):
    """The client left before the stream's first byte was read (logged as a 499)."""


class Relay:
    """The body of an open stream: an async iterator of the bytes to send.

    An async generator that was never iterated runs no ``finally`` when closed, so a
    client that hangs up between admission and the first read would leave its hold open
    until the sweeper. Closing the relay first ends the stream itself in that case."""
    __slots__ = ("_gen", "_abandon", "_started")

    def __init__(self, gen: AsyncIterator[bytes],
                 abandon: Callable[[], Awaitable[Any]]) -> None:
        self._gen = gen
        self._abandon = abandon
        self._started = False

    def __aiter__(self) -> "Relay":
        return self

    async def __anext__(self) -> bytes:
        self._started = True
        return await self._gen.__anext__()

    async def aclose(self) -> None:
        if not self._started:
            self._started = True
            with trio.CancelScope(shield=True):
                await self._abandon()
        await self._gen.aclose()

    def __del__(self) -> None:
        # Dropped unread and unclosed (a server that never sent the body): end it in a
        # system task, as trio finalizes an abandoned async generator.
        if not self._started:
            self._started = True
            try:
                trio.lowlevel.spawn_system_task(self._abandon_logged)
            except RuntimeError:
                pass   # no trio run left: the sweeper expires the hold

    async def _abandon_logged(self) -> None:
        try:
            await self._abandon()
        except Exception:
            log.exception("closing an abandoned stream failed")
