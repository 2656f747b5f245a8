"""API key verification with an in-memory cache in front of the store.

Keys are looked up by the SHA-256 of the presented secret; the stored hash is then
compared in constant time. Hits are served from memory; a miss (a key made by another
process, e.g. `prism keys create`) costs one indexed read and is cached. Entries expire
after `ttl` seconds so a revocation made outside this process is honoured within that
bound; revocations made here invalidate at once.
"""
from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass
from typing import Awaitable, Callable

from gateway import errors

KEY_PREFIX = "sk-prism-"
MAX_KEY_LENGTH = 256


@dataclass(frozen=True)
class KeyInfo:
    key_id: str
    account_id: str
    name: str
    key_hash: str


def hash_key(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode("utf-8")).hexdigest()


Lookup = Callable[[str], Awaitable["KeyInfo | None"]]


class KeyCache:
    def __init__(self, lookup: Lookup, *, ttl: float = 60.0, clock=time.monotonic) -> None:
        self._lookup = lookup
        self._ttl = ttl
        self._clock = clock
        self._entries: dict[str, tuple[KeyInfo, float]] = {}
        # Bumped by every invalidation: a lookup that was in flight across one may have
        # read the key before it was revoked, so its answer must not be cached.
        self._generation = 0

    def put(self, info: KeyInfo) -> None:
        self._entries[info.key_hash] = (info, self._clock() + self._ttl)

    def invalidate_key(self, key_id: str) -> None:
        self._generation += 1
        for h, (info, _) in list(self._entries.items()):
            if info.key_id == key_id:
                del self._entries[h]

    async def verify(self, presented: str | None) -> KeyInfo:
        if not presented:
            raise errors.AuthenticationError(
                "Missing API key: send it as 'Authorization: Bearer sk-prism-...'")
        if len(presented) > MAX_KEY_LENGTH or not presented.startswith(KEY_PREFIX):
            raise errors.AuthenticationError("Invalid API key")
        digest = hash_key(presented)
        hit = self._entries.get(digest)
        if hit is not None and hit[1] > self._clock():
            info = hit[0]
        else:
            generation = self._generation
            info = await self._lookup(digest)
            if info is None:
                self._entries.pop(digest, None)
                raise errors.AuthenticationError("Invalid or revoked API key")
            if generation == self._generation:
                self.put(info)
        if not hmac.compare_digest(info.key_hash, digest):
            raise errors.AuthenticationError("Invalid API key")
        return info
