"""The simulator as an in-process upstream: what provider kind "simulator" calls.

Adds time and failure to the pure core: latency and the fault's delay before the first
event, chunk_delay between fragments, the fault's status raised as the gateway's own
exception (see faults.fault_error), and disconnect_after raised as UpstreamError after
that many events, which is what a provider sees when a real upstream drops the socket.
"""
from __future__ import annotations

from collections.abc import AsyncIterator

import trio

from gateway import canonical as c
from gateway import errors
from gateway.simulator.core import (
    SimOptions, pauses, respond, split_at_disconnect, stream_events,
)
from gateway.simulator.faults import Fault, fault_error, parse_fault

__all__ = ["Simulator", "open_fault", "chunk_delay"]


async def open_fault(req: c.Request, options: SimOptions) -> Fault:
    """Wait out the time to first byte, then fail if the prompt asks for a status."""
    fault = parse_fault(req)
    wait = options.latency + fault.delay
    if wait > 0:
        await trio.sleep(wait)
    err = fault_error(fault)
    if err is not None:
        raise err
    return fault


def chunk_delay(options: SimOptions, fault: Fault) -> float:
    return fault.chunk_delay if fault.chunk_delay is not None else options.chunk_delay


class Simulator:
    def __init__(self, options: SimOptions = SimOptions()) -> None:
        self.options = options

    async def complete(self, req: c.Request) -> c.Response:
        fault = await open_fault(req, self.options)
        # A plain answer is one body: if the stream would be cut anywhere, so is it.
        if fault.disconnect_after is not None and split_at_disconnect(
                stream_events(req, self.options, fault), fault)[1]:
            raise errors.UpstreamError("simulated disconnect")
        return respond(req, self.options)

    async def stream(self, req: c.Request) -> AsyncIterator[c.StreamEvent]:
        """Stream events for ``req``; wrap in ``contextlib.aclosing`` when leaving early."""
        fault = await open_fault(req, self.options)
        events, cut = split_at_disconnect(stream_events(req, self.options, fault), fault)
        for ev, pause in zip(events, pauses(events, chunk_delay(self.options, fault))):
            if pause > 0:
                await trio.sleep(pause)
            else:
                # A real upstream yields on every socket read; so must we, or a long
                # stream would hold the scheduler and ignore cancellation.
                await trio.lowlevel.checkpoint()
            yield ev
        if cut:
            raise errors.UpstreamError("simulated disconnect")
