"""A compact o200k_base byte-pair encoder: the same tokens as tiktoken / bpe-openai for
any text, held in about 6 MB instead of ~140 MB.

Pure Python over the o200k rank file that the bpe-openai wheel ships (read as data; its
74 MB Rust extension is never loaded). The vocabulary lives in flat arrays rather than a
dict of 200k bytes objects: one blob of every token's bytes in rank order, an offset
table, and an open-addressing hash table of rank + 1.
Pre-tokenisation is tiktoken's o200k pattern run by the `regex` module (the standard
`re` has no \\p{..} classes). Merging follows tiktoken exactly: repeatedly join the
adjacent pair whose concatenation has the lowest rank, the leftmost on a tie; pieces
longer than a few hundred bytes use a heap so a long run of letters stays O(n log n).

Text is encoded as ordinary text: a special token's spelling ("<|endoftext|>") inside a
delivered stream counts as the ordinary tokens it is made of, never raises.
"""
from __future__ import annotations

import binascii
import gzip
import heapq
import importlib.util
from array import array
from pathlib import Path

import regex

PATTERN = "|".join([
    r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
    r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
    r"""\p{N}{1,3}""",
    r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
    r"""\s*[\r\n]+""",
    r"""\s+(?!\S)""",
    r"""\s+""",
])
SPECIAL = {"<|endoftext|>": 199_999, "<|endofprompt|>": 200_018}
_NONE = 1 << 30          # the rank of a pair that is not a token: above every real rank
_HEAP_ABOVE = 256        # piece length (bytes) from which merging uses a heap
_CACHE_MAX = 4_096       # pieces remembered (words repeat); cleared when full


def ranks_file(name: str = "o200k_base") -> Path:
    """The gzipped tiktoken-format rank file inside the bpe-openai package, found
    without importing the package (importing it would load its extension)."""
    spec = importlib.util.find_spec("bpe_openai")
    for d in (spec.submodule_search_locations or []) if spec else []:
        p = Path(d) / "data" / f"{name}.tiktoken.gz"
        if p.is_file():
            return p
    raise FileNotFoundError(f"{name}.tiktoken.gz not found in the bpe-openai package")


class Vocabulary:
    """Token bytes <-> rank, in flat arrays."""

    def __init__(self, path: Path) -> None:
        blob = bytearray()
        offs = array("I", [0])
        token_hashes = array("q")
        decode = binascii.a2b_base64
        with gzip.open(path, "rb") as f:
            for n, line in enumerate(f):
                b64, rank = line.split()
                if int(rank) != n:
                    raise ValueError(f"{path}: ranks are not contiguous at line {n + 1}")
                tok = decode(b64)
                token_hashes.append(hash(tok))
                blob += tok
                offs.append(len(blob))
        self.size = len(offs) - 1
        self._blob = bytes(blob)
        self._offs = offs
        bits = max(16, (self.size * 2).bit_length())   # load factor <= 1/2
        self._mask = mask = (1 << bits) - 1
        slots = array("i", bytes(4 << bits))
        for r, h in enumerate(token_hashes):
            i = h & mask
            while slots[i]:
                i = (i + 1) & mask
            slots[i] = r + 1
        self._slots = slots

    def rank(self, b: bytes) -> int:
        """The rank of `b`, or _NONE when it is not a token."""
        mask, slots, blob, offs = self._mask, self._slots, self._blob, self._offs
        i = hash(b) & mask
        while True:
            r = slots[i]
            if not r:
                return _NONE
            # At load factor <= 1/2 a probe is rarely a collision: comparing the bytes
            # costs no more than a stored hash would (measured), and saves 2 MB.
            if blob[offs[r - 1]:offs[r]] == b:
                return r - 1
            i = (i + 1) & mask

    def token(self, r: int) -> bytes:
        return self._blob[self._offs[r]:self._offs[r + 1]]


