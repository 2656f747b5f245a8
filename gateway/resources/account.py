"""What an account sees of itself with its own key: its request log and spend, and its
API keys (the customer routes in http/account_routes.py encode these).

Everything is scoped to the account asking: another account's key or request id is
None here, exactly as an unknown one, and the route answers 404 for both. A key made
or revoked here is put in (or dropped from) this process's key cache at once.
"""
from __future__ import annotations

from typing import Any

import store
from gateway.runtime.keys import KeyCache, KeyInfo


class AccountRecords:
    def __init__(self, writer: Any, keys: KeyCache) -> None:
        self.writer = writer     # store.Writer
        self.keys = keys

    async def usage_rows(self, account_id: str, *, limit: int, offset: int,
                         **filters: Any) -> tuple[list, int]:
        """One page of request-log rows and how many match in all."""
        return await self.writer.call(store.usage_rows, account_id, limit=limit,
                                      offset=offset, **filters)

    async def usage_summary(self, account_id: str, **filters: Any) -> dict[str, Any]:
        return await self.writer.call(store.usage_summary, account_id, **filters)

    async def usage_page(self, account_id: str, *, after: tuple | None, limit: int,
                         **filters: Any) -> list[dict[str, Any]]:
        """Rows after the ``(created_at, request_id)`` cursor, for an export."""
        return await self.writer.call(store.usage_page, account_id, after=after, limit=limit,
                                      **filters)

    async def request_record(self, account_id: str, request_id: str) -> dict[str, Any] | None:
        return await self.writer.call(store.request_record, account_id, request_id)

    async def key_budgets(self, account_id: str, now: float) -> list[dict[str, Any]]:
        """This account's keys that carry a monthly budget, with the month's standing."""
        from store.budgets import key_budgets
        return await self.writer.call(key_budgets, account_id, now)

    async def create_key(self, account_id: str, name: str) -> tuple[Any, str]:
        """A new key and its only plaintext copy."""
        key, plaintext = await self.writer.call(store.create_key, account_id, name)
        self.keys.put(KeyInfo(key.id, key.account_id, key.name, key.key_hash))
        return key, plaintext

    async def active_keys(self, account_id: str) -> list[Any]:
        return [k for k in await self.writer.call(store.list_keys, account_id)
                if k.revoked_at is None]

    async def revoke_key(self, account_id: str, key_id: str) -> bool:
        """False when ``key_id`` is not an active key of this account."""
        key = await self.writer.call(store.get_key, key_id)
        if key is None or key.account_id != account_id or key.revoked_at is not None:
            return False
        await self.writer.call(store.revoke_key, key_id)
        self.keys.invalidate_key(key_id)
        return True
