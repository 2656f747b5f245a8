"""multipart/form-data decoding for uploads (pure; RFC 7578).

parse(content_type, body, max_bytes) -> Form: text fields (a name may repeat, as
``timestamp_granularities[]`` does) and files. The HTTP layer stops reading at the
cap and answers 413; the cap is checked here as well so the codec is safe on its own.
Anything malformed is InvalidRequest naming what is wrong, never an exception of ours
leaking out (fuzz/test_fuzz_inference.py holds it to that).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from gateway import errors
from gateway.codecs.fields import bad

MAX_PARTS = 64
MAX_FIELD_BYTES = 64 * 1024
_BOUNDARY = re.compile(r'boundary=(?:"([^"]{1,70})"|([^\s;"]{1,70}))', re.I)
_PARAM = re.compile(r';\s*([A-Za-z*]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;\s]*))')


@dataclass(frozen=True)
class UploadedFile:
    name: str
    filename: str
    media_type: str
    data: bytes


@dataclass(frozen=True)
class Form:
    fields: dict[str, list[str]] = field(default_factory=dict)
    files: dict[str, UploadedFile] = field(default_factory=dict)

    def get(self, name: str) -> str | None:
        values = self.fields.get(name)
        return values[-1] if values else None

    def all(self, name: str) -> list[str]:
        return self.fields.get(name, []) + self.fields.get(name + "[]", [])


def boundary(content_type: str) -> str:
    if not content_type.lower().startswith("multipart/form-data"):
        bad("content-type", "must be multipart/form-data for an upload")
    m = _BOUNDARY.search(content_type)
    if not m:
        bad("content-type", "has no multipart boundary")
    return m.group(1) or m.group(2)


def _disposition(value: str) -> dict[str, str]:
    if not value.lower().startswith("form-data"):
        bad("multipart", "part is not form-data")
    out = {}
    for m in _PARAM.finditer(value):
        key = m.group(1).lower()
        raw = m.group(2) if m.group(2) is not None else m.group(3)
        out[key] = re.sub(r"\\(.)", r"\1", raw)
    return out


def _headers(blob: bytes) -> dict[str, str]:
    out = {}
    for line in blob.split(b"\r\n"):
        if not line:
            continue
        name, sep, value = line.partition(b":")
        if not sep:
            bad("multipart", "has a malformed part header")
        out[name.strip().lower().decode("latin-1")] = value.strip().decode("utf-8", "replace")
    return out


def parse(content_type: str, body: bytes, max_bytes: int) -> Form:
    if len(body) > max_bytes:
        raise errors.BodyTooLarge(f"upload is over {max_bytes} bytes")
    delim = b"--" + boundary(content_type).encode("latin-1")
    start = body.find(delim)
    if start < 0:
        bad("multipart", "body does not contain its boundary")
    fields: dict[str, list[str]] = {}
    files: dict[str, UploadedFile] = {}
    pos = start + len(delim)
    parts = 0
    while True:
        if body[pos:pos + 2] == b"--":
            break                                  # the closing delimiter
        if body[pos:pos + 2] != b"\r\n":
            bad("multipart", "boundary is not followed by CRLF")
        end = body.find(b"\r\n" + delim, pos + 2)
        if end < 0:
            bad("multipart", "body ends inside a part (no closing boundary)")
        part = body[pos + 2:end]
        pos = end + 2 + len(delim)
        parts += 1
        if parts > MAX_PARTS:
            bad("multipart", f"has more than {MAX_PARTS} parts")
        head, sep, data = part.partition(b"\r\n\r\n")
        if not sep:
            if not part.endswith(b"\r\n") and part:
                bad("multipart", "part has no header/body separator")
            head, data = part, b""
        hdrs = _headers(head)
        disp = _disposition(hdrs.get("content-disposition", ""))
        name = disp.get("name")
        if not name:
            bad("multipart", "part has no name")
        if "filename" in disp or "filename*" in disp:
            files[name] = UploadedFile(name=name, filename=disp.get("filename") or "upload",
                                       media_type=hdrs.get("content-type", "application/octet-stream"),
                                       data=data)
        else:
            if len(data) > MAX_FIELD_BYTES:
                bad(name, f"is over {MAX_FIELD_BYTES} bytes")
            fields.setdefault(name, []).append(data.decode("utf-8", "replace"))
    return Form(fields=fields, files=files)


def encode(fields: list[tuple[str, str]], files: list[tuple[str, str, str, bytes]]) -> tuple[bytes, str]:
    """(body, content type) for an upload; files are (name, filename, media type, data).
    The boundary is derived from the content so the same upload encodes the same."""
    import hashlib
    h = hashlib.sha256()
    for _, _, _, data in files:
        h.update(data)
    b = "prism-" + h.hexdigest()[:24]
    out = bytearray()
    for name, value in fields:
        out += f'--{b}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode() + value.encode() + b"\r\n"
    for name, filename, mime, data in files:
        safe = filename.replace('"', "").replace("\r", "").replace("\n", "")
        out += (f'--{b}\r\nContent-Disposition: form-data; name="{name}"; filename="{safe}"\r\n'
                f"Content-Type: {mime}\r\n\r\n").encode() + data + b"\r\n"
    out += f"--{b}--\r\n".encode()
    return bytes(out), f"multipart/form-data; boundary={b}"
