"""The control socket's protocol: frames, the envelope and every message type (pure).

Shared by the gateway (control/server.py, trio) and the dashboard (tui/client.py,
asyncio), so it imports neither. A frame is a 4-byte big-endian payload length and then
one CBOR map, the envelope:

    {"v": 1, "type": "<snake_case name>", "id": <int>?, ...the message's fields}

Client -> gateway (each carries `id`, echoed by the reply):
    subscribe, unsubscribe, list_providers, list_models, list_accounts, list_keys,
    list_holds, list_windows, set_provider_flags, adjust_wallet, create_key, revoke_key,
    list_jobs, cancel_job
Gateway -> client:
    result (id, data), error (id?, code, message), event (record), dropped (count)

Unknown fields are refused rather than ignored: the version number, not silent
tolerance, is how the two sides agree on shapes. Every message is a frozen dataclass
that checks itself, so a value that exists is a value that can be sent.
"""
from __future__ import annotations

import dataclasses
import io
import struct
from dataclasses import dataclass
from typing import Any, ClassVar

import cbor2

from gateway.errors import WireError

VERSION = 1
MAX_FRAME = 1024 * 1024
HEADER = struct.Struct(">I")
# Result payloads and request records are flat tables; anything deeper is hostile.
MAX_DEPTH = 16
_MAX_ID = 2 ** 53          # ids stay exact in every client language's number type
_MAX_MICROS = 2 ** 63 - 1  # the store's BIGINT
_MAX_TEXT = 500

# ---------------------------------------------------------------- field checks


def _fail(field: str, what: str) -> WireError:
    return WireError(f"{field}: {what}", code="bad_message")


