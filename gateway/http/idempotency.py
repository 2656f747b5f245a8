"""`@idempotent`: Idempotency-Key support for generation routes, as one decorator.

    @bp.post("/v1/chat/completions")
    @idempotency.idempotent
    async def chat_completions(): ...

With an `Idempotency-Key` header (1-255 printable ASCII characters), the first request
with that key on the caller's account runs and its response is stored; for 24 hours
the same key with the same body (same method, path and JSON, whatever the key order
or whitespace) replays that response, status, headers and body, with
`Idempotent-Replayed: true` and no second charge. The same key with another body is
422 idempotency_key_reused. While the first request still runs, a duplicate gets 409
idempotency_in_progress with Retry-After (it does not wait: a stream may run for
minutes).

Streams are stored as the SSE bytes the client was sent and replayed whole. A stream
the client left early is stored as far as it went (and replayed with
`X-Prism-Replay-Incomplete: true`): it was billed for what it delivered, so a retry
must not run and bill it again. A request that fails (any error response) stores
nothing and frees the key, since errors cost nothing and a retry should run.

Without the header the decorator only adds the caller's standing (RateLimit-*,
X-Prism-Wallet-Remaining, ...) to stream responses, whose headers leave before
settlement. Other dialect routes opt in by adding the decorator under their route.
"""
from __future__ import annotations

import functools
import hashlib
import json
from typing import Any, AsyncIterator, Awaitable, Callable

import trio
from quart import Response, g, make_response, request
from quart.wrappers.response import IterableBody
from werkzeug.datastructures import Headers

from gateway import errors
from gateway.engine.idempotency import Idempotency, Stored
from gateway.http import common

HEADER = "Idempotency-Key"
_MAX_KEY = 255
# Headers not to store: hop-by-hop and the ones the replaying server sets itself.
_SKIP = {"content-length", "transfer-encoding", "connection", "date", "server",
         "keep-alive"}


def body_hash(method: str, path: str, raw: bytes) -> str:
    """What 'the same request' means: method, path and body, the body as canonical
    JSON when it parses (key order and whitespace do not matter), else its bytes."""
    try:
        canonical = json.dumps(json.loads(raw), sort_keys=True, separators=(",", ":"),
                               ensure_ascii=False).encode()
    except (ValueError, RecursionError):
        canonical = raw
    h = hashlib.sha256()
    for part in (method.encode(), b"\0", path.encode(), b"\0", canonical):
        h.update(part)
    return h.hexdigest()


def _check_key(key: str) -> str:
    if not 1 <= len(key) <= _MAX_KEY or not all(32 < ord(ch) < 127 for ch in key):
        raise errors.InvalidRequest(f"{HEADER} must be 1-{_MAX_KEY} printable ASCII "
                                    "characters without spaces", code="invalid_idempotency_key")
    return key


def _credential() -> str | None:
    return (common.bearer_token() or request.headers.get("x-api-key")
            or request.headers.get("x-goog-api-key") or request.args.get("key"))


def _replay(stored: Stored) -> Response:
    resp = Response(stored.body, status=stored.status, headers=Headers(stored.headers))
    resp.headers["Idempotent-Replayed"] = "true"
    if not stored.complete:
        resp.headers["X-Prism-Replay-Incomplete"] = "true"
    return resp


def _stored_headers(resp: Response) -> list[tuple[str, str]]:
    return [(k, v) for k, v in resp.headers.items() if k.lower() not in _SKIP]


def _add_standing(resp: Response) -> None:
    for name, value in common.services().admission.pending_headers(g.request_id).items():
        resp.headers.setdefault(name, value)


def idempotent(handler: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    @functools.wraps(handler)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        key = request.headers.get(HEADER)
        if key is None:
            resp = await make_response(await handler(*args, **kwargs))
            _add_standing(resp)
            return resp
        _check_key(key)
        s = common.services()
        try:
            info = await s.keys.verify(_credential())
            # An expired key (PUT /-/keys/{id}) gets no replay either.
            await s.admission.allowed_models(info.account_id, info.key_id)
        except errors.AuthenticationError:
            return await handler(*args, **kwargs)   # which refuses it in its own dialect
        raw = await request.get_data(cache=True)
        digest = body_hash(request.method, request.path, raw)
        keys: Idempotency = s.idempotency
        claim = await keys.claim(info.account_id, key, digest, g.request_id)
        if claim.replay is not None:
            return _replay(claim.replay)
        token = claim.token
        try:
            resp = await make_response(await handler(*args, **kwargs))
        except BaseException:
            await keys.release(info.account_id, key, token)
            raise
        _add_standing(resp)
        if resp.status_code >= 400:
            await keys.release(info.account_id, key, token)
            return resp
        if isinstance(resp.response, IterableBody):
            # The body runs after this handler returns, outside the app context: it
            # gets the service itself.
            resp.response = IterableBody(_tee(resp.response.iter, resp, keys,
                                              info.account_id, key, token))
            return resp
        body = await resp.get_data()
        await keys.complete(info.account_id, key, token, status=resp.status_code,
                            headers=_stored_headers(resp), body=body)
        return resp

    return wrapper


async def _tee(body: AsyncIterator[bytes], resp: Response, keys: Idempotency,
               account_id: str, key: str, token: str) -> AsyncIterator[bytes]:
    """Relay a stream and store what was sent once it ends, however it ends."""
    sent: list[bytes] = []
    complete = False
    try:
        async for chunk in body:
            data = chunk if isinstance(chunk, bytes) else chunk.encode()
            yield data
            sent.append(data)
        complete = True
    finally:
        aclose = getattr(body, "aclose", None)
        if aclose is not None:
            with trio.CancelScope(shield=True):
                await aclose()
        await keys.complete(account_id, key, token, status=resp.status_code,
                            headers=_stored_headers(resp), body=b"".join(sent),
                            complete=complete)
