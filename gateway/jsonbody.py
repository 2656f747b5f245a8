"""The one decoder of client JSON bodies: bytes in, a plain JSON object out, or a 400
naming the field that is wrong.

Pure (no I/O). Everything past this point may assume what it returns is encodable
again: strings are valid Unicode (no lone UTF-16 surrogates, which would surface much
later as a UnicodeEncodeError while writing the log row, the reply or an SSE event,
after the upstream was paid), integers are short enough to convert (CPython refuses
int <-> str past 4,300 digits with a ValueError), numbers are finite (NaN and Infinity
are not JSON, and json.dumps would pass them on to an upstream as invalid JSON), and
nesting is shallow enough that the recursive code downstream cannot hit the recursion
limit. ``dumps`` is the matching compact encoder for replies and stored JSON.
"""
from __future__ import annotations

import json
import math
from typing import Any

from gateway import errors

# Deeper than any real request (a JSON schema in a tool definition is a few levels);
# far below the interpreter's recursion limit, which json.dumps and our codecs share.
MAX_DEPTH = 64
# CPython's default int max_str_digits; the limit is ours, not the interpreter's, so a
# process that raised sys.set_int_max_str_digits still refuses the same bodies.
MAX_INT_DIGITS = 4300


class _Bad:
    """Stands in for a number json.loads met but we refuse, until the walk names its field."""
    __slots__ = ("why",)

    def __init__(self, why: str) -> None:
        self.why = why


def _parse_int(text: str) -> Any:
    digits = len(text) - (text[0] == "-")
    if digits > MAX_INT_DIGITS:
        return _Bad(f"is an integer of {digits} digits; at most {MAX_INT_DIGITS} are accepted")
    return int(text)


def _parse_float(text: str) -> Any:
    value = float(text)
    if math.isinf(value):
        return _Bad("is a number too large to represent")
    return value


def _parse_constant(name: str) -> Any:
    return _Bad(f"is {name}, which is not a JSON number")


def _path(parts: tuple) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "body"


def _bad_text(s: str) -> bool:
    if s.isascii():
        return False
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def check_value(value: Any, where: tuple = ()) -> None:
    """Raise InvalidRequest naming the first field of `value` that decode() would refuse.
    Iterative, so a deep value costs no recursion."""
    stack: list[tuple[Any, tuple, int]] = [(value, where, 0)]
    while stack:
        v, path, depth = stack.pop()
        if isinstance(v, str):
            if _bad_text(v):
                _refuse(path, "contains a lone UTF-16 surrogate, which is not valid Unicode")
        elif isinstance(v, _Bad):
            _refuse(path, v.why)
        elif isinstance(v, dict):
            if depth >= MAX_DEPTH:
                _refuse(path, f"is nested more than {MAX_DEPTH} levels deep")
            for k, item in v.items():
                if _bad_text(k):
                    _refuse(path, "has a key with a lone UTF-16 surrogate, which is not valid "
                                  "Unicode")
                stack.append((item, path + (k,), depth + 1))
        elif isinstance(v, list):
            if depth >= MAX_DEPTH:
                _refuse(path, f"is nested more than {MAX_DEPTH} levels deep")
            stack.extend((item, path + (i,), depth + 1) for i, item in enumerate(v))


def _refuse(path: tuple, why: str) -> None:
    name = _path(path)
    raise errors.InvalidRequest(f"{name} {why}", field=None if not path else name)


def decode(data: bytes) -> Any:
    """Any JSON value from `data`, checked as the module docstring says."""
    try:
        text = data.decode("utf-8")   # strict: refuses encoded surrogates (ED A0 80) too
    except UnicodeDecodeError as exc:
        raise errors.InvalidRequest(f"Request body is not valid UTF-8 (byte {exc.start})") from None
    if text.startswith("\ufeff"):
        text = text[1:]
    try:
        value = json.loads(text, parse_int=_parse_int, parse_float=_parse_float,
                           parse_constant=_parse_constant)
    except json.JSONDecodeError as exc:
        raise errors.InvalidRequest(f"Request body is not valid JSON: {exc.msg} at line "
                                    f"{exc.lineno} column {exc.colno}") from None
    except RecursionError:
        raise errors.InvalidRequest("Request body JSON is nested too deeply") from None
    check_value(value)
    return value


def decode_object(data: bytes, *, empty_ok: bool = False) -> dict[str, Any]:
    """A JSON object body; with `empty_ok` an empty (or blank) body is {}."""
    if not data.strip():
        if empty_ok:
            return {}
        raise errors.InvalidRequest("Request body is empty; send a JSON object")
    body = decode(data)
    if not isinstance(body, dict):
        raise errors.InvalidRequest("Request body must be a JSON object, not a JSON "
                                    f"{_json_type(body)}")
    return body


def _json_type(value: Any) -> str:
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool) or value is None:
        return "literal"
    return "number"


def dumps(obj: Any) -> str:
    """Compact JSON for a reply, an SSE event or a stored body. Text from an upstream may
    hold a lone surrogate, which no UTF-8 writer accepts; such a value is escaped to
    ASCII instead (still valid JSON), so encoding an answer never fails after it was
    paid for."""
    text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            text = json.dumps(obj, separators=(",", ":"))
    return text
