"""The simulator's images and videos: deterministic tiny files and the OpenAI-style
media routes of the HTTP simulator.

Pure generators (no I/O):
    png(width, height, seed)      a valid RGB PNG (zlib + struct), pixels from the seed
    mp4(seed)                     a few hundred bytes: ftyp + moov + mdat boxes
    image_size(size, aspect)      "1024x1024" / "16:9" -> pixel size at 1/64 scale
    chat_images(req, prompt)      the PNG ImagePart a chat request asking for IMAGE output gets
    video_status(created, delay)  queued -> in_progress -> completed, from the clock

Video jobs are stateless on purpose: an id carries its creation time, delay and
outcome, so a job survives a restart of whichever process polls it (the in-process
simulator lives inside the gateway). Tests steer media with a prompt directive
``[[sim video_delay=2 create_delay=0.5 status=500 fail=1 returned=1]]`` (see faults.py for the chat one).

MediaSim serves, for the HTTP simulator (server.py hooks it in):
    POST /v1/images/generations        OpenAI Images: url (-> /_sim/images/<id>.png) or b64_json
    POST /v1/videos                    create a job; GET /v1/videos/{id}; DELETE cancels
    GET  /v1/videos/{id}/content       the MP4 once completed
    GET  /_sim/images/<id>.png         a generated image by id (also a reference image source)
"""
from __future__ import annotations

import base64
import hashlib
import json
import re
import struct
import time
import zlib
from typing import Any

from gateway import canonical as c
from gateway.simulator.wire import read_body

_DIRECTIVE = re.compile(r"\[\[sim(?:\s([^\]]*))?\]\]")
_PAIR = re.compile(r"([A-Za-z_]\w*)=(\S+)")
SCALE = 64
MAX_SIDE = 64
DEFAULT_VIDEO_DELAY = 1.0


def directives(prompt: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for m in _DIRECTIVE.finditer(prompt or ""):
        out.update(dict(_PAIR.findall(m.group(1) or "")))
    return out


def _float(v: str | None, default: float) -> float:
    try:
        return float(v) if v is not None else default
    except ValueError:
        return default


def image_size(size: str | None, aspect_ratio: str | None) -> tuple[int, int]:
    """Honour the requested shape at small scale (1/64, at most 64 px a side)."""
    w, h = 1024, 1024
    if isinstance(size, str) and re.fullmatch(r"\d{1,5}x\d{1,5}", size):
        w, h = (int(x) for x in size.split("x"))
    elif isinstance(aspect_ratio, str) and re.fullmatch(r"\d{1,3}:\d{1,3}", aspect_ratio):
        a, b = (int(x) for x in aspect_ratio.split(":"))
        if a and b:
            w, h = (1024, round(1024 * b / a)) if a >= b else (round(1024 * a / b), 1024)
    return (max(1, min(MAX_SIDE, round(w / SCALE))), max(1, min(MAX_SIDE, round(h / SCALE))))


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png(width: int, height: int, seed: bytes) -> bytes:
    digest = hashlib.sha256(seed).digest()
    r0, g0, b0 = digest[0], digest[1], digest[2]
    rows = bytearray()
    for y in range(height):
        rows.append(0)  # filter type None
        for x in range(width):
            rows += bytes(((r0 + 4 * x) & 255, (g0 + 4 * y) & 255, (b0 + 2 * (x + y)) & 255))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr)
            + _chunk(b"IDAT", zlib.compress(bytes(rows), 9)) + _chunk(b"IEND", b""))


