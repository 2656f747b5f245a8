"""What every upstream kind offers the dispatcher, and the one map of HTTP failures.

Providers are the only code that calls httpx. Whatever goes wrong on the wire leaves
this package as a gateway.errors value:

    timeout, connect error, broken stream  -> UpstreamTimeout / UpstreamError (502)
    upstream 5xx                           -> UpstreamError (502 provider_error)
    upstream 429                           -> RateLimited (429, Retry-After passed on)
    upstream 401/403                       -> UpstreamError (502): our key is wrong,
                                              not the client's fault, and not theirs to see
    upstream other 4xx                     -> UpstreamClientError (400, upstream message)
"""
from __future__ import annotations

import json
from typing import AsyncIterator, Protocol

import httpx

from gateway import canonical as c
from gateway import errors
from gateway.config import ProviderConfig

# Bound on how much of an upstream error body we read and repeat.
_MAX_ERROR_BODY = 64 * 1024
_MAX_MESSAGE = 500


class Provider(Protocol):
    config: ProviderConfig

    async def complete(self, req: c.Request, upstream_model: str) -> c.Response: ...

    def stream(self, req: c.Request, upstream_model: str) -> AsyncIterator[c.StreamEvent]: ...

    async def aclose(self) -> None: ...


def upstream_message(body: bytes) -> str:
    """Pull a human message out of any of the three dialects' error bodies."""
    text = body[:_MAX_ERROR_BODY].decode("utf-8", "replace")
    try:
        data = json.loads(text)
    except ValueError:
        return text.strip()[:_MAX_MESSAGE] or "no message"
    err = data.get("error") if isinstance(data, dict) else None
    if isinstance(err, dict) and isinstance(err.get("message"), str):
        return err["message"][:_MAX_MESSAGE]
    if isinstance(err, str):
        return err[:_MAX_MESSAGE]
    if isinstance(data, dict) and isinstance(data.get("message"), str):
        return data["message"][:_MAX_MESSAGE]
    return text.strip()[:_MAX_MESSAGE]


def _retry_after(headers: httpx.Headers) -> float | None:
    raw = headers.get("retry-after")
    if raw is None:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        return None


def status_error(provider_id: str, status: int, body: bytes, headers: httpx.Headers) -> errors.PrismError:
    message = upstream_message(body)
    if status == 429:
        return errors.RateLimited(f"upstream {provider_id} is rate limiting: {message}",
                                  retry_after=_retry_after(headers) or 1.0)
    if status in (401, 403):
        return errors.UpstreamError(f"upstream {provider_id} refused the gateway's credentials")
    if 400 <= status < 500:
        return errors.UpstreamClientError(message)
    return errors.UpstreamError(f"upstream {provider_id} failed with HTTP {status}: {message}")


def transport_error(provider_id: str, exc: httpx.HTTPError) -> errors.PrismError:
    if isinstance(exc, httpx.TimeoutException):
        return errors.UpstreamTimeout(f"upstream {provider_id} timed out ({type(exc).__name__})")
    return errors.UpstreamError(f"upstream {provider_id} connection failed ({type(exc).__name__})")


def parse_json(provider_id: str, body: bytes) -> object:
    try:
        return json.loads(body)
    except ValueError:
        raise errors.UpstreamProtocolError(f"upstream {provider_id} sent a body that is not JSON") from None
