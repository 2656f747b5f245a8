"""Failover decisions: which failures move a request to the next route, and what the
client is told when no route answered (pure).

A failure moves on when it says the *route* is unwell, not the request: connect
errors, timeouts, broken or nonsensical responses (UpstreamError and subclasses) and
upstream rate limiting (429). An upstream 4xx (UpstreamClientError) is the request's
fault and would fail the same way anywhere, so it goes straight back to the client.
Failover only ever happens before the first byte reached the client; the dispatcher
guarantees that by deciding inside open(), before the response starts.

When every route failed the client gets one error that names the model and the kind
of failure, and nothing about the upstreams (no URLs, no provider messages, no keys).
A single route that failed keeps its own error, as before failover existed.
"""
from __future__ import annotations

import math
from typing import Sequence

from gateway import errors


def fails_over(exc: BaseException) -> bool:
    return isinstance(exc, (errors.UpstreamError, errors.RateLimited))


def _kind(exc: BaseException) -> str:
    if isinstance(exc, errors.UpstreamTimeout):
        return "timed out"
    if isinstance(exc, errors.UpstreamProtocolError):
        return "sent an invalid response"
    if isinstance(exc, errors.RateLimited):
        return "was rate limited"
    return "failed"


def exhausted(model_id: str, failures: Sequence[BaseException], paused_for: float | None
              ) -> errors.PrismError:
    """The error for a request no route could serve. ``failures`` are the attempts made,
    in order; ``paused_for`` is the soonest an open breaker lets a probe through, when
    routes were skipped for being open (None when none were)."""
    if len(failures) == 1 and paused_for is None and isinstance(failures[0], errors.PrismError):
        return failures[0]
    if not failures:
        wait = max(1, math.ceil(paused_for or 0.0))
        return errors.UpstreamError(
            f"Every upstream route for model {model_id!r} is failing and paused; "
            f"retry in about {wait} s", headers={"Retry-After": str(wait)})
    if all(isinstance(f, errors.RateLimited) for f in failures):
        waits = [f.retry_after for f in failures if f.retry_after is not None]
        return errors.RateLimited(
            f"Every upstream route for model {model_id!r} is rate limiting; retry later",
            retry_after=min(waits) if waits else 1.0)
    kinds = ", ".join(f"route {i} {_kind(f)}" for i, f in enumerate(failures, 1))
    return errors.UpstreamError(
        f"All {len(failures)} upstream routes for model {model_id!r} failed ({kinds})")
