"""Idempotency keys for generation routes, as the HTTP layer uses them: claim a key for
a request, then complete it with the response or release it (store/idempotency.py says
what each state means).

The store's answers become the client's errors here (the key reused for another body:
422; its request still running: 409 with Retry-After). Completing and releasing run
shielded with their own short deadline: they follow a response that was already
produced and billed, or a failure on its way to the client, and neither may be cut
short by the client leaving.
"""
from __future__ import annotations

import math
import time
from typing import Any, Callable

import trio

import store.idempotency as idem
from gateway import errors

Claim = idem.Claim
Stored = idem.Stored

_CLOSE_DEADLINE = 10.0


class Idempotency:
    def __init__(self, writer: Any, lease_seconds: Callable[[], float]) -> None:
        """``lease_seconds`` is read per claim (a reload may change the request deadline
        it derives from)."""
        self.writer = writer     # store.Writer
        self.lease_seconds = lease_seconds

    async def claim(self, account_id: str, key: str, body_hash: str, request_id: str) -> Claim:
        try:
            return await self.writer.call(idem.claim, account_id, key, body_hash,
                                          request_id=request_id,
                                          lease_seconds=self.lease_seconds())
        except idem.KeyReused:
            raise errors.IdempotencyKeyReused(
                f"The Idempotency-Key {key!r} was already used with a different request body "
                "in the last 24 hours; use a new key for a new request") from None
        except idem.InProgress as busy:
            wait = max(1, min(5, math.ceil(busy.lease_until - time.time())))
            raise errors.IdempotencyInProgress(
                f"A request with Idempotency-Key {key!r} is still in progress; retry when it "
                "has finished to get its response", headers={"Retry-After": str(wait)}) from None

    async def release(self, account_id: str, key: str, token: str) -> None:
        await self._shielded(idem.release, account_id, key, token)

    async def complete(self, account_id: str, key: str, token: str, *, status: int,
                       headers: list[tuple[str, str]], body: bytes,
                       complete: bool = True) -> None:
        await self._shielded(idem.complete, account_id, key, token, status=status,
                             headers=headers, body=body, complete=complete)

    async def _shielded(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        with trio.CancelScope(shield=True):
            with trio.move_on_after(_CLOSE_DEADLINE):
                await self.writer.call(fn, *args, **kwargs)
