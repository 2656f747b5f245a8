"""Image generation through a multimodal chat upstream (provider kind gemini).

Such an upstream has no Images API: it makes images as parts of a chat answer. This
client turns an /v1/images/generations body into a canonical chat request and reads
the images back out, so it plugs into gateway/media/images.py like any media client:

    user message   TextPart(prompt + the size / aspect_ratio / style / quality /
                   negative_prompt hints as plain sentences) + one ImagePart(data_b64)
                   per reference image (fetched by the gateway under media/fetch.py,
                   hence needs_reference_bytes)
    hint           metadata["response_modalities"] = ["TEXT", "IMAGE"] (canonical.py),
                   which the Gemini codec sends as generationConfig.responseModalities
    answer         the assistant message's inline ImageParts, as OpenAI Images data
                   items: b64_json, or a data: URL for response_format url (there is
                   no server of ours to host the bytes)

One chat call per requested image, in sequence: Gemini answers one candidate per call
(the codec serves candidateCount 1 only) and usually one image per answer. When a
seed is given, call i uses seed + i so the n images differ. A call that fails after
some images came back ends the loop and the images so far are returned (and billed,
per image, by images.py); a failure before any image is raised, so images.py can fail
over to the next route or void the hold. Dispatch hands in the route's chat provider.
"""
from __future__ import annotations

import base64
import time
from typing import Any

from gateway import canonical as c
from gateway import errors

CHAT_IMAGE_KINDS = ("gemini",)
RESPONSE_MODALITIES = ("TEXT", "IMAGE")
_MAGIC = ((b"\x89PNG\r\n\x1a\n", "image/png"), (b"\xff\xd8\xff", "image/jpeg"),
          (b"GIF8", "image/gif"))
_HINTS = (("size", "Size"), ("aspect_ratio", "Aspect ratio"), ("style", "Style"),
          ("quality", "Quality"), ("negative_prompt", "Avoid"))


def media_type(data: bytes) -> str:
    for magic, kind in _MAGIC:
        if data.startswith(magic):
            return kind
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return "image/png"


def prompt_text(body: dict[str, Any]) -> str:
    hints = [f"{label}: {body[key]}." for key, label in _HINTS
             if isinstance(body.get(key), str) and body[key]]
    return "\n\n".join([body["prompt"], " ".join(hints)]) if hints else body["prompt"]


def chat_request(body: dict[str, Any], references: tuple[bytes, ...],
                 seed: int | None = None) -> c.Request:
    """The canonical chat request asking for one image (pure)."""
    parts: list[c.Part] = [c.TextPart(prompt_text(body))]
    parts += [c.ImagePart(data_b64=base64.b64encode(r).decode(), media_type=media_type(r))
              for r in references]
    return c.Request(model=body["model"], messages=(c.Message("user", tuple(parts)),),
                     seed=seed, user=body.get("user"),
                     metadata={"response_modalities": list(RESPONSE_MODALITIES)})


def images_of(resp: c.Response) -> list[c.ImagePart]:
    return [p for p in resp.message.parts
            if isinstance(p, c.ImagePart) and p.data_b64 is not None]


def data_item(img: c.ImagePart, response_format: str) -> dict[str, str]:
    if response_format == "b64_json":
        return {"b64_json": img.data_b64 or ""}
    return {"url": f"data:{img.media_type or 'image/png'};base64,{img.data_b64}"}


async def generate(provider: Any, body: dict[str, Any],
                   references: tuple[bytes, ...] = ()) -> dict:
    """Images through one chat upstream (`provider`, on the route dispatch chose)."""
    n = body.get("n", 1)
    seed = body.get("seed")
    data: list[dict[str, str]] = []
    for i in range(n):
        req = chat_request(body, references, None if seed is None else seed + i)
        try:
            resp = await provider.complete(req, body["model"])
        except (errors.UpstreamError, errors.RateLimited):
            if data:
                break   # keep (and bill) what came back
            raise
        data += [data_item(img, body.get("response_format", "url"))
                 for img in images_of(resp)[:n - len(data)]]
    return {"created": int(time.time()), "data": data}
