"""KeyCache: the in-memory front of key verification, with a fake store and clock."""
from __future__ import annotations

import pytest
import trio
import trio.testing

from gateway import errors
from gateway.runtime.keys import KEY_PREFIX, MAX_KEY_LENGTH, KeyCache, KeyInfo, hash_key

GOOD = KEY_PREFIX + "A" * 43
OTHER = KEY_PREFIX + "B" * 43


class FakeStore:
    """lookup(digest) -> KeyInfo | None, counting calls; `revoked` hides a key."""

    def __init__(self, *plaintexts: str) -> None:
        self.keys = {hash_key(p): KeyInfo(f"key_{i}", f"acct_{i}", f"name{i}", hash_key(p))
                     for i, p in enumerate(plaintexts)}
        self.revoked: set[str] = set()
        self.calls: list[str] = []

    async def lookup(self, digest: str) -> KeyInfo | None:
        self.calls.append(digest)
        await trio.lowlevel.checkpoint()
        info = self.keys.get(digest)
        if info is None or info.key_id in self.revoked:
            return None
        return info


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def fake():
    return FakeStore(GOOD, OTHER)


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def cache(fake, clock):
    return KeyCache(fake.lookup, ttl=60.0, clock=clock)


def _info(fake, plaintext):
    return fake.keys[hash_key(plaintext)]


def test_hash_key_is_hex_sha256_and_agrees_with_the_store():
    import hashlib

    import store
    assert hash_key(GOOD) == hashlib.sha256(GOOD.encode()).hexdigest()
    assert hash_key(GOOD) == store.hash_key(GOOD)
    assert KEY_PREFIX == store.KEY_PREFIX


async def test_hit_is_served_without_lookup(fake, cache):
    cache.put(_info(fake, GOOD))
    info = await cache.verify(GOOD)
    assert info.key_id == "key_0" and info.account_id == "acct_0"
    await cache.verify(GOOD)
    assert fake.calls == []


async def test_miss_does_one_lookup_then_hits(fake, cache):
    info = await cache.verify(OTHER)
    assert info.key_id == "key_1"
    assert fake.calls == [hash_key(OTHER)]
    for _ in range(5):
        assert (await cache.verify(OTHER)).key_id == "key_1"
    assert len(fake.calls) == 1


async def test_unknown_key_is_refused_after_one_lookup(fake, cache):
    stranger = KEY_PREFIX + "nobody"
    with pytest.raises(errors.AuthenticationError) as info:
        await cache.verify(stranger)
    assert info.value.status == 401 and info.value.type_name == "invalid_api_key"
    assert fake.calls == [hash_key(stranger)]
    # not cached as negative either: a key created later must work at once
    fake.keys[hash_key(stranger)] = KeyInfo("key_9", "acct_9", "late", hash_key(stranger))
    assert (await cache.verify(stranger)).key_id == "key_9"


async def test_revoked_key_is_refused(fake, cache, clock):
    await cache.verify(GOOD)
    fake.revoked.add("key_0")
    clock.now += 61
    with pytest.raises(errors.AuthenticationError, match="revoked"):
        await cache.verify(GOOD)


async def test_ttl_expiry_rechecks_the_store(fake, cache, clock):
    await cache.verify(GOOD)
    assert len(fake.calls) == 1
    clock.now += 59.9
    await cache.verify(GOOD)
    assert len(fake.calls) == 1            # still fresh
    fake.revoked.add("key_0")              # revoked by another process
    clock.now += 0.2                       # 60.1 s after caching: stale
    with pytest.raises(errors.AuthenticationError):
        await cache.verify(GOOD)
    assert len(fake.calls) == 2
    # and it stays refused (the stale entry was dropped, each try asks again)
    with pytest.raises(errors.AuthenticationError):
        await cache.verify(GOOD)
    assert len(fake.calls) == 3


async def test_expired_entry_that_is_still_valid_is_renewed(fake, cache, clock):
    await cache.verify(GOOD)
    clock.now += 100
    await cache.verify(GOOD)               # re-checked, still good, cached again
    clock.now += 30
    await cache.verify(GOOD)
    assert len(fake.calls) == 2


async def test_invalidate_key_forces_a_lookup(fake, cache):
    cache.put(_info(fake, GOOD))
    cache.put(_info(fake, OTHER))
    fake.revoked.add("key_0")
    cache.invalidate_key("key_0")
    with pytest.raises(errors.AuthenticationError):
        await cache.verify(GOOD)
    assert fake.calls == [hash_key(GOOD)]
    # other keys are untouched
    assert (await cache.verify(OTHER)).key_id == "key_1"
    assert fake.calls == [hash_key(GOOD)]


async def test_invalidate_unknown_id_is_harmless(fake, cache):
    cache.put(_info(fake, GOOD))
    cache.invalidate_key("key_nope")
    await cache.verify(GOOD)
    assert fake.calls == []


async def test_lookup_in_flight_across_a_revocation_is_not_cached(fake, clock):
    """A request whose lookup read the key just before it was revoked may pass, but
    its answer must not be cached: the next request re-checks and is refused."""
    gate = trio.Event()
    looked_up = trio.Event()

    async def slow_lookup(digest):
        looked_up.set()
        info = fake.keys.get(digest)       # read before the revocation below
        await gate.wait()
        fake.calls.append(digest)
        return info

    cache = KeyCache(slow_lookup, ttl=60.0, clock=clock)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(cache.verify, GOOD)
        await looked_up.wait()
        fake.revoked.add("key_0")          # DELETE /-/keys/key_0 ...
        cache.invalidate_key("key_0")      # ... invalidates while the lookup is out
        gate.set()
    cache._lookup = fake.lookup
    with pytest.raises(errors.AuthenticationError):
        await cache.verify(GOOD)


@pytest.mark.parametrize("presented", [
    None,
    "",
    "sk-other-" + "A" * 43,                 # wrong prefix
    "Bearer " + GOOD,                       # header scheme left in
    "SK-PRISM-" + "A" * 43,                 # prefix is case-sensitive
    KEY_PREFIX + "A" * (MAX_KEY_LENGTH - len(KEY_PREFIX) + 1),   # 257 chars
    KEY_PREFIX + "A" * 100_000,
])
async def test_malformed_keys_are_refused_without_lookup(fake, cache, presented):
    with pytest.raises(errors.AuthenticationError) as info:
        await cache.verify(presented)
    assert info.value.status == 401
    assert fake.calls == []


async def test_missing_key_message_says_how_to_send_it(cache):
    with pytest.raises(errors.AuthenticationError, match="Authorization: Bearer"):
        await cache.verify(None)


async def test_key_of_exactly_max_length_is_looked_up(fake, cache):
    longest = KEY_PREFIX + "A" * (MAX_KEY_LENGTH - len(KEY_PREFIX))
    assert len(longest) == MAX_KEY_LENGTH
    with pytest.raises(errors.AuthenticationError):
        await cache.verify(longest)
    assert fake.calls == [hash_key(longest)]


async def test_concurrent_misses_each_get_the_right_answer(fake, cache):
    results = {}

    async def one(name, key):
        results[name] = (await cache.verify(key)).key_id

    async with trio.open_nursery() as nursery:
        for i in range(10):
            nursery.start_soon(one, f"g{i}", GOOD)
            nursery.start_soon(one, f"o{i}", OTHER)
    assert {v for k, v in results.items() if k.startswith("g")} == {"key_0"}
    assert {v for k, v in results.items() if k.startswith("o")} == {"key_1"}
