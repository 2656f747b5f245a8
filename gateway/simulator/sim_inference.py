"""What the simulator answers for embeddings, rerank, search and OCR (pure).

    embed(text, dims)        a unit vector, stable per text: every word adds the same
                             few signed components wherever it appears, so texts sharing
                             words have a higher cosine (retrieval tests mean something)
    rerank(query, docs)      word overlap: share of the query's words a document holds
    search(query, n, ...)    results derived from the query: titles, example.* URLs and
                             snippets that repeat the query's words
    ocr_pages(data, ...)     PDFs by text layer or page image, images by sim_ocr.read
Token counts use the gateway's tokenizer so usage agrees with what Prism would count.
"""
from __future__ import annotations

import hashlib
import math
import re

from gateway import canonical_ops as o
from gateway.codecs.ocr import OCR_INSTRUCTION

DEFAULT_DIMS = 256
_WORD = re.compile(r"[0-9a-zà-ÿ]+", re.I)


def words(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)]


def embed(text: str, dims: int = DEFAULT_DIMS) -> tuple[float, ...]:
    vec = [0.0] * dims
    for w in words(text) or [text]:
        h = hashlib.sha256(w.encode()).digest()
        for k in range(4):
            idx = int.from_bytes(h[4 * k:4 * k + 3], "big") % dims
            vec[idx] += 1.0 if h[4 * k + 3] & 1 else -1.0
    # A small component of the whole text keeps distinct texts distinct.
    h = hashlib.sha256(b"text:" + text.encode()).digest()
    for k in range(8):
        vec[h[k] % dims] += 0.05 if h[8 + k] & 1 else -0.05
    norm = math.sqrt(sum(x * x for x in vec)) or 1.0
    return tuple(round(x / norm, 6) for x in vec)


def rerank(query: str, docs: tuple[str, ...]) -> tuple[o.RerankHit, ...]:
    q = set(words(query))
    hits = []
    for i, d in enumerate(docs):
        dw = set(words(d))
        score = len(q & dw) / len(q) if q else 0.0
        # A slight preference for shorter documents breaks ties deterministically.
        score = round(score * 0.99 + 0.01 / (1 + len(dw)), 6)
        hits.append(o.RerankHit(index=i, score=score))
    hits.sort(key=lambda h: (-h.score, h.index))
    return tuple(hits)


def search(query: str, n: int, domains: tuple[str, ...] = ()) -> list[dict]:
    """Results in SearXNG's item shape (url, title, content, publishedDate)."""
    ws = words(query) or ["query"]
    allow = [d for d in domains if not d.startswith("-")]
    slug = "-".join(ws[:6])
    out = []
    for i in range(n):
        host = allow[i % len(allow)] if allow else f"{ws[i % len(ws)]}.example.com"
        h = hashlib.sha256(f"{query}|{i}".encode()).hexdigest()
        out.append({
            "url": f"https://{host}/{slug}/{i + 1}",
            "title": f"{' '.join(w.capitalize() for w in ws[:5])} - result {i + 1}",
            "content": f"About {' '.join(ws)}: simulated result {i + 1} ({h[:8]}).",
            "publishedDate": f"2026-{1 + int(h[:2], 16) % 12:02d}-{1 + int(h[2:4], 16) % 28:02d}",
        })
    return out


def ocr_image(data: bytes) -> str | None:
    from gateway.documents.pixels import decode_png
    from gateway.simulator.sim_ocr import read
    gray = decode_png(data)
    return read(gray) if gray is not None else None


def ocr_pages(data: bytes, pages: tuple[int, ...] | None) -> list[o.OcrPage]:
    """Mistral-style pages for a PDF (text layer, else the page image) or one image."""
    from gateway.documents import probe
    if probe.is_pdf(data):
        out = []
        for i, text, png, w, h in probe.pdf_pages(data, pages):
            if png is not None:
                text = ocr_image(png) or ""
            out.append(o.OcrPage(index=i, markdown=text, width=w, height=h))
        return out
    text = ocr_image(data)
    from gateway.documents.pixels import decode_png
    gray = decode_png(data)
    h, w = gray.shape if gray is not None else (0, 0)
    return [o.OcrPage(index=0, markdown=text or "", width=int(w), height=int(h))]


def ocr_reply(req, prompt: str) -> str | None:
    """A vision chat asked to transcribe a page (the gateway's OCR fallback): the text
    the simulator reads off the last user message's inline image, else None."""
    import base64
    import binascii
    from gateway import canonical as c
    if OCR_INSTRUCTION not in prompt:
        return None
    last = next((m for m in reversed(req.messages) if m.role == "user"), None)
    for p in last.parts if last is not None else ():
        if isinstance(p, c.ImagePart) and p.data_b64 is not None:
            try:
                return ocr_image(base64.b64decode(p.data_b64, validate=True)) or ""
            except (binascii.Error, ValueError):
                return ""
    return None