class Encoder:
    """encode / count / decode for one vocabulary; safe to share between threads."""

    def __init__(self, vocab: Vocabulary, pattern: str = PATTERN,
                 special: dict[str, int] | None = None) -> None:
        self.vocab = vocab
        self._split = regex.compile(pattern).findall
        self._special = {v: k.encode() for k, v in (special or SPECIAL).items()}
        self._cache: dict[str, tuple[int, ...]] = {}

    def encode(self, text: str) -> list[int]:
        out: list[int] = []
        for piece in self._split(_clean(text)):
            out.extend(self._piece(piece))
        return out

    def count(self, text: str) -> int:
        return sum(len(self._piece(p)) for p in self._split(_clean(text))) if text else 0

    def decode_bytes(self, tokens: list[int]) -> bytes:
        size, token = self.vocab.size, self.vocab.token
        parts = []
        for t in tokens:
            if 0 <= t < size:
                parts.append(token(t))
            elif t in self._special:
                parts.append(self._special[t])
            else:
                raise KeyError(f"token id {t} is outside the vocabulary")
        return b"".join(parts)

    def decode(self, tokens: list[int]) -> str:
        return self.decode_bytes(tokens).decode("utf-8", "replace")

    def _piece(self, piece: str) -> tuple[int, ...]:
        hit = self._cache.get(piece)
        if hit is not None:
            return hit
        b = piece.encode("utf-8")
        r = self.vocab.rank(b)
        if r != _NONE:
            ranks: tuple[int, ...] = (r,)
        elif len(b) < _HEAP_ABOVE:
            ranks = _merge_small(b, self.vocab.rank)
        else:
            ranks = _merge_heap(b, self.vocab.rank)
        if len(self._cache) >= _CACHE_MAX:
            self._cache.clear()
        self._cache[piece] = ranks
        return ranks


def _clean(text: str) -> str:
    """Lone surrogates become U+FFFD, as tiktoken's Python wrapper does."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def _merge_small(b: bytes, rank) -> tuple[int, ...]:
    """tiktoken's quadratic loop: fine below a few hundred bytes."""
    bounds = list(range(len(b) + 1))
    pairs = [rank(b[i:i + 2]) for i in range(len(b) - 1)]
    while pairs:
        best = min(pairs)
        if best == _NONE:
            break
        i = pairs.index(best)          # the leftmost of equal ranks
        del bounds[i + 1]
        del pairs[i]
        if i > 0:
            pairs[i - 1] = rank(b[bounds[i - 1]:bounds[i + 1]])
        if i < len(pairs):
            pairs[i] = rank(b[bounds[i]:bounds[i + 2]])
    return tuple(rank(b[bounds[k]:bounds[k + 1]]) for k in range(len(bounds) - 1))


def _merge_heap(b: bytes, rank) -> tuple[int, ...]:
    """The same merges in O(n log n): parts are a linked list keyed by start offset; a
    heap entry (rank, start, end) is live while `start` still begins a part whose pair
    with its successor ends at `end` (parts only ever join, so that pins the pair)."""
    n = len(b)
    nxt = list(range(1, n + 2))
    prv = list(range(-1, n))
    alive = [True] * (n + 1)
    heap = [(rank(b[i:i + 2]), i, i + 2) for i in range(n - 1)]
    heap = [e for e in heap if e[0] != _NONE]
    heapq.heapify(heap)
    while heap:
        _, s, e = heapq.heappop(heap)
        m = nxt[s]
        if not alive[s] or m >= n or nxt[m] != e:
            continue
        alive[m] = False
        nxt[s] = e
        if e < n:
            prv[e] = s
        if s > 0:
            p = prv[s]
            r = rank(b[p:e])
            if r != _NONE:
                heapq.heappush(heap, (r, p, e))
        if e < n:
            r = rank(b[s:nxt[e]])
            if r != _NONE:
                heapq.heappush(heap, (r, s, nxt[e]))
    out = []
    s = 0
    while s < n:
        out.append(rank(b[s:nxt[s]]))
        s = nxt[s]
    return tuple(out)
