"""One request of a job (an async or scheduled completion, a batch line) through the
engine, settled together with the job's record of it.

The request is decoded with the route's own codec, admitted and dispatched by the
engine (Pipeline.prepare + Dispatcher for chat-like routes, Pipeline.submit for
embeddings), and its hold is closed here in one transaction with the guarded write that
records the result (store.jobs.settle_with). That is the only difference from the
synchronous path, and it is what makes a retried or restarted job unable to pay twice:
either the settlement and the record both happened, or neither did and the hold
expires. Failures before any output void the hold through Admission.close.

Batch lines pay ``multiplier`` times the list price (jobs.batch_price_multiplier).
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any, Callable

import trio

import store.jobs as sj
from gateway import canonical as c
from gateway import errors, tokenizer
from gateway.billing.meter import Meter
from gateway.billing.pricing import cost_micros
from gateway.billing.windows import plan_windows
from gateway.codecs import anthropic, embeddings, openai_chat, openai_completions, openai_responses
from gateway.engine.call import CallContext, Prepared
from gateway.inference import operations as ops
from gateway.inference.operations import Call, usable_routes

CHAT_ROUTES = ("/v1/chat/completions", "/v1/responses", "/v1/messages", "/v1/completions")
ROUTES = CHAT_ROUTES + ("/v1/embeddings",)
_SETTLE_DEADLINE = 10.0


@dataclass(frozen=True)
class Done:
    body: dict          # the response in the route's own dialect
    cost_micros: int
    request_id: str


def dialect_of(route: str) -> str:
    return "anthropic" if route == "/v1/messages" else "openai"


def decode(route: str, body: dict) -> Any:
    """The canonical request (a 400 when the body is wrong); checked at submission so a
    bad body is refused before anything is queued."""
    body = {k: v for k, v in body.items() if k not in ("async", "stream", "callback_url")}
    if route == "/v1/chat/completions":
        return openai_chat.to_canonical_request(body)
    if route == "/v1/messages":
        return anthropic.to_canonical_request(body)
    if route == "/v1/responses":
        if openai_responses.previous_response_id(body) is not None:
            raise errors.InvalidRequest("previous_response_id is not supported for queued "
                                        "requests", field="previous_response_id")
        return openai_responses.to_canonical_request(body)
    if route == "/v1/completions":
        return openai_completions.to_canonical_request(body)
    if route == "/v1/embeddings":
        return embeddings.openai_to_canonical(body)
    raise errors.InvalidRequest(f"{route} cannot be queued; use one of {', '.join(ROUTES)}",
                                field="url")


def _encode(route: str, body: dict, resp: c.Response, model: str, request_id: str,
            usage: c.Usage) -> dict:
    tail = request_id.removeprefix("req_")
    now = int(time.time())
    if route == "/v1/chat/completions":
        return openai_chat.from_canonical_response(
            dataclasses.replace(resp, created=resp.created or now), model)
    if route == "/v1/messages":
        return anthropic.from_canonical_response(
            dataclasses.replace(resp, id="msg_" + tail, usage=usage), model)
    if route == "/v1/responses":
        return openai_responses.from_canonical_response(
            resp, model=model, response_id="resp_" + tail, created_at=now,
            request_echo=openai_responses.request_echo(body))
    req = openai_completions.to_canonical_request(body)
    return openai_completions.from_canonical_response(
        resp, id="cmpl-" + tail, model=model, created=now,
        prefix=openai_completions.echo_prefix(body, req))


def _usage(resp: c.Response, req: c.Request) -> c.Usage:
    if resp.usage is not None:
        return resp.usage
    meter = Meter(lambda: tokenizer.count_request(req))
    for ev in c.response_events(resp):
        meter.delivered(ev)
    return meter.usage()


class JobCalls:
    """``render_error`` draws an error in a dialect's shape and ``embed_units`` measures
    an embeddings request (both the HTTP layer's own, handed in by server.py, so a queued
    request is refused and measured exactly as a synchronous one)."""

    def __init__(self, pipeline: Any, admission: Any, inference: Any, writer: Any, *,
                 render_error: Callable[[errors.PrismError, str], dict],
                 embed_units: Callable[[Any], int]) -> None:
        self.pipeline = pipeline
        self.admission = admission
        self.inference = inference
        self.writer = writer
        self.render_error = render_error
        self.embed_units = embed_units

    def error_body(self, err: BaseException, dialect: str) -> tuple[int, dict]:
        if not isinstance(err, errors.PrismError):
            err = errors.PrismError("internal error")
        return err.status, self.render_error(err, dialect)

    async def run(self, ctx: CallContext, route: str, body: dict, *, multiplier: float,
                  record: Callable[[Done], Callable[[Any], bool]]) -> Done:
        """Run one request and settle it with ``record(done)`` (a guarded write) in one
        transaction. Raises the engine's error when it failed (nothing charged), or
        store.jobs.LeaseLost when the job was no longer ours (hold voided)."""
        clean = {k: v for k, v in body.items() if k not in ("async", "stream", "callback_url")}
        req = decode(route, clean)
        ctx.model = req.model
        if route == "/v1/embeddings":
            return await self._embed(ctx, clean, req, multiplier, record)
        prep = await self.pipeline.prepare(ctx, req)
        try:
            resp = await self.pipeline.dispatcher.complete(prep)
            usage = resp.usage or await trio.to_thread.run_sync(_usage, resp, prep.req)
            model = prep.entry.model.id
            out = _encode(route, clean, resp, model, ctx.request_id, usage)
        except BaseException as exc:
            await self.admission.close(prep, None, exc)
            raise
        cost = int(cost_micros(prep.entry.price, usage) * multiplier)
        log = self._log(prep, cost, usage.input_tokens, usage.output_tokens)
        return await self._settle(prep, Done(out, cost, ctx.request_id), log, record, usage)

    async def _embed(self, ctx: CallContext, body: dict, req: Any, multiplier: float,
                     record: Callable[[Done], Callable[[Any], bool]]) -> Done:
        call = Call("embeddings", req, self.inference, units=self.embed_units(req))

        async def started(prep: Prepared) -> None:
            return None

        async def failed(prep: Prepared, exc: BaseException) -> None:
            await self.admission.close(prep, None, exc)

        result, prep = await self.pipeline.submit(
            ctx, ops.EMBEDDINGS, call, model=req.model, started=started, failed=failed,
            routes=lambda sel: usable_routes(call.clients, sel.entry, sel.routes, call.op,
                                             "embeddings"))
        units = ops.EMBEDDINGS.units_of(result)
        model = prep.entry.model.id
        if units <= 0:
            error = errors.UpstreamProtocolError("upstream returned nothing")
            await self.admission.close(prep, None, error)
            raise error
        cost = int(ops.EMBEDDINGS.pricing.cost_micros(prep.entry.model, units) * multiplier)
        out = embeddings.openai_from_canonical(result.value, model, embeddings.encoding_format(body))
        log = self._log(prep, cost, units, 0)
        return await self._settle(prep, Done(out, cost, ctx.request_id), log, record)

    def _log(self, prep: Prepared, cost: int, tin: int, tout: int) -> dict:
        route = prep.route or prep.selection.routes[0]
        log = self.admission.job_log(prep.ctx, model=prep.entry.model.id, provider=route.provider,
                                     upstream_model=route.model, error=None, cost=cost)
        log.update(tokens_in=tin, tokens_out=tout, failover=prep.failover,
                   mode=prep.selection.mode)
        return log

    async def _settle(self, prep: Prepared, done: Done, log: dict,
                      record: Callable[[Done], Callable[[Any], bool]],
                      usage: c.Usage | None = None) -> Done:
        ctx = prep.ctx
        ctx.logged = True
        # Shielded from here: the answer is in hand and paid for upstream, so a cancel
        # (the client's, the batch's, a shutdown) must not leave it unsettled.
        with trio.CancelScope(shield=True):
            with trio.fail_after(_SETTLE_DEADLINE):
                try:
                    plan = await self.admission.plan_for(ctx.account_id)
                    windows = plan_windows(plan, time.time()) if plan is not None else ()
                    closed = await self.writer.call(
                        sj.settle_with, prep.hold_id, done.cost_micros, log=log,
                        account_id=ctx.account_id, windows=windows, apply=record(done))
                except sj.LeaseLost:
                    await self.admission.close(prep, None, errors.UpstreamError(
                        "the job moved to another runner"))
                    raise
                except BaseException:
                    self.admission.forget(ctx.request_id)   # the hold stays for the sweeper
                    raise
                await self.admission.settled_elsewhere(ctx.request_id, usage)
        if not closed.result.already_closed:
            self.admission.notify({**log, "cost_micros": closed.result.charged_micros})
        return dataclasses.replace(done, cost_micros=closed.result.charged_micros)


__all__ = ["JobCalls", "Done", "decode", "dialect_of", "ROUTES", "CHAT_ROUTES"]
