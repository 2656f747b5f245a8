"""Rate limiters behind one async interface, so admission never knows where the
buckets live:

    LocalLimiter   one process: billing.ratelimit.GCRA in memory (the default)
    RedisLimiter   several processes with `[cache] url`: GCRA in Redis, one Lua script
                   per check, so check-and-charge is atomic across every process
    StoreLimiter   several processes, no Redis: the same pure GCRA run inside one store
                   write transaction, its TATs kept in the rate_tat table

All three admit by the same rule (billing.ratelimit's docstring). The shared two use a
clock every process agrees on: Redis's TIME, or the wall clock for the store.
"""
from __future__ import annotations

import time
from typing import Any, Hashable, Sequence

import trio

import store.cluster as cluster
from gateway.billing.ratelimit import GCRA, NS, Decision, Limit, State
from store.db import write_tx

Item = tuple[Hashable, Limit, int]


def _slot(key: Hashable, limit: Limit) -> str:
    """The text name of a (key, limit) bucket; the rate is part of it, as in GCRA."""
    who = ":".join(str(k) for k in key) if isinstance(key, tuple) else str(key)
    return f"{who}:{limit.rate}/{limit.period_s}"


class LocalLimiter:
    def __init__(self, gcra: GCRA) -> None:
        self.gcra = gcra

    async def acquire(self, items: Sequence[Item]) -> Decision:
        return self.gcra.acquire(items)

    async def refund(self, key: Hashable, limit: Limit, cost: int) -> None:
        self.gcra.refund(key, limit, cost)

    def peek(self, key: Hashable, limit: Limit) -> State:
        return self.gcra.peek(key, limit)


def _store_acquire(db, items: Sequence[Item], now_ns: int) -> Decision:
    by_slot = {(key, limit.rate, limit.period_s): _slot(key, limit) for key, limit, _ in items}
    with write_tx(db):
        stored = cluster.load_tats(db, set(by_slot.values()))
        gcra = GCRA(lambda: now_ns)
        for gslot, text in by_slot.items():
            if text in stored:
                gcra.restore(gslot, stored[text])
        decision = gcra.acquire(items)
        if decision.allowed:
            horizon = now_ns / NS
            cluster.save_tats(db, {
                by_slot[gslot]: (tat, horizon + (tat / gslot[1] - now_ns) / NS + 1)
                for gslot, tat in gcra.snapshot().items()})
    return decision


def _store_refund(db, key: Hashable, limit: Limit, cost: int, now_ns: int) -> None:
    text = _slot(key, limit)
    gslot = (key, limit.rate, limit.period_s)
    with write_tx(db):
        stored = cluster.load_tats(db, [text])
        if text not in stored:
            return
        gcra = GCRA(lambda: now_ns)
        gcra.restore(gslot, stored[text])
        gcra.refund(key, limit, cost)
        tat = gcra.snapshot()[gslot]
        cluster.save_tats(db, {text: (tat, now_ns / NS + (tat / limit.rate - now_ns) / NS + 1)})


class StoreLimiter:
    """Limits kept in the store: correct across processes because each check is one
    write transaction (the store's write lock), at the price of one write per check."""

    def __init__(self, writer: Any, clock=time.time_ns) -> None:
        self._writer = writer
        self._clock = clock

    async def acquire(self, items: Sequence[Item]) -> Decision:
        return await self._writer.call(_store_acquire, list(items), self._clock())

    async def refund(self, key: Hashable, limit: Limit, cost: int) -> None:
        if cost > 0:
            await self._writer.call(_store_refund, key, limit, cost, self._clock())

    def peek(self, key: Hashable, limit: Limit) -> State:
        raise NotImplementedError("the store limiter has no synchronous view")


# KEYS: one bucket per item. ARGV: per item period_us, rate, burst, cost.
# Returns {allowed, refused_index (1-based, 0 if none), retry_us (-1: never),
#          remaining_1, reset_us_1, remaining_2, reset_us_2, ...}.
# TATs are microseconds of Redis's own clock; Lua numbers are doubles, exact to 2^53.
GCRA_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local planned, out = {}, {1, 0, 0}
local worst = nil
for i = 1, #KEYS do
  local b = (i - 1) * 4
  local period, rate = tonumber(ARGV[b + 1]), tonumber(ARGV[b + 2])
  local burst, cost = tonumber(ARGV[b + 3]), tonumber(ARGV[b + 4])
  local interval = period / rate
  local tat = tonumber(redis.call('GET', KEYS[i]) or now)
  if tat < now then tat = now end
  local new = tat + cost * interval
  local cap = burst * interval
  local standing = new
  if new - now > cap then
    local retry = -1
    if cost <= burst then retry = math.ceil(new - cap - now) end
    if worst == nil or retry == -1 or (worst[2] ~= -1 and retry > worst[2]) then
      worst = {i, retry}
    end
    standing = tat
  elseif cost > 0 then
    planned[#planned + 1] = {KEYS[i], new}
  end
  local remaining = math.floor((cap - (standing - now)) / interval)
  if remaining < 0 then remaining = 0 end
  out[#out + 1] = remaining
  out[#out + 1] = math.floor(standing - now)
end
if worst ~= nil then
  out[1], out[2], out[3] = 0, worst[1], worst[2]
  return out
end
for _, p in ipairs(planned) do
  redis.call('SET', p[1], string.format('%.0f', p[2]), 'PX', math.ceil((p[2] - now) / 1000) + 1000)
end
return out
"""
REFUND_LUA = """
local tat = redis.call('GET', KEYS[1])
if not tat then return 0 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local new = tonumber(tat) - tonumber(ARGV[1]) * tonumber(ARGV[2]) / tonumber(ARGV[3])
if new < now then new = now end
redis.call('SET', KEYS[1], string.format('%.0f', new), 'PX', math.ceil((new - now) / 1000) + 1000)
return 1
"""


class RedisLimiter:
    """GCRA in Redis. redis-py is synchronous, so each check runs on a worker thread
    (bounded by trio's thread limiter) and never blocks the event loop."""

    def __init__(self, client: Any, prefix: str) -> None:
        self._client = client
        self._prefix = prefix + "rl:"
        self._acquire = client.register_script(GCRA_LUA)
        self._refund = client.register_script(REFUND_LUA)

    async def acquire(self, items: Sequence[Item]) -> Decision:
        items = list(items)
        keys = [self._prefix + _slot(key, limit) for key, limit, _ in items]
        args: list[int] = []
        for _, limit, cost in items:
            if cost < 0:
                raise ValueError("a cost cannot be negative")
            args += [limit.period_s * 1_000_000, limit.rate, limit.burst, cost]
        out = await trio.to_thread.run_sync(lambda: self._acquire(keys=keys, args=args))
        allowed, refused, retry_us = int(out[0]), int(out[1]), int(out[2])
        states = tuple(State(limit, int(out[3 + 2 * n]), int(out[4 + 2 * n]) / 1e6)
                       for n, (_, limit, _) in enumerate(items))
        if allowed:
            return Decision(True, states)
        return Decision(False, states, None if retry_us < 0 else retry_us / 1e6,
                        items[refused - 1][1])

    async def refund(self, key: Hashable, limit: Limit, cost: int) -> None:
        if cost <= 0:
            return
        name = self._prefix + _slot(key, limit)
        args = [cost, limit.period_s * 1_000_000, limit.rate]
        await trio.to_thread.run_sync(lambda: self._refund(keys=[name], args=args))

    def peek(self, key: Hashable, limit: Limit) -> State:
        raise NotImplementedError("the Redis limiter has no synchronous view")
