"""/v1/files: multipart upload streamed to disk, list, get, content, delete."""
from __future__ import annotations

from typing import AsyncIterator
from urllib.parse import quote

import trio
from quart import Blueprint, Response, request
from werkzeug.exceptions import RequestEntityTooLarge

from gateway import errors
from gateway.http import common
from gateway.resources.blobs import boundary_of
from gateway.resources.files import PURPOSES, file_object, stream_file

bp = Blueprint("files", __name__)

# Multipart framing and form fields around the file itself.
UPLOAD_SLACK = 1024 * 1024


def json_response(payload, status: int = 200) -> Response:
    return Response(common.dumps(payload), status=status, content_type="application/json")


def upload_request_class(base, max_file_bytes: int):
    """Quart's request class, letting POST /v1/files bodies run to the file cap instead
    of server.max_body_bytes (the upload is streamed to disk, never buffered)."""
    class UploadRequest(base):
        def __init__(self, method, scheme, path, *args, max_content_length=None, **kw):
            if method == "POST" and path == "/v1/files":
                max_content_length = max_file_bytes + UPLOAD_SLACK
            super().__init__(method, scheme, path, *args, max_content_length=max_content_length, **kw)
    return UploadRequest


async def body_chunks() -> AsyncIterator[bytes]:
    timeout = request.body_timeout or 60
    it = request.body.__aiter__()
    while True:
        try:
            with trio.fail_after(timeout):
                chunk = await it.__anext__()
        except StopAsyncIteration:
            return
        except trio.TooSlowError:
            err = errors.InvalidRequest("Timed out reading the upload")
            err.status = 408
            raise err from None
        except RequestEntityTooLarge:
            raise errors.BodyTooLarge("Upload exceeds the per-file limit of "
                                      f"{common.services().config.resources.max_file_bytes} bytes "
                                      "(resources.max_file_bytes)", code="file_too_large") from None
        yield chunk


def page_args(max_limit: int, default: int) -> tuple[int, str | None, str]:
    try:
        limit = int(request.args.get("limit", default))
    except ValueError:
        raise errors.InvalidRequest("limit must be an integer", field="limit") from None
    if not 1 <= limit <= max_limit:
        raise errors.InvalidRequest(f"limit must be between 1 and {max_limit}", field="limit")
    order = request.args.get("order", "desc")
    if order not in ("asc", "desc"):
        raise errors.InvalidRequest("order must be 'asc' or 'desc'", field="order")
    return limit, request.args.get("after") or None, order


def page(objects: list[dict], has_more: bool) -> dict:
    return {"object": "list", "data": objects,
            "first_id": objects[0]["id"] if objects else None,
            "last_id": objects[-1]["id"] if objects else None, "has_more": has_more}


def _files():
    return common.services().resources.files


@bp.post("/v1/files")
async def upload():
    ctx = await common.authenticate("/v1/files", "openai", log=False)
    boundary = boundary_of(request.headers.get("content-type", ""))
    row = await _files().upload(ctx.account_id, body_chunks(), boundary)
    return json_response(file_object(row))


@bp.get("/v1/files")
async def listing():
    ctx = await common.authenticate("/v1/files", "openai", log=False)
    limit, after, order = page_args(10000, 10000)
    purpose = request.args.get("purpose") or None
    if purpose is not None and purpose not in PURPOSES:
        raise errors.InvalidRequest(f"purpose must be one of {', '.join(PURPOSES)}", field="purpose")
    rows, more = await _files().listing(ctx.account_id, purpose=purpose, limit=limit,
                                        after=after, order=order)
    return json_response(page([file_object(r) for r in rows], more))


@bp.get("/v1/files/<file_id>")
async def get(file_id: str):
    ctx = await common.authenticate("/v1/files", "openai", log=False)
    return json_response(file_object(await _files().get(ctx.account_id, file_id)))


@bp.get("/v1/files/<file_id>/content")
async def content(file_id: str):
    ctx = await common.authenticate("/v1/files", "openai", log=False)
    row, path = await _files().content(ctx.account_id, file_id)
    return Response(stream_file(path), content_type="application/octet-stream",
                    headers={"Content-Length": str(row.bytes),
                             "Content-Disposition": "attachment; filename*=UTF-8''"
                                                    + quote(row.filename, safe="")})


@bp.delete("/v1/files/<file_id>")
async def delete(file_id: str):
    ctx = await common.authenticate("/v1/files", "openai", log=False)
    await _files().delete(ctx.account_id, file_id)
    return json_response({"id": file_id, "object": "file", "deleted": True})
