"""OCR through any vision chat model, for routes whose upstream has no OCR API.

A PDF is split into pages: a page with a text layer is read from it (no upstream call,
nothing billed for the model's tokens), a page without one is rendered to an image
(pypdfium2) and sent to the chat model with a transcription instruction; an image
document is one such page. The upstream's token usage is not what the client pays:
OCR is priced per page, like Mistral's."""
from __future__ import annotations

import base64

from gateway import canonical as c
from gateway import canonical_ops as o
from gateway import errors
from gateway.config import ProviderConfig
from gateway.documents import probe
from gateway.codecs.ocr import OCR_INSTRUCTION

_MAX_TOKENS = 4096


class VisionOcr:
    fetches_urls = False

    def __init__(self, config: ProviderConfig, chat) -> None:
        if chat is None:
            raise errors.UpstreamError(f"provider {config.id} has no chat API for OCR")
        self.config = config
        self._chat = chat

    async def aclose(self) -> None:
        return None   # the chat provider is owned by whoever built it

    async def _read(self, png: bytes, mime: str, model: str) -> str:
        req = c.Request(model=model, max_tokens=_MAX_TOKENS, messages=(c.Message("user", (
            c.ImagePart(data_b64=base64.b64encode(png).decode(), media_type=mime),
            c.TextPart(OCR_INSTRUCTION))),))
        resp = await self._chat.complete(req, model)
        return resp.message.text.strip()

    async def ocr(self, req: o.OcrRequest, model: str) -> o.OcrResult:
        assert req.data is not None, "the operation fetches URLs before calling a vision route"
        if probe.is_pdf(req.data):
            pages = []
            for i, text, png, w, h in probe.pdf_pages(req.data, req.pages):
                md = text if png is None else await self._read(png, "image/png", model)
                pages.append(o.OcrPage(index=i, markdown=md, width=w, height=h))
            return o.OcrResult(pages=tuple(pages), doc_size_bytes=len(req.data))
        md = await self._read(req.data, req.media_type or "image/png", model)
        return o.OcrResult(pages=(o.OcrPage(index=0, markdown=md),), doc_size_bytes=len(req.data))
