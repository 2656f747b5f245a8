"""Reserve-then-settle over the store, as the request path sees it.

Each call is one transaction on the store's writer thread. Store exceptions are mapped
to client errors here, at the boundary. Settlement and voiding are safe to call from a
shielded `finally`: the store makes the second ending of a hold a no-op.
"""
from __future__ import annotations

from typing import Any

import store
from gateway import errors
from gateway.billing.pricing import format_usd


class Ledger:
    def __init__(self, writer: "store.Writer", *, hold_ttl_seconds: int) -> None:
        self._writer = writer
        self._ttl = hold_ttl_seconds

    async def reserve(self, account_id: str, request_id: str, amount_micros: int) -> str:
        try:
            hold = await self._writer.call(store.reserve, account_id, request_id, amount_micros, self._ttl)
        except store.InsufficientFunds as exc:
            raise errors.InsufficientBalance(
                f"Insufficient balance: this request may cost up to ${format_usd(exc.needed_micros)} "
                f"but ${format_usd(exc.available_micros)} is available. Top up the wallet, "
                f"or lower max_tokens to reduce the reservation.",
                code="insufficient_balance") from None
        return hold.id

    async def settle(self, hold_id: str, cost_micros: int, *, estimated: bool,
                     log: dict[str, Any]) -> "store.SettleResult":
        return await self._writer.call(store.settle, hold_id, cost_micros, estimated=estimated, log=log)

    async def void(self, hold_id: str, *, log: dict[str, Any]) -> None:
        await self._writer.call(store.void, hold_id, log=log)

    async def log_only(self, log: dict[str, Any]) -> None:
        await self._writer.call(store.insert_request_log, **log)
