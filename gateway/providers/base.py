"""What every upstream kind offers the dispatcher, and the one map of HTTP failures.

Providers are the only code that calls httpx. Whatever goes wrong on the wire leaves
this package as a gateway.errors value:

    timeout, connect error, broken stream  -> UpstreamTimeout / UpstreamError (502)
    upstream 5xx                           -> UpstreamError (502 provider_error)
    upstream 429                           -> RateLimited (429, Retry-After passed on)
    upstream 401/403                       -> UpstreamError (502): our key is wrong,
                                              not the client's fault, and not theirs to see
    upstream other 4xx                     -> UpstreamClientError (400)

The client's message says only what kind of failure it was and the upstream's status
class: an upstream's own words may quote the credential it was sent (some OpenAI-
compatible servers echo the key) and name the provider. Those words, with the
provider's credentials redacted, travel in the error's ``detail`` to the operator's
log and dashboard (see ``scrub``, which the dispatcher applies to every upstream
failure, including ones the codecs raise mid-stream).
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
from typing import AsyncIterator, Iterable, Protocol
from urllib.parse import quote

import httpx
import trio

from gateway import canonical as c
from gateway import errors
from gateway.config import ProviderConfig
from gateway.providers.pool import LifoPool, UpstreamClient

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
        value = float(raw)
    except ValueError:
        return None
    return max(0.0, value) if math.isfinite(value) else None


REDACTED = "[redacted]"
_CREDENTIAL_HEADERS = ("authorization", "x-api-key", "x-goog-api-key", "api-key")


def credentials(headers: httpx.Headers) -> tuple[str, ...]:
    """The secrets a provider's client sends (its credential headers' values)."""
    out = []
    for name in _CREDENTIAL_HEADERS:
        value = headers.get(name, "")
        if name == "authorization":
            value = value.partition(" ")[2] or value
        if len(value.strip()) >= 4:
            out.append(value.strip())
    return tuple(out)


def redact(text: str, secrets: Iterable[str]) -> str:
    """`text` with every secret replaced, in the forms an echo may take (as sent,
    URL-quoted, JSON-escaped)."""
    for secret in secrets:
        if not secret:
            continue
        for form in {secret, quote(secret, safe=""), json.dumps(secret)[1:-1]}:
            text = text.replace(form, REDACTED)
    return text


def _class(status: int) -> str:
    return f"{status // 100}xx"


def status_error(provider_id: str, status: int, body: bytes, headers: httpx.Headers,
                 secrets: Iterable[str] = ()) -> errors.PrismError:
    detail = redact(f"upstream {provider_id} answered HTTP {status}: {upstream_message(body)}",
                    secrets)
    where = f"(upstream status class {_class(status)})"
    if status == 429:
        return errors.RateLimited(f"The upstream provider is rate limiting requests {where}; "
                                  "retry later", retry_after=_retry_after(headers) or 1.0,
                                  detail=detail)
    if status in (401, 403):
        return errors.UpstreamAuthFailed(f"The upstream provider refused the gateway's own "
                                         f"credentials {where}", detail=detail)
    if 400 <= status < 500:
        return errors.UpstreamClientError(f"The upstream provider refused the request {where}",
                                          detail=detail)
    return errors.UpstreamError(f"The upstream provider failed {where}", detail=detail)


def transport_error(provider_id: str, exc: httpx.HTTPError,
                    secrets: Iterable[str] = ()) -> errors.PrismError:
    detail = redact(f"upstream {provider_id}: {type(exc).__name__}: {exc}", secrets)
    if isinstance(exc, httpx.TimeoutException):
        return errors.UpstreamTimeout(f"The upstream provider timed out ({type(exc).__name__})",
                                      detail=detail)
    return errors.UpstreamError(f"The upstream provider could not be reached "
                                f"({type(exc).__name__})", detail=detail)


def parse_json(provider_id: str, body: bytes) -> object:
    try:
        return json.loads(body)
    except ValueError:
        raise errors.UpstreamProtocolError(
            "The upstream provider sent a body that is not JSON",
            detail=f"upstream {provider_id} sent a body that is not JSON") from None


def scrub(exc: errors.PrismError, provider_id: str, secrets: Iterable[str],
          request_id: str | None = None) -> errors.PrismError:
    """Make an upstream failure fit for a client, in place: its words move to
    ``detail`` (redacted) unless a mapping above already did that, and the request id
    is attached. Our own refusals (a codec's 400 before the call) pass untouched."""
    upstream = isinstance(exc, (errors.UpstreamError, errors.UpstreamClientError,
                                errors.RateLimited))
    if upstream and exc.detail is None:
        exc.detail = redact(f"upstream {provider_id}: {exc.message}", secrets)
        what = {errors.UpstreamTimeout: "timed out", errors.UpstreamProtocolError:
                "sent an invalid response"}.get(type(exc), "failed")
        if isinstance(exc, errors.RateLimited):
            exc.message = "The upstream provider is rate limiting requests; retry later"
        elif isinstance(exc, errors.UpstreamClientError):
            exc.message = "The upstream provider refused the request (upstream status class 4xx)"
        else:
            exc.message = f"The upstream provider {what}"
        exc.args = (exc.message,)
    if upstream and request_id and exc.request_id is None:
        exc.request_id = request_id
    return exc


# ---------------------------------------------------------------- the shared wire loop

# Shorter than the usual 5 s server keep-alive, so we rarely reuse a connection the
# upstream is closing at that very moment.
_KEEPALIVE_EXPIRY = 4.0


def make_client(config: ProviderConfig, headers: dict[str, str],
                transport: httpx.AsyncBaseTransport | None = None, *,
                base_url: str | None = None) -> UpstreamClient:
    """One pooled client per provider, with the provider's timeouts and pool size.
    The pool is ours (providers/pool.py) unless a test hands in its own transport."""
    if transport is None:
        transport = LifoPool(max_connections=config.max_connections,
                             keepalive_expiry=_KEEPALIVE_EXPIRY)
    return UpstreamClient(
        base_url=(base_url if base_url is not None else config.base_url).rstrip("/"),
        headers={"content-type": "application/json", **headers},
        timeout=httpx.Timeout(connect=config.connect_timeout, read=config.read_timeout,
                              write=config.read_timeout, pool=config.connect_timeout),
        transport=transport, trust_env=False)


@dataclasses.dataclass(frozen=True)
class CredentialedConfig(ProviderConfig):
    """A provider's config with its credential given as a value rather than an
    environment variable name: how a rotation (gateway.runtime.rotation) builds a
    provider for an opened sealed credential. Never parsed from prism.toml, and the
    value is kept out of repr."""
    api_key_value: str = dataclasses.field(default="", repr=False, compare=False)


def api_key(config: ProviderConfig) -> str:
    # An org's own credential (gateway.orgs.service.OrgProviderConfig) comes first.
    secret = getattr(config, "secret", "")
    if secret:
        return secret
    if isinstance(config, CredentialedConfig) and config.api_key_value:
        return config.api_key_value
    return os.environ.get(config.api_key_env, "") if config.api_key_env else ""


def _stale_connection(exc: httpx.HTTPError) -> bool:
    # A pooled connection the upstream closed while idle fails before any response
    # byte: the request was never processed, so one retry on a fresh one is safe.
    return isinstance(exc, httpx.RemoteProtocolError) and "without sending a response" in str(exc)


async def post_json(client: UpstreamClient, pid: str, path: str, body: dict, *,
                    params: dict | None = None) -> object:
    """POST a JSON body and return the parsed 200 answer, or raise our mapped error."""
    content = json.dumps(body).encode()
    for attempt in (1, 2):
        try:
            resp = await client.fast_post(path, content, params=params)
            break
        except httpx.HTTPError as exc:
            if attempt == 1 and _stale_connection(exc):
                continue
            raise transport_error(pid, exc, credentials(client.headers)) from None
    if resp.status_code != 200:
        raise status_error(pid, resp.status_code, resp.content, resp.headers,
                           credentials(client.headers))
    return parse_json(pid, resp.content)


async def _open_stream(client: UpstreamClient, pid: str, path: str, content: bytes,
                       params: dict | None) -> httpx.Response:
    for attempt in (1, 2):
        try:
            return await client.fast_post(path, content, params=params, stream=True)
        except httpx.HTTPError as exc:
            if attempt == 1 and _stale_connection(exc):
                continue
            raise transport_error(pid, exc, credentials(client.headers)) from None
    raise AssertionError("unreachable")


async def sse_json(client: UpstreamClient, pid: str, path: str, body: dict, *,
                   params: dict | None = None) -> AsyncIterator[object]:
    """POST a JSON body and yield each SSE event's parsed JSON data (``[DONE]`` skipped)."""
    from gateway.codecs.sse import SSEDecoder
    resp = await _open_stream(client, pid, path, json.dumps(body).encode(), params)
    try:
        if resp.status_code != 200:
            raw = b""
            async for chunk in resp.aiter_bytes():
                raw += chunk
                if len(raw) > _MAX_ERROR_BODY:
                    break
            raise status_error(pid, resp.status_code, raw, resp.headers,
                               credentials(client.headers))
        framer = SSEDecoder()
        async for chunk in resp.aiter_bytes():
            for sse in framer.feed(chunk):
                if sse.data != "[DONE]":
                    yield parse_json(pid, sse.data.encode())
        for sse in framer.close():
            if sse.data != "[DONE]":
                yield parse_json(pid, sse.data.encode())
    except httpx.HTTPError as exc:
        raise transport_error(pid, exc, credentials(client.headers)) from None
    finally:
        with trio.CancelScope(shield=True):
            await resp.aclose()
