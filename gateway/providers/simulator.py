"""Upstream kind "simulator": the deterministic simulator, called in-process.

It goes through the same Provider interface as a real upstream, so the first run, the
tests and the benchmarks exercise the gateway's full path minus the socket.
"""
from __future__ import annotations

import dataclasses
from typing import AsyncIterator

from gateway import canonical as c
from gateway.config import ProviderConfig
from gateway.simulator.core import SimOptions
from gateway.simulator.inproc import Simulator


class SimulatorProvider:
    def __init__(self, config: ProviderConfig) -> None:
        self.config = config
        self._sim = Simulator(SimOptions(chunk_chars=config.chunk_chars, chunk_delay=config.chunk_delay))

    async def aclose(self) -> None:
        return None

    async def complete(self, req: c.Request, upstream_model: str) -> c.Response:
        return await self._sim.complete(dataclasses.replace(req, model=upstream_model))

    async def stream(self, req: c.Request, upstream_model: str) -> AsyncIterator[c.StreamEvent]:
        async for ev in self._sim.stream(dataclasses.replace(req, model=upstream_model)):
            yield ev
