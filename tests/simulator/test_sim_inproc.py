"""The in-process Simulator under trio: timing and faults as gateway exceptions."""
from __future__ import annotations

import pytest
import trio

from gateway import canonical as c
from gateway import errors
from gateway.simulator import Simulator, SimOptions, respond


def req(text: str, **kw) -> c.Request:
    return c.Request("sim-small", (c.Message("user", (c.TextPart(text),)),), **kw)


async def collect(sim: Simulator, r: c.Request) -> list[c.StreamEvent]:
    return [ev async for ev in sim.stream(r)]


async def test_complete_and_stream_agree():
    sim = Simulator()
    r = req("say: hello there")
    assert await sim.complete(r) == respond(r)
    assert c.collect_stream(await collect(sim, r)) == respond(r)


async def test_status_faults_map_to_gateway_errors():
    sim = Simulator()
    with pytest.raises(errors.RateLimited) as rl:
        await sim.complete(req("[[sim status=429 retry_after=3]]"))
    assert rl.value.retry_after == 3
    with pytest.raises(errors.UpstreamClientError):
        await collect(sim, req("[[sim status=400 message=bad]]"))
    with pytest.raises(errors.UpstreamError) as up:
        await sim.complete(req("[[sim status=500]]"))
    assert not isinstance(up.value, errors.ClientError)


async def test_disconnect_after_raises_after_that_many_events():
    sim = Simulator()
    seen = []
    with pytest.raises(errors.UpstreamError, match="simulated disconnect"):
        async for ev in sim.stream(req("say: abcdefghijkl [[sim disconnect_after=3 chunk_chars=2]]")):
            seen.append(ev)
    assert len(seen) == 3 and isinstance(seen[0], c.StreamStart)
    with pytest.raises(errors.UpstreamError):
        await sim.complete(req("say: x [[sim disconnect_after=1]]"))


async def test_no_usage_stream():
    events = await collect(Simulator(), req("say: hi [[sim no_usage=1]]"))
    assert not any(isinstance(e, c.UsageEvent) for e in events)


async def test_delays_use_trio_clock(autojump_clock):
    sim = Simulator(SimOptions(latency=1.0, chunk_delay=0.5))
    start = trio.current_time()
    await sim.complete(req("say: x [[sim delay_ms=2000]]"))
    assert trio.current_time() - start == pytest.approx(3.0)
    start = trio.current_time()
    events = await collect(sim, req("say: abcdef [[sim chunk_chars=2 chunk_delay_ms=100]]"))
    assert sum(isinstance(e, c.TextDelta) for e in events) == 3
    # latency 1s, then two gaps between the three fragments
    assert trio.current_time() - start == pytest.approx(1.2)
