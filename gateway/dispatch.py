"""Calling the upstream for a prepared request: which route, with what deadline.

The only place that picks a provider out of a Selection's routes. Today it takes the
first route; failover across routes and circuit breaking belong here too, so that the
pipeline sees one call whatever happened underneath. Stream opening pulls the first
event, so a failure before the first byte is still a plain error response.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, AsyncIterator

import trio

from gateway import canonical as c
from gateway import errors

if TYPE_CHECKING:
    from gateway.pipeline import Prepared
    from gateway.services import Services


def upstream_timeout(exc: trio.TooSlowError) -> errors.UpstreamTimeout:
    return errors.UpstreamTimeout("upstream did not answer within the request deadline")


class Dispatcher:
    def __init__(self, services: "Services") -> None:
        self.s = services

    def read_timeout(self, prep: "Prepared") -> float:
        return self.s.config.provider(prep.route.provider).read_timeout

    async def complete(self, prep: "Prepared") -> c.Response:
        prep.route = prep.selection.routes[0]
        provider = self.s.providers[prep.route.provider]
        try:
            with trio.fail_after(self.s.config.server.max_request_seconds):
                return await provider.complete(prep.req, prep.route.model)
        except trio.TooSlowError as exc:
            raise upstream_timeout(exc) from None

    async def open(self, prep: "Prepared") -> tuple[AsyncIterator[c.StreamEvent], c.StreamEvent]:
        prep.route = prep.selection.routes[0]
        events = self.s.providers[prep.route.provider].stream(prep.req, prep.route.model)
        try:
            with trio.fail_after(self.read_timeout(prep)):
                first = await events.__anext__()
        except BaseException as exc:
            with trio.CancelScope(shield=True):
                await events.aclose()
            if isinstance(exc, StopAsyncIteration):
                raise errors.UpstreamProtocolError("upstream sent an empty stream") from None
            if isinstance(exc, trio.TooSlowError):
                raise upstream_timeout(exc) from None
            raise
        return events, first
