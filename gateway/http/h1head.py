"""HTTP/1.1 heads for the lean front (gateway/http/front.py): a request head parsed with
bytes methods, a response head written in one piece.

Strict where it matters (RFC 9112): NUL, bare CR or bare LF anywhere in a head, a
header name that is not a token, obsolete line folding, a malformed or repeated and
differing Content-Length, a non-ASCII target are all refused with 400; an unknown
HTTP version with 505. A head that needs what the front does not do (chunked or
otherwise encoded bodies, Expect, an Upgrade, HTTP/2) is returned as None: hypercorn
takes that connection.
"""
from __future__ import annotations

import http
import re
import time
from email.utils import formatdate
from typing import NamedTuple
from urllib.parse import unquote

_HANDOFF = frozenset((b"transfer-encoding", b"expect", b"upgrade", b"http2-settings"))
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
# NUL anywhere, or a CR or LF that is not part of a CRLF.
BAD_HEAD = re.compile(rb"\x00|\r(?!\n)|(?<!\r)\n")
_STATUS: dict[int, bytes] = {}


class Refuse(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class Request(NamedTuple):
    method: str
    http10: bool
    raw_path: bytes
    path: str
    query: bytes
    headers: list
    length: int
    keep_alive: bool


def parse_request(raw: bytearray) -> Request | None:
    """The request in `raw` (a head without its final CRLFCRLF); None: hypercorn's."""
    while raw.startswith(b"\r\n"):   # RFC 9112 2.2: ignore CRLFs before a request
        del raw[:2]
    if BAD_HEAD.search(raw):
        raise Refuse(400, "Malformed request head")
    lines = bytes(raw).split(b"\r\n")
    parts = lines[0].split(b" ")
    if len(parts) != 3:
        if lines[0].startswith(b"PRI "):
            return None
        raise Refuse(400, "Malformed request line")
    method, target, version = parts
    if version != b"HTTP/1.1" and version != b"HTTP/1.0":
        if version.startswith(b"HTTP/2"):
            return None
        raise Refuse(505 if version.startswith(b"HTTP/") else 400, "Unsupported HTTP version")
    if not _TOKEN.match(method) or not target:
        raise Refuse(400, "Malformed request line")
    headers = []
    length = None
    keep_alive = version == b"HTTP/1.1"
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep or not _TOKEN.match(name):
            raise Refuse(400, "Malformed header line")
        name = name.lower()
        value = value.strip(b" \t")
        if name in _HANDOFF:
            return None
        if name == b"content-length":
            if not value.isdigit() or (length is not None and int(value) != length):
                raise Refuse(400, "Invalid Content-Length")
            length = int(value)
        elif name == b"connection":
            tokens = value.lower()
            if b"close" in tokens:
                keep_alive = False
            elif b"upgrade" in tokens:
                return None
        headers.append((name, value))
    path, _, query = target.partition(b"?")
    try:
        decoded = unquote(path.decode("ascii"))
    except UnicodeDecodeError:
        raise Refuse(400, "Request target is not ASCII") from None
    return Request(method.decode("ascii"), version == b"HTTP/1.0", path, decoded, query,
                   headers, length or 0, keep_alive)


def status_line(status: int) -> bytes:
    line = _STATUS.get(status)
    if line is None:
        try:
            phrase = http.HTTPStatus(status).phrase.encode()
        except ValueError:
            phrase = b""
        line = _STATUS[status] = b"HTTP/1.1 %d %s\r\n" % (status, phrase)
    return line


class _Date:
    __slots__ = ("second", "value")

    def __init__(self) -> None:
        self.second, self.value = -1, b""

    def header(self) -> bytes:
        now = int(time.time())
        if now != self.second:
            self.second = now
            self.value = b"date: " + formatdate(now, usegmt=True).encode() + b"\r\n"
        return self.value


date = _Date()


def error_response(status: int, message: str) -> bytes:
    """A complete plain-text answer that closes the connection."""
    body = message.encode()
    return (status_line(status) + date.header()
            + b"content-type: text/plain; charset=utf-8\r\ncontent-length: %d\r\n"
              b"connection: close\r\n\r\n%s" % (len(body), body))
