"""The simulator's eyes: text rendered into page images, and a reader that gets it back
from the pixels (pure, numpy and zlib only).

The "font" is a machine-readable cell code, not letterforms: a black frame one unit
thick around a grid of cells, 128 cells (16 bytes) a row; the first four bytes are
the UTF-8 length, then the text, one bit per cell (black = 1). The reader finds the
frame, measures the unit from its thickness and samples cell centres, so a page
survives being scaled, embedded in a PDF and rendered back (pdfium), or re-encoded.
That is what the OCR tests need: the text really travels through the image.
"""
from __future__ import annotations

import struct

import numpy as np

from gateway.documents.pixels import decode_png, png  # noqa: F401  (re-exported for tests)

UNIT = 4
_COLS = 128
_MARGIN = 3     # units of white around the frame


def render(text: str, unit: int = UNIT) -> np.ndarray:
    """A grey page (uint8, 255 = white) carrying ``text``."""
    payload = struct.pack(">I", len(text.encode())) + text.encode()
    bits = [(b >> (7 - i)) & 1 for b in payload for i in range(8)]
    rows = max(1, -(-len(bits) // _COLS))
    h_units, w_units = rows + 2 + 2 * _MARGIN, _COLS + 2 + 2 * _MARGIN
    cells = np.zeros((h_units, w_units), dtype=np.uint8)
    top, left = _MARGIN, _MARGIN
    cells[top, left:left + _COLS + 2] = 1
    cells[top + rows + 1, left:left + _COLS + 2] = 1
    cells[top:top + rows + 2, left] = 1
    cells[top:top + rows + 2, left + _COLS + 1] = 1
    for k, b in enumerate(bits):
        r, col = divmod(k, _COLS)
        cells[top + 1 + r, left + 1 + col] = b
    page = np.where(cells == 1, 0, 255).astype(np.uint8)
    return np.kron(page, np.ones((unit, unit), dtype=np.uint8))


def read(gray: np.ndarray) -> str | None:
    """The text on a page made by render(), or None if there is no frame on it."""
    if gray.ndim != 2 or gray.size == 0:
        return None
    dark = gray < 128
    ys, xs = np.nonzero(dark)
    if len(ys) == 0:
        return None
    top, left, bottom, right = ys.min(), xs.min(), ys.max(), xs.max()
    mid_x = (left + right) // 2
    unit = 0
    while top + unit <= bottom and dark[top + unit, mid_x]:
        unit += 1
    if unit == 0:
        return None
    pitch_x = (right - left + 1) / (_COLS + 2)
    rows = round((bottom - top + 1) / pitch_x) - 2
    if rows < 1:
        return None
    pitch_y = (bottom - top + 1) / (rows + 2)

    def bit(k: int) -> int:
        r, col = divmod(k, _COLS)
        y = int(top + (1 + r + 0.5) * pitch_y)
        x = int(left + (1 + col + 0.5) * pitch_x)
        return 1 if 0 <= y < dark.shape[0] and 0 <= x < dark.shape[1] and dark[y, x] else 0

    def byte(i: int) -> int:
        v = 0
        for j in range(8):
            v = (v << 1) | bit(i * 8 + j)
        return v

    n = struct.unpack(">I", bytes(byte(i) for i in range(4)))[0]
    if n > rows * _COLS // 8:
        return None
    return bytes(byte(4 + i) for i in range(n)).decode("utf-8", "replace")
