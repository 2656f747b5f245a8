"""Measure what a client uploads, before any hold or upstream call (no I/O of ours).

audio_seconds(data, filename): the length of an audio file, read by mutagen from the
file's own headers (WAV, MP3, FLAC, Ogg/Opus, M4A/AAC...). A file whose length cannot be
read is refused with a 400: transcription is priced per minute, and a price cannot be
held for audio of unknown length.

pdf_pages(data): each page's text layer (pypdf) and, where a page has none, its
rendering as a grey PNG (pypdfium2), for OCR through a vision chat model.
"""
from __future__ import annotations

import io
import math

from gateway import errors

RENDER_DPI = 144


def audio_seconds(data: bytes, filename: str = "") -> float:
    import mutagen
    try:
        f = mutagen.File(io.BytesIO(data))
    except Exception:   # mutagen raises its own tree plus struct/IO errors on junk
        f = None
    length = getattr(getattr(f, "info", None), "length", None)
    if not isinstance(length, (int, float)) or not math.isfinite(length) or length <= 0:
        raise errors.InvalidRequest(
            f"file: could not read the length of the audio in {filename or 'the upload'!r}; "
            "send mp3, mp4/m4a, ogg/opus, flac or wav", field="file", code="unreadable_audio")
    return float(length)


def is_pdf(data: bytes) -> bool:
    return data[:5] == b"%PDF-"


def pdf_page_count(data: bytes) -> int:
    import pypdf
    try:
        return len(pypdf.PdfReader(io.BytesIO(data)).pages)
    except Exception:   # pypdf raises many kinds of errors on a broken file
        raise errors.InvalidRequest("document: is not a readable PDF", field="document") from None


def pdf_pages(data: bytes, wanted: tuple[int, ...] | None) -> list[tuple[int, str, bytes | None, int, int]]:
    """(index, text layer, PNG of the page or None when it has text, width, height)."""
    import pypdf
    import pypdfium2
    from gateway.documents.pixels import png
    try:
        reader = pypdf.PdfReader(io.BytesIO(data))
        n = len(reader.pages)
    except Exception:
        raise errors.InvalidRequest("document: is not a readable PDF", field="document") from None
    indexes = [i for i in (wanted if wanted is not None else range(n)) if i < n]
    if wanted is not None and not indexes:
        raise errors.InvalidRequest(f"pages: the document has {n} pages (indexes from 0)", field="pages")
    out = []
    doc = None
    try:
        for i in indexes:
            page = reader.pages[i]
            w, h = int(page.mediabox.width), int(page.mediabox.height)
            try:
                text = (page.extract_text() or "").strip()
            except Exception:
                text = ""
            if text:
                out.append((i, text, None, w, h))
                continue
            if doc is None:
                doc = pypdfium2.PdfDocument(data)
            bitmap = doc[i].render(scale=RENDER_DPI / 72, grayscale=True)
            arr = bitmap.to_numpy()
            gray = arr if arr.ndim == 2 else arr[..., :3].mean(axis=2).astype("uint8")
            out.append((i, "", png(gray), w, h))
    finally:
        if doc is not None:
            doc.close()
    return out
