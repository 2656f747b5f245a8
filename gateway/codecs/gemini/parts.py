"""Gemini part encoding shared by requests, responses and streams: images, code
parts, base64 checks, call ids and thought signatures on model turns."""
from __future__ import annotations

import base64
import json
import re
from typing import Any

from gateway.canonical import ImagePart, Part, TextPart, ThinkingPart, ToolCallPart
from gateway.codecs.fields import sniff_image_type

SYNTHETIC_ID = re.compile(r"call_[0-9]+")
_IMAGE_EXT = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg",
              ".gif": "image/gif", ".webp": "image/webp", ".heic": "image/heic",
              ".heif": "image/heif"}

def dumps(v: Any) -> str:
    return json.dumps(v, ensure_ascii=False, separators=(",", ":"))


def render_code(kind: str, v: dict) -> str:
    """executableCode / codeExecutionResult as the text a reader would want."""
    if kind == "executableCode":
        lang = v.get("language")
        lang = lang.lower() if isinstance(lang, str) and lang != "LANGUAGE_UNSPECIFIED" else ""
        code = v.get("code")
        return f"```{lang}\n{code if isinstance(code, str) else ''}\n```"
    out = v.get("output")
    return out if isinstance(out, str) else ""


def image_type(mime: object, uri: str | None = None) -> str | None:
    if isinstance(mime, str) and mime.lower().startswith("image/"):
        return mime
    if mime is None and uri is not None:
        m = re.search(r"\.[A-Za-z]+$", uri.split("?", 1)[0])
        return _IMAGE_EXT.get(m[0].lower()) if m else None
    return None


_B64_STD = re.compile(r"[A-Za-z0-9+/]*={0,2}")
_B64_URL = re.compile(r"[A-Za-z0-9_-]*={0,2}")


def is_base64(text: str) -> bool:
    """Whether google-genai will accept ``text`` as bytes: standard or URL-safe
    base64, padded or not, and exactly what encoding its bytes gives back."""
    core = text.rstrip("=")
    if core != text and len(text) % 4:
        return False
    for pattern, alt in ((_B64_STD, None), (_B64_URL, b"-_")):
        if pattern.fullmatch(text):
            try:
                raw = base64.b64decode(core + "=" * (-len(core) % 4), altchars=alt, validate=True)
            except ValueError:
                return False
            return base64.b64encode(raw, altchars=alt).decode().rstrip("=") == core
    return False


def signature_out(sig: str | None) -> str | None:
    """A signature fit to write to Gemini, which types it as bytes: anything else came
    from another provider, would make google-genai fail to parse the whole response,
    and could not mean anything to Gemini anyway."""
    return sig if sig and is_base64(sig) else None


def is_synthetic_id(call_id: str) -> bool:
    return SYNTHETIC_ID.fullmatch(call_id) is not None


def image_out(p: ImagePart) -> dict:
    if p.data_b64 is not None:
        return {"inlineData": {"mimeType": p.media_type or sniff_image_type(p.data_b64), "data": p.data_b64}}
    url = p.url or ""
    return {"fileData": {"mimeType": p.media_type or image_type(None, url) or "image/jpeg",
                         "fileUri": url}}


def _args_out(arguments: str) -> dict:
    try:
        value = json.loads(arguments) if arguments.strip() else {}
    except ValueError:
        return {"_raw": arguments}
    return value if isinstance(value, dict) else {"_raw": arguments}


def with_id(d: dict, call_id: str) -> dict:
    if call_id and not is_synthetic_id(call_id):
        d["id"] = call_id
    return d


class Signer:
    """A signature that arrived on its own (an empty ThinkingPart or ThinkingDelta),
    held until the part it belongs to, which is the next one written."""

    def __init__(self) -> None:
        self.pending: str | None = None

    def hold(self, sig: str) -> list[dict]:
        """Hold ``sig``; returns a carrier part for one already held, to write first."""
        flushed = self.flush()
        self.pending = sig
        return flushed

    def take(self) -> str | None:
        sig, self.pending = self.pending, None
        return sig

    def sign(self, part: dict, own: str | None = None) -> list[dict]:
        """The parts to write for ``part``: it takes the held signature unless it has
        its own, in which case the held one goes first on a carrier of its own."""
        if own:
            part["thoughtSignature"] = own
            return self.flush() + [part]
        if self.pending:
            part["thoughtSignature"] = self.take()
        return [part]

    def flush(self) -> list[dict]:
        """Gemini's own shape for a signature with no part: an empty text part."""
        return [{"text": "", "thoughtSignature": self.take()}] if self.pending else []


def model_parts_out(parts: tuple[Part, ...], names: dict[str, str] | None = None) -> list[dict]:
    """An assistant message's parts as Gemini model-turn parts (client or upstream)."""
    out: list[dict] = []
    signer = Signer()
    for p in parts:
        if isinstance(p, ThinkingPart):
            sig = signature_out(p.signature)
            if p.text:
                out += signer.sign({"text": p.text, "thought": True}, sig)
            elif sig:
                out += signer.hold(sig)
            continue
        if isinstance(p, TextPart):
            item = {"text": p.text}
        elif isinstance(p, ToolCallPart):
            if names is not None:
                names[p.id] = p.name
            item = {"functionCall": with_id({"name": p.name, "args": _args_out(p.arguments)}, p.id)}
        elif isinstance(p, ImagePart) and (p.data_b64 is None or is_base64(p.data_b64)):
            item = image_out(p)
        else:
            continue  # inline bytes that are not base64 would fail the whole body
        out += signer.sign(item)
    return out + signer.flush()