def _box(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", 8 + len(data)) + kind + data


def mp4(seed: bytes) -> bytes:
    """Not playable, but every box is well formed: ftyp (isom), moov/mvhd, mdat."""
    ftyp = _box(b"ftyp", b"isom" + struct.pack(">I", 512) + b"isomiso2mp41")
    mvhd = _box(b"mvhd", bytes(4) + struct.pack(">IIII", 0, 0, 1000, 4000) + bytes(80))
    payload = b"".join(hashlib.sha256(seed + bytes([i])).digest() for i in range(8))
    return ftyp + _box(b"moov", mvhd) + _box(b"mdat", payload)


def generate_images(prompt: str, n: int, *, size: str | None = None,
                    aspect_ratio: str | None = None, seed: Any = None,
                    references: tuple[bytes, ...] = ()) -> list[bytes]:
    """n PNGs, a pure function of the prompt, seed, shape and reference bytes."""
    w, h = image_size(size, aspect_ratio)
    base = hashlib.sha256(json.dumps([prompt, seed, w, h]).encode()
                          + b"".join(hashlib.sha256(r).digest() for r in references)).digest()
    return [png(w, h, base + bytes([i])) for i in range(n)]


def _wants_images(req: c.Request) -> bool:
    modalities = req.metadata.get("response_modalities")
    return isinstance(modalities, (list, tuple)) and any(
        isinstance(m, str) and m.upper() == "IMAGE" for m in modalities)


def _reference_bytes(req: c.Request) -> tuple[bytes, ...]:
    last = next((m for m in reversed(req.messages) if m.role == "user"), None)
    out = []
    for p in last.parts if last is not None else ():
        if isinstance(p, c.ImagePart) and p.data_b64 is not None:
            try:
                out.append(base64.b64decode(p.data_b64, validate=True))
            except ValueError:
                continue
    return tuple(out)


def chat_images(req: c.Request, prompt: str) -> tuple[c.ImagePart, ...]:
    """A chat request's generated image (core.py rule 7): one PNG when the request
    carries the response_modalities hint with IMAGE, from the prompt, the seed and the
    last user message's inline reference images; else nothing."""
    if not _wants_images(req):
        return ()
    pic = generate_images(prompt, 1, seed=req.seed, references=_reference_bytes(req))[0]
    return (c.ImagePart(data_b64=base64.b64encode(pic).decode(), media_type="image/png"),)


# ---------------------------------------------------------------- stateless video jobs

def video_id(prompt: str, created: float) -> str:
    d = directives(prompt)
    delay = max(0.0, _float(d.get("video_delay"), DEFAULT_VIDEO_DELAY))
    fail = 1 if d.get("fail") in ("1", "true", "yes") else 0
    tag = hashlib.sha256(f"{prompt}|{created}".encode()).hexdigest()[:12]
    return f"video_{int(created * 1000)}_{int(delay * 1000)}_{fail}_{tag}"


def parse_video_id(vid: str) -> tuple[float, float, bool] | None:
    m = re.fullmatch(r"video_(\d+)_(\d+)_([01])_[0-9a-f]{12}", vid or "")
    if not m:
        return None
    return int(m.group(1)) / 1000, int(m.group(2)) / 1000, m.group(3) == "1"


def video_status(vid: str, now: float | None = None) -> tuple[str, int]:
    parsed = parse_video_id(vid)
    if parsed is None:
        return "missing", 0
    created, delay, fail = parsed
    now = time.time() if now is None else now
    elapsed = now - created
    if elapsed >= delay:
        return ("failed" if fail else "completed"), 100
    if elapsed < delay / 4:
        return "queued", 0
    return "in_progress", min(99, int(100 * elapsed / delay)) if delay else 99


def video_object(vid: str, model: str, *, now: float | None = None,
                 cancelled: bool = False) -> dict[str, Any]:
    status, progress = video_status(vid, now)
    parsed = parse_video_id(vid)
    obj: dict[str, Any] = {"id": vid, "object": "video", "model": model,
                           "status": "cancelled" if cancelled else status,
                           "progress": progress,
                           "created_at": int(parsed[0]) if parsed else 0}
    if status == "failed" and not cancelled:
        obj["error"] = {"code": "video_generation_failed", "message": "simulated failure"}
    return obj


# ---------------------------------------------------------------- HTTP routes

_MAX_BODY = 4 * 1024 * 1024

async def _send(send: Any, status: int, body: bytes, ctype: bytes) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", ctype), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


async def _json(send: Any, status: int, value: Any) -> None:
    await _send(send, status, json.dumps(value, separators=(",", ":")).encode(), b"application/json")


async def _err(send: Any, status: int, message: str) -> None:
    await _json(send, status, {"error": {"message": message, "type": "invalid_request_error",
                                         "param": None, "code": None}})


class MediaSim:
    """Media state of one HTTP simulator: generated images by id, cancelled video ids,
    and counters the tests read through /_sim/stats."""

    def __init__(self) -> None:
        self.images: dict[str, bytes] = {}
        self.models: dict[str, str] = {}
        self.cancelled: set[str] = set()
        self.reset()

    def reset(self) -> None:
        self.image_requests = 0
        self.video_requests = 0
        self.last_image_body: dict[str, Any] | None = None

    def stats(self) -> dict[str, Any]:
        return {"image_requests": self.image_requests, "video_requests": self.video_requests,
                "last_image_body": self.last_image_body}

    async def handle(self, scope: dict, receive: Any, send: Any,
                     authorized: bool) -> bool:
        """Serve the request if it is a media route; False leaves it to the caller."""
        path, method = scope["path"], scope["method"]
        if path.startswith("/_sim/images/") and method == "GET":
            data = self.images.get(path[len("/_sim/images/"):].removesuffix(".png"))
            if data is None:
                await _err(send, 404, "no such image")
            else:
                await _send(send, 200, data, b"image/png")
            return True
        if path == "/_sim/redirect" and method == "GET":
            # For the SSRF tests: a redirect to wherever ?to= says.
            qs = scope.get("query_string", b"").decode("latin-1")
            target = qs.partition("to=")[2]
            await send({"type": "http.response.start", "status": 302,
                        "headers": [(b"location", target.encode()), (b"content-length", b"0")]})
            await send({"type": "http.response.body", "body": b""})
            return True
        if path == "/_sim/big" and method == "GET":
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"image/png")]})
            for _ in range(64):
                await send({"type": "http.response.body", "body": bytes(64 * 1024), "more_body": True})
            await send({"type": "http.response.body", "body": b""})
            return True
        media = path.removeprefix("/v1")
        if not (media == "/images/generations" or media == "/videos" or media.startswith("/videos/")):
            return False
        if not authorized:
            await _err(send, 401, "Missing bearer token in the Authorization header")
            return True
        if media == "/images/generations" and method == "POST":
            await self._images(scope, receive, send)
        elif media == "/videos" and method == "POST":
            await self._video_create(receive, send)
        elif media.startswith("/videos/"):
            await self._video_item(media[len("/videos/"):], method, send)
        else:
            await _err(send, 405, f"Method {method} not allowed on {path}")
        return True

    async def _body(self, receive: Any, send: Any) -> dict | None:
        raw = await read_body(receive, _MAX_BODY)
        try:
            body = json.loads(raw) if raw is not None else None
        except ValueError:
            body = None
        if not isinstance(body, dict):
            await _err(send, 400, "Request body must be a JSON object")
            return None
        return body

    async def _images(self, scope: dict, receive: Any, send: Any) -> None:
        body = await self._body(receive, send)
        if body is None:
            return
        self.image_requests += 1
        self.last_image_body = body
        prompt = body.get("prompt")
        if not isinstance(prompt, str) or not prompt:
            await _err(send, 400, "prompt is required")
            return
        d = directives(prompt)
        if "status" in d:
            await _err(send, int(_float(d["status"], 500)), "simulated image failure")
            return
        n = body.get("n", 1)
        n = n if isinstance(n, int) and 1 <= n <= 10 else 1
        # returned=k: the upstream produces fewer images than asked (billing tests).
        n = min(n, int(_float(d.get("returned"), n)))
        pics = generate_images(prompt, n, size=body.get("size"),
                               aspect_ratio=body.get("aspect_ratio"), seed=body.get("seed"))
        host = dict(scope["headers"]).get(b"host", b"127.0.0.1").decode("latin-1")
        data = []
        for pic in pics:
            if body.get("response_format") == "b64_json":
                data.append({"b64_json": base64.b64encode(pic).decode()})
            else:
                pid = hashlib.sha256(pic).hexdigest()[:24]
                self.images[pid] = pic
                data.append({"url": f"http://{host}/_sim/images/{pid}.png"})
            data[-1]["revised_prompt"] = prompt
        await _json(send, 200, {"created": int(time.time()), "data": data})

    async def _video_create(self, receive: Any, send: Any) -> None:
        body = await self._body(receive, send)
        if body is None:
            return
        self.video_requests += 1
        prompt = body.get("prompt")
        if not isinstance(prompt, str) or not prompt:
            await _err(send, 400, "prompt is required")
            return
        wait = _float(directives(prompt).get("create_delay"), 0.0)
        if wait > 0:
            import trio
            await trio.sleep(wait)
        vid = video_id(prompt, time.time())
        self.models[vid] = str(body.get("model", ""))
        await _json(send, 200, video_object(vid, self.models[vid]))

    async def _video_item(self, rest: str, method: str, send: Any) -> None:
        vid, _, tail = rest.partition("/")
        if parse_video_id(vid) is None:
            await _err(send, 404, f"No video {vid!r}")
            return
        model = self.models.get(vid, "")
        if method == "DELETE" and not tail:
            self.cancelled.add(vid)
            await _json(send, 200, {"id": vid, "object": "video.deleted", "deleted": True})
        elif method == "GET" and not tail:
            await _json(send, 200, video_object(vid, model, cancelled=vid in self.cancelled))
        elif method == "GET" and tail == "content":
            if video_status(vid)[0] != "completed" or vid in self.cancelled:
                await _err(send, 409, "video is not completed")
                return
            await _send(send, 200, mp4(vid.encode()), b"video/mp4")
        else:
            await _err(send, 405, f"Method {method} not allowed")
