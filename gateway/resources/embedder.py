"""How vector stores turn text into vectors: one narrow callable,

    await embed(account_id, model, texts, route) -> list of vectors (one per text)

`PipelineEmbed` is the only implementation: the engine's embeddings operation (select,
admit a hold on the account, dispatch with failover, settle once, shielded), the same
path as POST /v1/embeddings. Every ingestion batch and every search query is therefore
one billed, logged request of the account that owns the vector store; an account that
cannot pay gets the gateway's own error (InsufficientBalance and the rest).
"""
from __future__ import annotations

import secrets
from typing import Awaitable, Protocol

import trio

from gateway import canonical_ops as o
from gateway import errors, tokenizer
from gateway.engine.call import CallContext
from gateway.inference import operations as ops

# The request-log routes of embedding calls made on a customer's behalf.
INGEST_ROUTE = "/v1/vector_stores/files"
SEARCH_ROUTE = "/v1/vector_stores/search"


class Embed(Protocol):
    def __call__(self, account_id: str, model: str, texts: list[str],
                 route: str = ...) -> Awaitable[list[list[float]]]: ...


def _tokens(texts: list[str]) -> int:
    return sum(tokenizer.count_text(t) for t in texts)


class PipelineEmbed:
    def __init__(self, pipeline, admission, inference) -> None:
        self.pipeline = pipeline
        self.admission = admission
        self.inference = inference

    async def __call__(self, account_id: str, model: str, texts: list[str],
                       route: str = SEARCH_ROUTE) -> list[list[float]]:
        ctx = CallContext(request_id="req_" + secrets.token_hex(12), route=route,
                          dialect="openai", account_id=account_id, model=model)
        try:
            ctx.allowed_models = await self.admission.allowed_models(account_id)
            req = o.EmbedRequest(model=model, inputs=tuple(texts))
            # Counting a batch of chunks loads the tokenizer's tables: off the loop.
            units = await trio.to_thread.run_sync(_tokens, texts)
            call = ops.Call("embeddings", req, self.inference, units=max(units, 1))
            done, _ = await self.pipeline.unary(
                ctx, ops.EMBEDDINGS, call, model=model,
                routes=lambda sel: ops.usable_routes(call.clients, sel.entry, sel.routes,
                                                     "embeddings", "embeddings"))
        except errors.PrismError as err:
            if not ctx.logged:
                with trio.CancelScope(shield=True):
                    await self.pipeline.log_refusal(ctx, err)
            raise
        return [list(v) for v in done.value.vectors]