def _check_int(value: Any, field: str, *, lo: int, hi: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise _fail(field, f"expected an integer in {lo}..{hi}, got {value!r:.60}")


def _check_bool(value: Any, field: str, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if not isinstance(value, bool):
        raise _fail(field, f"expected true or false, got {value!r:.60}")


def _check_text(value: Any, field: str, *, optional: bool = False,
                max_len: int = _MAX_TEXT) -> None:
    if value is None and optional:
        return
    if not isinstance(value, str) or not value.strip() or len(value) > max_len:
        raise _fail(field, f"expected a non-empty string of at most {max_len} characters")


_SCALARS = frozenset({type(None), bool, str, bytes, float})


def check_plain(value: Any, field: str = "data", depth: int = 0) -> None:
    """Refuse anything but None, bool, int, float, str, bytes, lists and string-keyed
    maps: CBOR tags decode to datetimes, sets, regexes and the like, which neither side
    means to exchange. Exact type checks (not isinstance) keep subclasses out and keep
    this cheap: it runs on every live event."""
    if depth > MAX_DEPTH:
        raise _fail(field, "nested too deeply")
    kind = type(value)
    if kind in _SCALARS:
        return
    if kind is int:
        if not -2 ** 64 < value < 2 ** 64:
            raise _fail(field, "integer out of range")
        return
    if kind is list or kind is tuple:
        items = value
    elif kind is dict:
        for k in value:
            if type(k) is not str:
                raise _fail(field, "map keys must be strings")
        items = value.values()
    else:
        raise _fail(field, f"unsupported value of type {kind.__name__}")
    for item in items:
        if type(item) not in _SCALARS:
            check_plain(item, field, depth + 1)


# ---------------------------------------------------------------- messages


@dataclass(frozen=True, kw_only=True)
class Message:
    TYPE: ClassVar[str] = ""

    def __post_init__(self) -> None:
        """Subclasses extend this with their own field checks."""

    def to_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {"v": VERSION, "type": self.TYPE}
        for f in dataclasses.fields(self):
            out[f.name] = getattr(self, f.name)
        return out


@dataclass(frozen=True, kw_only=True)
class Request(Message):
    """A client's question; the gateway answers with a Result or Error of the same id."""
    id: int

    def __post_init__(self) -> None:
        _check_int(self.id, "id", lo=0, hi=_MAX_ID)


@dataclass(frozen=True, kw_only=True)
class Subscribe(Request):
    TYPE: ClassVar[str] = "subscribe"


@dataclass(frozen=True, kw_only=True)
class Unsubscribe(Request):
    TYPE: ClassVar[str] = "unsubscribe"


@dataclass(frozen=True, kw_only=True)
class ListProviders(Request):
    TYPE: ClassVar[str] = "list_providers"


@dataclass(frozen=True, kw_only=True)
class ListModels(Request):
    TYPE: ClassVar[str] = "list_models"


@dataclass(frozen=True, kw_only=True)
class ListAccounts(Request):
    TYPE: ClassVar[str] = "list_accounts"


@dataclass(frozen=True, kw_only=True)
class ListOrgs(Request):
    TYPE: ClassVar[str] = "list_orgs"


@dataclass(frozen=True, kw_only=True)
class _PerAccount(Request):
    account_id: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_text(self.account_id, "account_id", optional=True)


@dataclass(frozen=True, kw_only=True)
class ListKeys(_PerAccount):
    TYPE: ClassVar[str] = "list_keys"


@dataclass(frozen=True, kw_only=True)
class ListHolds(_PerAccount):
    TYPE: ClassVar[str] = "list_holds"


@dataclass(frozen=True, kw_only=True)
class ListWindows(_PerAccount):
    TYPE: ClassVar[str] = "list_windows"


@dataclass(frozen=True, kw_only=True)
class SetProviderFlags(Request):
    """Each flag left None keeps its current value; at least one must be given."""
    TYPE: ClassVar[str] = "set_provider_flags"
    provider_id: str
    enabled: bool | None = None
    images: bool | None = None
    video: bool | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_text(self.provider_id, "provider_id")
        for name in ("enabled", "images", "video"):
            _check_bool(getattr(self, name), name, optional=True)
        if self.enabled is None and self.images is None and self.video is None:
            raise _fail("enabled", "give at least one of enabled, images, video")


@dataclass(frozen=True, kw_only=True)
class RotationStep(Request):
    """Promote or roll back a provider's key rotation (runtime.rotation)."""
    TYPE: ClassVar[str] = "rotation_step"
    provider_id: str
    step: str

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_text(self.provider_id, "provider_id")
        if self.step not in ("promote", "rollback"):
            raise _fail("step", "must be promote or rollback")


@dataclass(frozen=True, kw_only=True)
class AdjustWallet(Request):
    """Positive credits the wallet (a top-up), negative corrects it; never below zero."""
    TYPE: ClassVar[str] = "adjust_wallet"
    account_id: str
    amount_micros: int
    reason: str

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_text(self.account_id, "account_id")
        _check_int(self.amount_micros, "amount_micros", lo=-_MAX_MICROS, hi=_MAX_MICROS)
        if self.amount_micros == 0:
            raise _fail("amount_micros", "must not be zero")
        _check_text(self.reason, "reason")


@dataclass(frozen=True, kw_only=True)
class CreateKey(Request):
    """A key for a new account with opening credits, or for an existing account."""
    TYPE: ClassVar[str] = "create_key"
    name: str
    credits_micros: int = 0
    account_id: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_text(self.name, "name", max_len=200)
        _check_int(self.credits_micros, "credits_micros", lo=0, hi=_MAX_MICROS)
        _check_text(self.account_id, "account_id", optional=True)
        if self.account_id is not None and self.credits_micros:
            raise _fail("credits_micros", "opening credits apply to a new account only")


@dataclass(frozen=True, kw_only=True)
class RevokeKey(Request):
    TYPE: ClassVar[str] = "revoke_key"
    key_id: str

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_text(self.key_id, "key_id")


@dataclass(frozen=True, kw_only=True)
class ListJobs(_PerAccount):
    """Async, scheduled and batch jobs, newest first (gateway.jobs)."""
    TYPE: ClassVar[str] = "list_jobs"


@dataclass(frozen=True, kw_only=True)
class CancelJob(Request):
    TYPE: ClassVar[str] = "cancel_job"
    job_id: str

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_text(self.job_id, "job_id")


@dataclass(frozen=True, kw_only=True)
class Result(Message):
    TYPE: ClassVar[str] = "result"
    id: int
    data: Any = None

    def __post_init__(self) -> None:
        _check_int(self.id, "id", lo=0, hi=_MAX_ID)
        check_plain(self.data)


@dataclass(frozen=True, kw_only=True)
class Error(Message):
    """`id` is None when the error is about the connection rather than one request."""
    TYPE: ClassVar[str] = "error"
    id: int | None = None
    code: str
    message: str

    def __post_init__(self) -> None:
        if self.id is not None:
            _check_int(self.id, "id", lo=0, hi=_MAX_ID)
        _check_text(self.code, "code", max_len=100)
        _check_text(self.message, "message", max_len=2000)


@dataclass(frozen=True, kw_only=True)
class Event(Message):
    """One finished request, as the gateway logged it (see gateway.engine.pipeline)."""
    TYPE: ClassVar[str] = "event"
    record: dict[str, Any]

    def __post_init__(self) -> None:
        if not isinstance(self.record, dict):
            raise _fail("record", "expected a map")
        check_plain(self.record, "record")


@dataclass(frozen=True, kw_only=True)
class Dropped(Message):
    """`count` events were dropped because this subscriber read too slowly."""
    TYPE: ClassVar[str] = "dropped"
    count: int

    def __post_init__(self) -> None:
        _check_int(self.count, "count", lo=1, hi=_MAX_MICROS)


REQUESTS: tuple[type[Request], ...] = (
    Subscribe, Unsubscribe, ListProviders, ListModels, ListAccounts, ListKeys, ListHolds,
    ListWindows, SetProviderFlags, AdjustWallet, CreateKey, RevokeKey, ListJobs, CancelJob,
    ListOrgs, RotationStep)
REPLIES: tuple[type[Message], ...] = (Result, Error, Event, Dropped)
TYPES: dict[str, type[Message]] = {cls.TYPE: cls for cls in REQUESTS + REPLIES}


# ---------------------------------------------------------------- envelope


def from_wire(envelope: Any) -> Message:
    """The message an envelope describes, or WireError saying what is wrong with it."""
    if not isinstance(envelope, dict):
        raise WireError("a frame must hold a CBOR map", code="bad_frame")
    version = envelope.get("v")
    if version != VERSION or isinstance(version, bool):
        raise WireError(f"unsupported protocol version {version!r:.20}; this side speaks "
                        f"{VERSION}", code="unsupported_version")
    name = envelope.get("type")
    cls = TYPES.get(name) if isinstance(name, str) else None
    if cls is None:
        raise WireError(f"unknown message type {name!r:.60}", code="unknown_type")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    given = {k: v for k, v in envelope.items() if k not in ("v", "type")}
    unknown = [k for k in given if k not in fields]
    if unknown:
        raise _fail(str(unknown[0])[:60], f"not a field of {name}")
    missing = [n for n, f in fields.items() if n not in given
               and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing:
        raise _fail(missing[0], f"required by {name}")
    return cls(**given)


def encode(message: Message) -> bytes:
    """One frame: length prefix and CBOR envelope."""
    payload = cbor2.dumps(message.to_wire())
    if len(payload) > MAX_FRAME:
        raise WireError(f"{message.TYPE} frame of {len(payload)} bytes exceeds "
                        f"{MAX_FRAME}", code="frame_too_large")
    return HEADER.pack(len(payload)) + payload


def decode_payload(payload: bytes) -> Message:
    """One frame's payload -> its message."""
    fp = io.BytesIO(payload)
    try:
        value = cbor2.CBORDecoder(fp, max_depth=MAX_DEPTH + 2,
                                  allow_duplicate_keys=False).decode()
    except (cbor2.CBORDecodeError, RecursionError, MemoryError, OverflowError) as exc:
        # cbor2 wraps its tag decoders' failures in CBORDecodeError; the others are
        # what a hostile length or depth can still provoke from the C decoder.
        raise WireError(f"not valid CBOR: {str(exc)[:200]}", code="bad_frame") from None
    if fp.tell() != len(payload):
        raise WireError("trailing bytes after the CBOR value", code="bad_frame")
    return from_wire(value)


class FrameDecoder:
    """Bytes in, messages out, in any chunking (like h11's receive buffer).

    After it raises WireError the stream is out of step and the decoder refuses all
    further input: the owner closes the connection.
    """

    def __init__(self, max_frame: int = MAX_FRAME) -> None:
        self._buf = bytearray()
        self._max = max_frame
        self._failed: WireError | None = None

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def feed(self, data: bytes) -> list[Message]:
        if self._failed is not None:
            raise self._failed
        self._buf += data
        out: list[Message] = []
        try:
            while len(self._buf) >= HEADER.size:
                (size,) = HEADER.unpack_from(self._buf)
                if size > self._max:
                    raise WireError(f"frame of {size} bytes exceeds {self._max}",
                                    code="frame_too_large")
                if size == 0:
                    raise WireError("empty frame", code="bad_frame")
                if len(self._buf) < HEADER.size + size:
                    break
                payload = bytes(self._buf[HEADER.size:HEADER.size + size])
                del self._buf[:HEADER.size + size]
                out.append(decode_payload(payload))
        except WireError as exc:
            self._failed = exc
            raise
        return out

    def close(self) -> None:
        """End of input: a partial frame left over is an error."""
        if self._failed is None and self._buf:
            self._failed = WireError(f"connection closed inside a frame ({len(self._buf)} "
                                     "bytes pending)", code="truncated_frame")
            raise self._failed
