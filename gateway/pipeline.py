"""The dialect-independent request path: resolve, reserve, call upstream, settle.

Blueprints decode their wire format into a canonical Request, hand it here, and encode
what comes back. Everything that touches money happens in this module, in one order:

    resolve model -> count prompt -> reserve worst case (one guarded write)
    -> upstream call -> settle to real usage, or void (one write, shielded)

The settle/void write runs under a shielded cancel scope with its own deadline, so a
client hanging up, a timeout or a gateway shutdown cannot leave a hold open.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, AsyncIterator, Callable

import trio

from gateway import canonical as c
from gateway import errors, tokenizer
from gateway.billing.meter import Meter
from gateway.billing.pricing import cost_micros, worst_case_micros
from gateway.config import RouteConfig
from gateway.routing.catalog import Entry

if TYPE_CHECKING:
    from gateway.providers.base import Provider
    from gateway.services import Services

# Settling is one local SQLite write; if it cannot finish in this long something is
# badly wrong, and the sweeper will expire the hold instead.
_SETTLE_DEADLINE = 10.0
# Prompts longer than this are counted on a worker thread so the event loop keeps moving.
_THREAD_COUNT_CHARS = 200_000


class PriceMissing(errors.InsufficientBalance):
    """A model with no price is refused, never served free."""


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


@dataclass(frozen=True)
class Outcome:
    """What the response headers report about a finished call."""
    model: str
    cost_micros: int
    tokens_in: int
    tokens_out: int
    estimated: bool = False
    failover: bool = False


@dataclass
class Prepared:
    ctx: CallContext
    req: c.Request
    entry: Entry
    route: RouteConfig
    provider: "Provider"
    prompt_tokens: int
    hold_id: str


@dataclass
class OpenStream:
    prep: Prepared
    events: AsyncIterator[c.StreamEvent]
    first: c.StreamEvent
    meter: Meter
    outcome: Outcome | None = None


def _upstream_failure(exc: BaseException) -> BaseException:
    if isinstance(exc, trio.TooSlowError):
        return errors.UpstreamTimeout("upstream did not answer within the request deadline")
    return exc


class Pipeline:
    def __init__(self, services: "Services") -> None:
        self.s = services

    # ------------------------------------------------------------ admission

    async def _count_prompt(self, req: c.Request) -> int:
        size = sum(len(p.text) for m in req.messages for p in m.parts if isinstance(p, c.TextPart))
        if size > _THREAD_COUNT_CHARS:
            return await trio.to_thread.run_sync(tokenizer.count_request, req)
        return tokenizer.count_request(req)

    async def prepare(self, ctx: CallContext, req: c.Request, capability: str = "chat") -> Prepared:
        entry = self.s.catalog.resolve(req.model)
        model = entry.model
        if capability not in model.capabilities:
            raise errors.InvalidRequest(f"The model {req.model!r} does not support {capability}",
                                        field="model")
        if entry.price is None:
            raise PriceMissing(f"The model {req.model!r} has no token price configured; "
                               f"the gateway refuses to serve it unbilled", code="price_missing")
        if req.max_tokens is not None and req.max_tokens > model.max_output_tokens:
            raise errors.InvalidRequest(
                f"max_tokens is {req.max_tokens}, above the model's output limit of "
                f"{model.max_output_tokens}", field="max_tokens")
        routes = self.s.catalog.routes(model)
        route = routes[0]
        provider = self.s.providers[route.provider]
        prompt_tokens = await self._count_prompt(req)
        hold = worst_case_micros(entry.price, prompt_tokens, req.max_tokens or model.max_output_tokens)
        # Shielded: a reserve that completes after its caller stopped waiting would leave
        # a hold nobody ends. Any pending cancel lands at the caller's next checkpoint,
        # inside the try that voids the hold.
        with trio.CancelScope(shield=True):
            hold_id = await self.s.ledger.reserve(ctx.account_id, ctx.request_id, hold)
        return Prepared(ctx, req, entry, route, provider, prompt_tokens, hold_id)

    # ------------------------------------------------------------ settlement

    async def log_refusal(self, ctx: CallContext, err: errors.PrismError) -> None:
        """The log row of a request refused before any hold was taken."""
        ctx.logged = True
        with trio.CancelScope(shield=True):
            await self._record_only(dict(
                request_id=ctx.request_id, key_id=ctx.key_id, account_id=ctx.account_id or None,
                route=ctx.route, dialect=ctx.dialect, model=ctx.model, provider=None,
                upstream_model=None, status=err.status, error_type=err.type_name,
                latency_ms=(time.monotonic() - ctx.started) * 1000.0, tokens_in=0, tokens_out=0,
                cached_tokens=0, cost_micros=0, estimated=False, failover=False, stream=False))

    async def _record_only(self, log: dict[str, Any]) -> None:
        await self.s.ledger.log_only(log)
        self.s.notify(log)

    def _log(self, prep: Prepared, *, status: int, error: BaseException | None,
             usage: c.Usage | None, cost: int) -> dict[str, Any]:
        ctx = prep.ctx
        return dict(
            request_id=ctx.request_id, key_id=ctx.key_id, account_id=ctx.account_id,
            route=ctx.route, dialect=ctx.dialect, model=prep.entry.model.id,
            provider=prep.route.provider, upstream_model=prep.route.model, status=status,
            error_type=(error.type_name if isinstance(error, errors.PrismError)
                        else type(error).__name__ if error is not None else None),
            latency_ms=(time.monotonic() - ctx.started) * 1000.0,
            tokens_in=usage.input_tokens if usage else 0,
            tokens_out=usage.output_tokens if usage else 0,
            cached_tokens=usage.cached_input_tokens if usage else 0,
            cost_micros=cost, estimated=bool(usage and usage.estimated), failover=False,
            stream=prep.req.stream,
        )

    async def _close(self, prep: Prepared, usage: c.Usage | None,
                     error: BaseException | None) -> Outcome:
        """End the hold exactly once: settle on usage, void when nothing was produced."""
        prep.ctx.logged = True
        with trio.CancelScope(shield=True):
            with trio.move_on_after(_SETTLE_DEADLINE):
                if usage is None:
                    status = error.status if isinstance(error, errors.PrismError) else 499
                    log = self._log(prep, status=status, error=error, usage=None, cost=0)
                    await self.s.ledger.void(prep.hold_id, log=log)
                    self.s.notify(log)
                    return Outcome(prep.entry.model.id, 0, 0, 0)
                cost = cost_micros(prep.entry.price, usage)
                status = 200 if error is None else (
                    error.status if isinstance(error, errors.PrismError) else 499)
                log = self._log(prep, status=status, error=error, usage=usage, cost=cost)
                result = await self.s.ledger.settle(prep.hold_id, cost, estimated=usage.estimated,
                                                    log=log)
                self.s.notify({**log, "cost_micros": result.charged_micros})
                return Outcome(prep.entry.model.id, result.charged_micros, usage.input_tokens,
                               usage.output_tokens, usage.estimated)
        # Deadline passed: the hold stays open for the sweeper to expire.
        return Outcome(prep.entry.model.id, 0, 0, 0)

    # ------------------------------------------------------------ calls

    def _read_timeout(self, prep: Prepared) -> float:
        return self.s.config.provider(prep.route.provider).read_timeout

    async def complete(self, ctx: CallContext, req: c.Request) -> tuple[c.Response, Outcome]:
        prep = await self.prepare(ctx, req)
        try:
            with trio.fail_after(self.s.config.server.max_request_seconds):
                resp = await prep.provider.complete(req, prep.route.model)
        except BaseException as exc:
            await self._close(prep, None, exc)
            if isinstance(exc, trio.TooSlowError):
                raise _upstream_failure(exc) from None
            raise
        usage = resp.usage
        if usage is None:
            meter = Meter(prep.prompt_tokens)
            for ev in c.response_events(resp):
                meter.delivered(ev)
            usage = meter.usage()
        outcome = await self._close(prep, usage, None)
        return resp, outcome

    async def open_stream(self, ctx: CallContext, req: c.Request) -> OpenStream:
        """Reserve and pull the upstream's first event, so failures before the first byte
        still become a proper error response rather than a broken 200 stream."""
        prep = await self.prepare(ctx, req)
        events = prep.provider.stream(req, prep.route.model)
        try:
            with trio.fail_after(self._read_timeout(prep)):
                first = await events.__anext__()
        except BaseException as exc:
            with trio.CancelScope(shield=True):
                await events.aclose()
            await self._close(prep, None, exc)
            if isinstance(exc, StopAsyncIteration):
                raise errors.UpstreamProtocolError("upstream sent an empty stream") from None
            if isinstance(exc, trio.TooSlowError):
                raise _upstream_failure(exc) from None
            raise
        return OpenStream(prep, events, first, Meter(prep.prompt_tokens))

    async def stream_body(self, st: OpenStream, encode: Callable[[c.StreamEvent], bytes],
                          trailer: Callable[[Outcome], bytes],
                          error_frame: Callable[[errors.PrismError], bytes]) -> AsyncIterator[bytes]:
        """Relay events to the client, metering what each write delivered.

        An event counts as delivered once the server took its bytes; a client that hangs
        up is billed for the prompt plus those events. Usage the upstream reports after
        the client left is not awaited: we stop reading at once.
        """
        error: BaseException | None = None
        idle = self._read_timeout(st.prep)
        try:
            ev = st.first
            while True:
                data = encode(ev)
                if data:
                    yield data
                st.meter.delivered(ev)
                # The deadline wraps only the read: a cancel scope must never span a yield.
                with trio.fail_after(idle):
                    try:
                        ev = await st.events.__anext__()
                    except StopAsyncIteration:
                        break
        except (errors.PrismError, trio.TooSlowError) as exc:
            # Mid-stream upstream failure: headers are gone, so say it in-band.
            error = _upstream_failure(exc)
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
            usage = None if failed_early else st.meter.usage()
            st.outcome = await self._close(st.prep, usage, error)
        if error is None:
            yield trailer(st.outcome)
