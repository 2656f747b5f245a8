"""Stored Responses-API responses: save, fetch and delete, always scoped to one account.

A stored response is what ``previous_response_id`` continues from and what
``GET /v1/responses/{id}`` returns. The JSON arrives already serialised (the http layer
measures it against its size cap before calling the upstream, so it has the text in
hand); it is parsed back here, on the writer thread, so the event loop never parses a
large conversation. Another account's id reads exactly like a missing one: no caller
can learn that an id exists elsewhere.

Rows expire (OpenAI keeps responses for 30 days, and so do we by default); saving
purges expired rows, so the table cannot grow without bound without a separate job.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from store.db import read_tx, write_tx
from store.models import StoredResponse

DEFAULT_TTL = 30 * 24 * 3600.0


@dataclass(frozen=True)
class SavedResponse:
    id: str
    account_id: str
    created_at: float
    expires_at: float
    request_items: list[Any]     # the conversation before this response, as input items
    response: dict[str, Any]     # the Response object as the client received it


def save_response(db, response_id: str, account_id: str, request_json: str,
                  response_json: str, *, ttl: float = DEFAULT_TTL,
                  now: float | None = None) -> None:
    """Store one response (replacing a row with the same id, which only a retried save
    of the same request can produce) and purge expired rows."""
    now = time.time() if now is None else now
    with write_tx(db):
        (StoredResponse.delete().where(StoredResponse.expires_at <= now).execute(db))
        (StoredResponse.replace(id=response_id, account_id=account_id, created_at=now,
                                expires_at=now + ttl, request_json=request_json,
                                response_json=response_json).execute(db))


def get_response(db, response_id: str, account_id: str, *,
                 now: float | None = None) -> SavedResponse | None:
    """The account's live response with this id, or None (missing, expired, or not theirs)."""
    now = time.time() if now is None else now
    query = (StoredResponse.select()
             .where((StoredResponse.id == response_id)
                    & (StoredResponse.account_id == account_id)
                    & (StoredResponse.expires_at > now)))
    with read_tx(db):
        row = query.first(db)
    if row is None:
        return None
    return SavedResponse(row.id, row.account_id, row.created_at, row.expires_at,
                         json.loads(row.request_json), json.loads(row.response_json))


def delete_response(db, response_id: str, account_id: str) -> bool:
    """Delete the account's response with this id; False when there was none to delete."""
    with write_tx(db):
        n = (StoredResponse.delete()
             .where((StoredResponse.id == response_id)
                    & (StoredResponse.account_id == account_id)).execute(db))
    return n > 0


def purge_expired_responses(db, *, now: float | None = None) -> int:
    """Delete every expired response; the number deleted."""
    now = time.time() if now is None else now
    with write_tx(db):
        return StoredResponse.delete().where(StoredResponse.expires_at <= now).execute(db)
