"""The one way resources call a chat model: through the gateway's own request path
(selection, admission hold, dispatch with failover, shielded settlement), so an
assistant run is admitted, routed and billed exactly like a chat request from the
same account, one request-log row and one settlement per model call.

    await chat(account_id, req, on_event) -> (response, outcome)

`on_event` sees each canonical stream event as it arrives (runs turn text deltas into
thread.message.delta events). Errors are the gateway's own (errors.PrismError).
"""
from __future__ import annotations

import secrets
from typing import AsyncIterator, Awaitable, Callable, Protocol

from gateway import canonical as c
from gateway import errors
from gateway.engine.call import CallContext, OpenStream, Outcome

ROUTE = "/v1/threads/runs"


class Chat(Protocol):
    def __call__(self, account_id: str, req: c.Request,
                 on_event: Callable[[c.StreamEvent], None]) -> Awaitable[tuple[c.Response, Outcome]]: ...


class PipelineChat:
    def __init__(self, pipeline, admission) -> None:
        self.pipeline = pipeline
        self.admission = admission

    async def open(self, account_id: str, req: c.Request) -> OpenStream:
        """Admit one streamed model call and pull its first event (a refusal is logged
        and raised here, before anything was sent)."""
        ctx = CallContext(request_id="req_" + secrets.token_hex(12), route=ROUTE,
                          dialect="openai", account_id=account_id, model=req.model)
        ctx.allowed_models = await self.admission.allowed_models(account_id)
        try:
            return await self.pipeline.open_stream(ctx, req)
        except errors.PrismError as err:
            if not ctx.logged:
                await self.pipeline.log_refusal(ctx, err)
            raise

    def relay(self, st: OpenStream, encode: Callable[[c.StreamEvent], bytes],
              error_frame: Callable[[errors.PrismError], bytes]) -> AsyncIterator[bytes]:
        """The engine's relay of an opened call: meters what `encode` was given and
        settles once, shielded, however it ends (st.outcome then says what was billed)."""
        return self.pipeline.stream_body(st, encode, lambda o: b"", error_frame)

    async def __call__(self, account_id: str, req: c.Request,
                       on_event: Callable[[c.StreamEvent], None]) -> tuple[c.Response, Outcome]:
        st = await self.open(account_id, req)
        events: list[c.StreamEvent] = []
        failure: list[errors.PrismError] = []

        def keep(ev: c.StreamEvent) -> bytes:
            events.append(ev)
            on_event(ev)
            return b""

        def fail(err: errors.PrismError) -> bytes:
            failure.append(err)
            return b""

        # A cancelled run pays for what it consumed.
        async for _ in self.relay(st, keep, fail):
            pass
        if failure:
            raise failure[0]
        return c.collect_stream(events), st.outcome
