"""Larger bodies for upload routes: audio for transcription may be up to
[inference] upload_max_bytes (25 MB by default), beyond the JSON routes' max_body_bytes.

Both body guards take the per-path cap from here: the ASGI BodyLimit (declared
Content-Length) and Quart's own MAX_CONTENT_LENGTH, which Quart fixes when it builds
the request, hence a request class that picks the cap by path."""
from __future__ import annotations

from typing import Any

from gateway.config import Config

UPLOAD_PATHS = ("/v1/audio/transcriptions", "/v1/audio/translations")
# Room for the multipart framing and the form fields around the file itself.
_FRAMING = 64 * 1024


def body_caps(config: Config) -> dict[str, int]:
    cap = max(config.server.max_body_bytes, config.inference.upload_max_bytes + _FRAMING)
    return {p: cap for p in UPLOAD_PATHS}


def request_class(base: type, caps: dict[str, int]) -> type:
    class UploadAwareRequest(base):   # type: ignore[misc, valid-type]
        def __init__(self, method: str, scheme: str, path: str, *args: Any,
                     max_content_length: int | None = None, **kw: Any) -> None:
            super().__init__(method, scheme, path, *args,
                             max_content_length=caps.get(path, max_content_length), **kw)
    return UploadAwareRequest
