"""The dialect-independent request path, in one fixed order.

Blueprints decode their wire format into a canonical Request, hand it here, and encode
what comes back:

    select model and routes (router -> routing/select)
    -> prepend the session's history (sessions), when X-Prism-Session names one
    -> count the prompt
    -> admit: reserve the worst case, one guarded write (billing/admission)
    -> call the upstream (dispatch)            -> close: settle or void, shielded
    -> save the turn to the session, after a successful close only

Each step lives in its own module; this one only fixes their order and the rule that
every admitted request is closed exactly once, whatever happens in between.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, AsyncIterator, Callable

import trio

from gateway import canonical as c
from gateway import errors, tokenizer
from gateway.billing.admission import Outcome
from gateway.billing.meter import Meter
from gateway.config import RouteConfig
from gateway.routing.hints import RoutingHints
from gateway.routing.select import Selection

if TYPE_CHECKING:
    from gateway.services import Services

__all__ = ["CallContext", "Outcome", "Prepared", "OpenStream", "Pipeline"]

# Prompts longer than this are measured on a worker thread so the event loop keeps moving.
_THREAD_COUNT_CHARS = 200_000


@dataclass
class CallContext:
    request_id: str
    route: str
    dialect: str
    account_id: str = ""
    key_id: str | None = None
    model: str | None = None
    started: float = field(default_factory=time.monotonic)
    logged: bool = False   # the request-log row is written once, by whoever ends the request
    # X-Prism-Mode / -Model-Prefer / -Session, parsed by http/common.authenticate.
    hints: RoutingHints | None = None
    # Plan hook: when set (by whoever knows the caller's plan), the model ids this
    # caller may use; routing never picks outside it and refuses pins outside it (403).
    allowed_models: frozenset[str] | None = None
    # Dialect hook: when set, given the Selection before admission, returns the routes
    # that can serve this request, in order, or raises a ClientError when none can, so
    # a dialect-native feature never fails over to an upstream that would drop it.
    route_filter: Callable[[Selection], tuple[RouteConfig, ...]] | None = None
    prepared: Any = None   # the Prepared request once selected: stream headers read it


@dataclass
class Prepared:
    """One admitted request on its way through the pipeline."""
    ctx: CallContext
    req: c.Request
    selection: Selection
    prompt_tokens: int
    hold_id: str = ""
    route: RouteConfig | None = None     # the route actually called (set by dispatch)
    failover: bool = False
    headers: dict[str, str] = field(default_factory=dict)   # extra response headers
    turn: Any = None    # sessions.Turn when the request belongs to a session

    @property
    def entry(self):
        return self.selection.entry


@dataclass
class OpenStream:
    prep: Prepared
    events: AsyncIterator[c.StreamEvent]
    first: c.StreamEvent
    meter: Meter
    outcome: Outcome | None = None


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
    def __init__(self, services: "Services") -> None:
        self.s = services

    async def _count_prompt(self, req: c.Request) -> int:
        # The hold needs a bound, not a count: no tokenizer tables on the hot path.
        size = sum(len(p.text) for m in req.messages for p in m.parts if isinstance(p, c.TextPart))
        if size > _THREAD_COUNT_CHARS:
            return await trio.to_thread.run_sync(tokenizer.bound_request, req)
        return tokenizer.bound_request(req)

    async def prepare(self, ctx: CallContext, req: c.Request, capability: str = "chat") -> Prepared:
        selection = await self.s.router.select(ctx, req, capability)
        if ctx.route_filter is not None:
            selection = dataclasses.replace(selection, routes=ctx.route_filter(selection))
        turn = None
        if ctx.hints is not None and ctx.hints.session:
            req, turn = await self.s.sessions.attach(ctx, req)
        prep = Prepared(ctx, req, selection, await self._count_prompt(req), turn=turn)
        prep.headers.update(selection.headers)
        ctx.prepared = prep
        try:
            await self.s.admission.admit(prep)
        except (errors.InsufficientBalance, errors.QuotaExceeded, errors.RateLimited):
            # Refused on the table-free bound: an exact count may still fit. Loading the
            # tables is paid only by requests that run into a limit.
            exact = await trio.to_thread.run_sync(tokenizer.count_request, req)
            if exact >= prep.prompt_tokens:
                raise
            prep.prompt_tokens = exact
            await self.s.admission.admit(prep)
        if prep.req.max_tokens is None:
            # The hold covers the model's output cap, so the upstream must be held to it
            # too (Anthropic would otherwise apply its own, possibly larger, default).
            prep.req = dataclasses.replace(prep.req, max_tokens=selection.entry.model.max_output_tokens)
        return prep

    async def log_refusal(self, ctx: CallContext, err: errors.PrismError) -> None:
        await self.s.admission.log_refusal(ctx, err)

    async def complete(self, ctx: CallContext, req: c.Request) -> tuple[c.Response, Outcome]:
        prep = await self.prepare(ctx, req)
        try:
            resp = await self.s.dispatcher.complete(prep)
        except BaseException as exc:
            await self.s.admission.close(prep, None, exc)
            raise
        usage = resp.usage
        if usage is None:   # estimated: counting may load the tables, so off the loop
            usage = await trio.to_thread.run_sync(_usage_of, resp, prep)
        outcome = await self.s.admission.close(prep, usage, None)
        if prep.turn is not None:
            await self.s.sessions.save(prep, resp.message)
        return resp, outcome

    async def open_stream(self, ctx: CallContext, req: c.Request) -> OpenStream:
        """Admit and pull the upstream's first event, so failures before the first byte
        still become a proper error response rather than a broken 200 stream."""
        prep = await self.prepare(ctx, req)
        try:
            events, first = await self.s.dispatcher.open(prep)
        except BaseException as exc:
            await self.s.admission.close(prep, None, exc)
            raise
        return OpenStream(prep, events, first, _meter(prep))

    async def stream_body(self, st: OpenStream, encode: Callable[[c.StreamEvent], bytes],
                          trailer: Callable[[Outcome], bytes],
                          error_frame: Callable[[errors.PrismError], bytes]) -> AsyncIterator[bytes]:
        """Relay events to the client, metering what each write delivered.

        An event counts as delivered once the server took its bytes; a client that hangs
        up is billed for the prompt plus those events. Usage the upstream reports after
        the client left is not awaited: we stop reading at once.
        """
        error: BaseException | None = None
        idle = self.s.dispatcher.read_timeout(st.prep)
        try:
            ev = st.first
            while True:
                data = encode(ev)
                if data:
                    yield data
                st.meter.delivered(ev)
                if st.prep.turn is not None:
                    st.prep.turn.observe(ev)
                # The deadline wraps only the read: a cancel scope must never span a yield.
                with trio.fail_after(idle):
                    try:
                        ev = await st.events.__anext__()
                    except StopAsyncIteration:
                        break
        except (errors.PrismError, trio.TooSlowError) as exc:
            # Mid-stream upstream failure: headers are gone, so say it in-band.
            error = exc if isinstance(exc, errors.PrismError) else errors.UpstreamTimeout(
                "upstream went quiet mid-stream")
            yield error_frame(error)
        except BaseException as exc:
            error = exc
            raise
        finally:
            with trio.CancelScope(shield=True):
                await st.events.aclose()
            # Only an upstream failure before any output costs the client nothing. A
            # client that leaves mid-stream pays for the prompt the upstream consumed
            # plus what reached it.
            failed_early = (isinstance(error, errors.PrismError) and not st.meter.produced_output
                            and st.meter.upstream_usage is None)
            usage = None
            if not failed_early:
                usage = st.meter.upstream_usage
                if usage is None:   # estimated: counting may load the tables
                    with trio.CancelScope(shield=True):
                        usage = await trio.to_thread.run_sync(st.meter.usage)
            st.outcome = await self.s.admission.close(st.prep, usage, error)
            if error is None and st.prep.turn is not None:
                await self.s.sessions.save(st.prep, None)
        if error is None:
            yield trailer(st.outcome)
