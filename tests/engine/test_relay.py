"""pipeline.Relay: a stream body that ends its hold even when it is never read.

An async generator that was never started runs no ``finally`` when closed or collected,
so a client hanging up between admission and the first read of the body (while the
response headers are being sent) used to leave the hold open until the sweeper."""
from __future__ import annotations

import gc

import trio

from gateway.engine.pipeline import Relay


def _relay(ended: list, chunks=(b"a", b"b")) -> Relay:
    async def gen():
        try:
            for c in chunks:
                yield c
        finally:
            ended.append("generator")

    async def abandon() -> None:
        await trio.sleep(0)
        ended.append("abandoned")

    return Relay(gen(), abandon)


async def test_closing_an_unread_relay_ends_the_stream_once():
    ended: list = []
    relay = _relay(ended)
    await relay.aclose()
    await relay.aclose()
    assert ended == ["abandoned"]


async def test_closing_an_unread_relay_is_shielded_from_the_cancel_that_caused_it():
    ended: list = []
    relay = _relay(ended)
    with trio.CancelScope() as scope:
        scope.cancel()
        await relay.aclose()
    assert ended == ["abandoned"]


async def test_a_read_relay_ends_through_its_generator_not_the_abandon_path():
    ended: list = []
    relay = _relay(ended)
    assert [c async for c in relay] == [b"a", b"b"]
    await relay.aclose()
    assert ended == ["generator"]


async def test_a_relay_closed_mid_read_runs_the_generator_cleanup():
    ended: list = []
    relay = _relay(ended)
    assert await relay.__anext__() == b"a"
    await relay.aclose()
    assert ended == ["generator"]


async def test_a_dropped_unread_relay_is_ended_in_a_system_task():
    ended: list = []
    relay = _relay(ended)
    del relay
    gc.collect()
    for _ in range(5):
        await trio.sleep(0)
    assert ended == ["abandoned"]
