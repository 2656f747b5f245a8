"""How vector stores turn text into vectors: one narrow callable,

    await embed(account_id, model, texts) -> list of vectors (one per text)

billed to `account_id` by whoever implements it. `local_embed` is the built-in model
"local" (hashed bag of words, search_logic.hashed_embedding): no upstream, no charge.
An engine-backed implementation (the embeddings operation) plugs in at the same place.
"""
from __future__ import annotations

from typing import Awaitable, Protocol

import trio

from gateway.resources.search_logic import hashed_embedding

LOCAL_MODEL = "local"


class Embed(Protocol):
    def __call__(self, account_id: str, model: str,
                 texts: list[str]) -> Awaitable[list[list[float]]]: ...


async def local_embed(account_id: str, model: str, texts: list[str]) -> list[list[float]]:
    return await trio.to_thread.run_sync(lambda: [hashed_embedding(t) for t in texts],
                                         abandon_on_cancel=True)


def dispatching(engine_embed: Embed | None) -> Embed:
    """"local" here; any other model through the engine (billed), when one is wired."""
    async def embed(account_id: str, model: str, texts: list[str]) -> list[list[float]]:
        if model == LOCAL_MODEL:
            return await local_embed(account_id, model, texts)
        if engine_embed is None:
            raise EmbeddingUnavailable(f"embedding model {model!r} is not available")
        return await engine_embed(account_id, model, texts)
    return embed


class EmbeddingUnavailable(Exception):
    pass
