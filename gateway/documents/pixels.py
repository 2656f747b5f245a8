"""Grey PNG encoding and a small PNG decoder (pure: numpy and zlib), for page images
the gateway renders for OCR and the simulator reads back."""
from __future__ import annotations

import struct
import zlib

import numpy as np


def png(gray: np.ndarray) -> bytes:
    h, w = gray.shape
    raw = b"".join(b"\x00" + gray[y].tobytes() for y in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else (b if pb <= pc else c)


def decode_png(data: bytes, max_pixels: int = 40_000_000) -> np.ndarray | None:
    """8-bit grey/RGB/RGBA, non-interlaced PNG -> grey array; None for anything else."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        return None
    pos, idat, hdr = 8, bytearray(), None
    while pos + 8 <= len(data):
        n, kind = struct.unpack(">I", data[pos:pos + 4])[0], data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR" and len(body) == 13:
            hdr = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        elif kind == b"IEND":
            break
        pos += 12 + n
    if hdr is None:
        return None
    w, h, depth, ctype, _, _, interlace = hdr
    chans = {0: 1, 2: 3, 4: 2, 6: 4}.get(ctype)
    if depth != 8 or chans is None or interlace or not 0 < w * h <= max_pixels:
        return None
    try:
        raw = zlib.decompressobj().decompress(bytes(idat), (w * chans + 1) * h)
    except zlib.error:
        return None
    stride = w * chans
    if len(raw) < (stride + 1) * h:
        return None
    out = np.zeros((h, stride), dtype=np.uint8)
    prev = np.zeros(stride, dtype=np.int32)
    for y in range(h):
        f = raw[y * (stride + 1)]
        line = np.frombuffer(raw, dtype=np.uint8, count=stride, offset=y * (stride + 1) + 1).astype(np.int32)
        if f == 0:
            cur = line
        elif f == 2:
            cur = (line + prev) & 255
        elif f in (1, 3, 4):   # sequential filters: byte by byte
            cur = np.zeros(stride, dtype=np.int32)
            for i in range(stride):
                a = cur[i - chans] if i >= chans else 0
                c = prev[i - chans] if i >= chans else 0
                pred = a if f == 1 else ((a + prev[i]) // 2 if f == 3 else _paeth(a, prev[i], c))
                cur[i] = (line[i] + pred) & 255
        else:
            return None
        out[y] = cur
        prev = cur
    px = out.reshape(h, w, chans)
    return px[..., 0] if chans <= 2 else px[..., :3].mean(axis=2).astype(np.uint8)
