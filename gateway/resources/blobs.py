"""Content-addressed blobs on disk and the streaming multipart reader that fills them.

An upload is parsed as it arrives (werkzeug's sans-io MultipartDecoder, which Quart
already depends on), its file part written chunk by chunk to a staging file in the blob
directory while SHA-256 runs over it, so a 500 MB upload never sits in memory. The
staging file is moved to `<blob_dir>/<sha[:2]>/<sha>` by the store job that records it
(store/files.py says why there).
"""
from __future__ import annotations

import hashlib
import os
import secrets
from dataclasses import dataclass, field
from typing import AsyncIterator

import trio
from werkzeug.sansio.multipart import Data, Epilogue, Field, File, MultipartDecoder, NeedData

from gateway import errors

# Form fields are small (purpose, expires_after[...]); a larger one is not ours.
_FIELD_MAX = 64 * 1024


class BlobDir:
    def __init__(self, root: str) -> None:
        self.root = root

    def path_of(self, sha256: str) -> str:
        return os.path.join(self.root, sha256[:2], sha256)

    def staging_path(self) -> str:
        return os.path.join(self.root, "staging", secrets.token_hex(12))

    def ensure(self) -> None:
        os.makedirs(os.path.join(self.root, "staging"), exist_ok=True)

    def clear_staging(self) -> None:
        """Uploads cut off by a restart leave staging files nobody will finish."""
        staging = os.path.join(self.root, "staging")
        for name in os.listdir(staging) if os.path.isdir(staging) else ():
            os.unlink(os.path.join(staging, name))


@dataclass
class Upload:
    fields: dict[str, str] = field(default_factory=dict)
    filename: str | None = None
    staged: str | None = None
    size: int = 0
    sha256: str = ""


async def receive_upload(chunks: AsyncIterator[bytes], boundary: bytes, blobs: BlobDir,
                         max_file_bytes: int) -> Upload:
    """Read a multipart body; its `file` part goes to a staging file, which the caller
    owns once this returns (on failure it is removed here)."""
    decoder = MultipartDecoder(boundary)   # field sizes are checked below
    up = Upload()
    digest = hashlib.sha256()
    current: str | None = None     # the form field being read, or "\0file" for the file
    value = bytearray()
    out = None
    failed: object = False
    try:
        async for chunk in chunks:
            decoder.receive_data(chunk)
            while True:
                ev = decoder.next_event()
                if isinstance(ev, (NeedData, Epilogue)):
                    break
                if isinstance(ev, File) and ev.name == "file":
                    if up.staged is not None:
                        raise errors.InvalidRequest("Send one `file` part", field="file")
                    current = "\0file"
                    up.filename = os.path.basename(ev.filename or "upload")[:255] or "upload"
                    up.staged = blobs.staging_path()
                    out = await trio.open_file(up.staged, "wb")
                elif isinstance(ev, (File, Field)):
                    current = ev.name
                    value = bytearray()
                elif isinstance(ev, Data):
                    if current == "\0file":
                        up.size += len(ev.data)
                        if up.size > max_file_bytes:
                            raise errors.BodyTooLarge(
                                f"File exceeds the per-file limit of {max_file_bytes} bytes "
                                "(resources.max_file_bytes)", code="file_too_large")
                        digest.update(ev.data)
                        await out.write(ev.data)
                    elif current is not None:
                        value.extend(ev.data)
                        if len(value) > _FIELD_MAX:
                            raise errors.InvalidRequest(f"Form field {current!r} is too long",
                                                        field=current)
                    if not ev.more_data:
                        if current not in (None, "\0file"):
                            up.fields[current] = value.decode("utf-8", "replace")
                        current = None
        decoder.receive_data(None)
    except ValueError as exc:    # werkzeug's own complaint about a malformed body
        failed = errors.InvalidRequest(f"Malformed multipart body: {exc}")
        raise failed from None
    except BaseException:
        failed = True
        raise
    finally:
        if out is not None:
            with trio.CancelScope(shield=True):
                await out.aclose()
        if failed and up.staged is not None and os.path.exists(up.staged):
            os.unlink(up.staged)
    up.sha256 = digest.hexdigest()
    return up


def boundary_of(content_type: str) -> bytes:
    from werkzeug.http import parse_options_header
    mime, options = parse_options_header(content_type or "")
    if mime != "multipart/form-data" or not options.get("boundary"):
        raise errors.InvalidRequest("Upload files as multipart/form-data with a `file` part "
                                    "and a `purpose` field")
    return options["boundary"].encode("latin-1")
