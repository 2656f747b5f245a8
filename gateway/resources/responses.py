"""Stored Responses-API responses: what ``previous_response_id`` chains from and
``GET/DELETE /v1/responses/{id}`` read, each kept for the account that created it.

Storage limits are refused with a 400 before any upstream call (and so before any money
moves): a stored conversation may hold at most MAX_CHAIN_ITEMS items and
MAX_STORED_BYTES bytes of JSON. A save after the answer was produced and billed never
fails the request: it is shielded (a stream whose client left after the final event is
still stored) and a store failure is logged, since the client has what it paid for and
only the chaining is lost.
"""
from __future__ import annotations

import logging
from typing import Any

import trio

import store
from gateway import errors, jsonbody
from gateway.codecs import openai_responses

log = logging.getLogger("prism.resources.responses")

MAX_STORED_BYTES = 1_000_000
MAX_CHAIN_ITEMS = 2_000
_SAVE_DEADLINE = 10.0


class StoredResponses:
    def __init__(self, writer: Any) -> None:
        self.writer = writer     # store.Writer

    async def prior_items(self, previous_id: str | None, account_id: str) -> list:
        """The conversation ``previous_id`` ends, as Responses input items (its input,
        then its output replayed as input); [] without one. Another account's id is
        exactly as missing as an unknown one."""
        if previous_id is None:
            return []
        saved = await self.writer.call(store.get_response, previous_id, account_id)
        if saved is None:
            raise errors.NotFound(f"Previous response with id '{previous_id}' not found.",
                                  code="previous_response_not_found")
        return saved.request_items + openai_responses.output_as_input(saved.response)

    @staticmethod
    def conversation_json(items: list, chained: bool) -> str:
        """``items`` as the JSON to store, or the 400 that says which limit it is over."""
        if chained and len(items) > MAX_CHAIN_ITEMS:
            raise errors.InvalidRequest(
                f"The conversation chained through previous_response_id holds {len(items)} "
                f"items; at most {MAX_CHAIN_ITEMS} can be stored. Start a new conversation, or "
                f"send the input in full with store=false.", field="previous_response_id",
                code="conversation_too_long")
        text = jsonbody.dumps(items)
        if len(text.encode()) > MAX_STORED_BYTES:
            raise errors.InvalidRequest(
                f"The conversation to store is {len(text.encode())} bytes; at most "
                f"{MAX_STORED_BYTES} can be stored. Send store=false, or start a new "
                f"conversation.", field="store", code="conversation_too_large")
        return text

    async def save(self, response_id: str, account_id: str, request_json: str,
                   response_json: str) -> None:
        if len(response_json.encode()) > MAX_STORED_BYTES:
            log.warning("response %s not stored: %d bytes is over the cap", response_id,
                        len(response_json.encode()))
            return
        with trio.CancelScope(shield=True, deadline=trio.current_time() + _SAVE_DEADLINE):
            try:
                await self.writer.call(store.save_response, response_id, account_id,
                                       request_json, response_json)
            except store.StoreError:
                log.exception("response %s was produced and billed but could not be stored",
                              response_id)

    async def get(self, response_id: str, account_id: str) -> dict | None:
        """The stored response body, or None (missing, expired, or not the account's)."""
        saved = await self.writer.call(store.get_response, response_id, account_id)
        return None if saved is None else saved.response

    async def delete(self, response_id: str, account_id: str) -> bool:
        return await self.writer.call(store.delete_response, response_id, account_id)
