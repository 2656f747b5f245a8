"""OCR in the Mistral shape, client side and upstream (kind ``mistral``) (pure).

to_canonical(body, max_bytes): the document as a URL (fetched later through the SSRF
guard, or handed to an upstream that fetches for itself) or a base64 data URL decoded
here. from_canonical(res, model) answers pages[] with index, markdown, images and
dimensions, and usage_info.pages_processed. upstream_body / upstream_result speak to a
Mistral-compatible /v1/ocr.
"""
from __future__ import annotations

import base64
import binascii
import re

from gateway import canonical_ops as o
from gateway import errors
from gateway.codecs.fields import bad, body_with_model, is_int, opt_bool

MAX_PAGES_LIST = 1000
# What a vision chat model is asked for each page when the route has no OCR API.
OCR_INSTRUCTION = "Transcribe all text on this page image to Markdown."
_DATA_URL = re.compile(r"data:([\w.+-]+/[\w.+-]+)?(?:;[\w-]+=[\w.-]+)*;base64,(.*)", re.S)


def data_url(url: str, where: str, max_bytes: int) -> tuple[bytes, str]:
    m = _DATA_URL.fullmatch(url)
    if not m:
        bad(where, "must be an http(s) URL or a base64 data: URL")
    if len(m.group(2)) > max_bytes * 4 // 3 + 8:
        raise errors.BodyTooLarge(f"{where} is over {max_bytes} bytes")
    try:
        raw = base64.b64decode(m.group(2), validate=True)
    except (binascii.Error, ValueError):
        bad(where, "is not valid base64")
    if not raw:
        bad(where, "is empty")
    return raw, m.group(1) or "application/octet-stream"


def _page_ranges(text: str) -> list[int]:
    """Mistral's string form: "0,2-4" (indexes from 0)."""
    out: list[int] = []
    for part in text.split(","):
        m = re.fullmatch(r"\s*(\d{1,5})\s*(?:-\s*(\d{1,5})\s*)?", part)
        if not m or (m.group(2) and int(m.group(2)) < int(m.group(1))):
            bad("pages", "must be page indexes like [0, 2] or \"0,2-4\"")
        lo, hi = int(m.group(1)), int(m.group(2) or m.group(1))
        if hi - lo >= MAX_PAGES_LIST or len(out) > MAX_PAGES_LIST:
            bad("pages", f"names more than {MAX_PAGES_LIST} pages")
        out.extend(range(lo, hi + 1))
    return out


def to_canonical(body: object, max_bytes: int) -> o.OcrRequest:
    body, model = body_with_model(body)
    doc = body.get("document")
    if not isinstance(doc, dict):
        bad("document", "is required: {type: document_url | image_url, ...}")
    kind = doc.get("type") or ("image_url" if "image_url" in doc else "document_url")
    if kind not in ("document_url", "image_url"):
        bad("document.type", "must be document_url or image_url")
    url = doc.get(kind)
    if isinstance(url, dict):
        url = url.get("url")
    if not isinstance(url, str) or not url:
        bad(f"document.{kind}", "is required and must be a URL string")
    pages = body.get("pages")
    if isinstance(pages, str):
        pages = _page_ranges(pages)
    if pages is not None:
        if not isinstance(pages, list) or len(pages) > MAX_PAGES_LIST or not all(
                is_int(p) and 0 <= p < 100_000 for p in pages):
            bad("pages", "must be an array of page indexes (from 0)")
        pages = tuple(sorted(set(pages)))
    include = bool(opt_bool(body, "include_image_base64"))
    if url.startswith("data:"):
        data, mime = data_url(url, f"document.{kind}", max_bytes)
        return o.OcrRequest(model=model, kind=kind, data=data, media_type=mime, pages=pages,
                            include_image_base64=include)
    if not re.match(r"https?://", url, re.I):
        bad(f"document.{kind}", "must be an http(s) URL or a base64 data: URL")
    return o.OcrRequest(model=model, kind=kind, url=url, pages=pages, include_image_base64=include)


def from_canonical(res: o.OcrResult, model: str) -> dict:
    pages = [{"index": p.index, "markdown": p.markdown, "images": list(p.images),
              "dimensions": {"dpi": p.dpi, "height": p.height, "width": p.width}}
             for p in res.pages]
    return {"pages": pages, "model": model, "document_annotation": None,
            "usage_info": {"pages_processed": len(pages), "doc_size_bytes": res.doc_size_bytes}}


def upstream_body(req: o.OcrRequest, model: str) -> dict:
    if req.data is not None:
        url = f"data:{req.media_type or 'application/octet-stream'};base64," + base64.b64encode(req.data).decode()
    else:
        url = req.url
    doc = {"type": req.kind, req.kind: url}
    body: dict = {"model": model, "document": doc, "include_image_base64": req.include_image_base64}
    if req.pages is not None:
        body["pages"] = list(req.pages)
    return body


def upstream_result(data: object) -> o.OcrResult:
    items = data.get("pages") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise errors.UpstreamProtocolError("upstream OCR answer has no pages array")
    pages = []
    for i, p in enumerate(items):
        if not isinstance(p, dict) or not is_int(p.get("index")) or not isinstance(p.get("markdown"), str):
            raise errors.UpstreamProtocolError(f"upstream OCR pages[{i}] is malformed")
        dims = p.get("dimensions") if isinstance(p.get("dimensions"), dict) else {}
        imgs = tuple(x for x in p.get("images") or () if isinstance(x, dict))
        pages.append(o.OcrPage(index=p["index"], markdown=p["markdown"],
                               width=int(dims.get("width") or 0), height=int(dims.get("height") or 0),
                               dpi=int(dims.get("dpi") or 72), images=imgs))
    usage = data.get("usage_info") if isinstance(data.get("usage_info"), dict) else {}
    size = usage.get("doc_size_bytes")
    return o.OcrResult(pages=tuple(pages), model=str(data.get("model", "")),
                       doc_size_bytes=size if is_int(size) else None)
