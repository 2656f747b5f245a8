"""Field checks shared by the client-side request decoders (pure).

Every decoder reports a bad field the same way: InvalidRequest whose message starts
with the field's path, so a client can see which key to fix. Dialect rules (which
fields exist, their ranges) stay in each codec; only these primitives are shared.
"""
from __future__ import annotations

from typing import Any, NoReturn

from gateway.errors import InvalidRequest


def bad(field: str, problem: str, code: str | None = None) -> NoReturn:
    raise InvalidRequest(f"{field} {problem}", field=field, code=code)


def at(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def is_num(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def body_with_model(body: object) -> tuple[dict, str]:
    """A request body that must be a JSON object naming a model."""
    if not isinstance(body, dict):
        bad("body", "must be a JSON object")
    return body, req_str(body, "model", "")


def req_str(d: dict, key: str, where: str, *, empty_ok: bool = False) -> str:
    v = d.get(key)
    if not isinstance(v, str) or not (v or empty_ok):
        bad(at(where, key), "must be a string" if empty_ok
            else "is required and must be a non-empty string")
    return v


def opt(d: dict, key: str, where: str, kind: type, what: str) -> Any:
    v = d.get(key)
    if v is not None and (not isinstance(v, kind) or (kind is int and isinstance(v, bool))):
        bad(at(where, key), f"must be {what}")
    return v


def opt_str(d: dict, key: str, where: str = "") -> str | None:
    return opt(d, key, where, str, "a string")


def opt_bool(d: dict, key: str, where: str = "") -> bool | None:
    return opt(d, key, where, bool, "a boolean")


def opt_number(d: dict, key: str, lo: float, hi: float) -> float | None:
    v = d.get(key)
    if v is None:
        return None
    if not is_num(v) or not lo <= v <= hi:
        bad(key, f"must be a number from {lo:g} to {hi:g}")
    return float(v)


def opt_positive_int(d: dict, key: str) -> int | None:
    v = d.get(key)
    if v is not None and (not is_int(v) or v <= 0):
        bad(key, "must be a positive integer")
    return v


def tool_items(v: object, limit: int) -> list[tuple[str, dict]]:
    """A ``tools`` array's entries with their paths, after the checks every dialect
    shares (an array, at most ``limit`` long, of objects); None means no tools."""
    if v is None:
        return []
    if not isinstance(v, list):
        bad("tools", "must be an array of tool objects")
    if len(v) > limit:
        bad("tools", f"holds {len(v)} tools; at most {limit} are allowed")
    items = []
    for i, t in enumerate(v):
        where = f"tools[{i}]"
        if not isinstance(t, dict):
            bad(where, "must be an object")
        items.append((where, t))
    return items


_MAGIC = (("iVBOR", "image/png"), ("/9j/", "image/jpeg"), ("R0lGOD", "image/gif"),
          ("UklGR", "image/webp"))


def sniff_image_type(data_b64: str, default: str = "image/png") -> str:
    """The media type of inline image data that came without one, from its base64
    prefix (every dialect but OpenAI's wants the type spelled out)."""
    for prefix, kind in _MAGIC:
        if data_b64.startswith(prefix):
            return kind
    return default
