"""Customer routes: where an account stands and what it spent, with its own API key.

    GET    /v1/account/quota        plan windows (5h/7d or daily) and the wallet
    GET    /v1/balance              balance, held, available, tier
    GET    /v1/usage                request-log rows (from, to, mode, model, limit, offset)
    GET    /v1/usage/summary        totals by model, mode and day, and the same traffic
                                    priced on the most expensive configured model
    GET    /v1/usage/export         CSV (RFC 4180), streamed page by page (from, to)
    GET    /v1/requests/{id}        one request's row and the money it moved (streams
                                    learn their final cost here)
    POST   /v1/keys, GET /v1/keys, DELETE /v1/keys/{id}

Everything is scoped to the caller's account: another account's key or request id
answers 404, exactly as an unknown one. Errors use the OpenAI shape. Amounts are
given both as USD numbers (display) and integer micro-USD (exact).
"""
from __future__ import annotations

import time

import csv
import io
import math
from datetime import datetime, timezone
from typing import Any, AsyncIterator

from quart import Blueprint, Response, g, request

from gateway import canonical as c
from gateway import errors, jsonbody
from gateway.billing.ledger import iso_utc
from gateway.billing.pricing import MICROS_PER_USD, cost_micros
from gateway.http import common
from gateway.resources.account import AccountRecords

bp = Blueprint("account", __name__)

MAX_LIMIT = 1000
_EXPORT_PAGE = 500
_CSV_COLUMNS = ("request_id", "created_at", "model", "mode", "route", "status", "error_type",
                "tokens_in", "tokens_out", "cached_tokens", "cost_usd", "estimated", "stream",
                "failover", "latency_ms", "key_id")


def usd(micros: int | None) -> float | None:
    return None if micros is None else micros / MICROS_PER_USD


async def _caller(route: str) -> str:
    g.dialect = "openai"
    # Any dialect's key header: a Gemini stream's client reads its bill at
    # /v1/requests/{responseId} with the x-goog-api-key it already has.
    ctx = await common.authenticate(route, "openai", "x-api-key", "x-goog-api-key", log=False)
    return ctx.account_id


def _records() -> AccountRecords:
    return common.services().accounts


# ---------------------------------------------------------------- parameters

def parse_time(value: str | None, name: str) -> float | None:
    """Unix seconds, or ISO 8601 (a date, or a date-time; UTC unless it says otherwise)."""
    if value is None or value == "":
        return None
    try:
        t = float(value)
        if math.isfinite(t):
            return t
    except ValueError:
        pass
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise errors.InvalidRequest(f"{name} must be unix seconds or an ISO 8601 date or time, "
                                    f"got {value!r}", field=name) from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.timestamp()


def _int_arg(name: str, default: int, lo: int, hi: int) -> int:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise errors.InvalidRequest(f"{name} must be an integer", field=name) from None
    if not lo <= value <= hi:
        raise errors.InvalidRequest(f"{name} must be between {lo} and {hi}", field=name)
    return value


def _filters(*, mode_model: bool = True) -> dict[str, Any]:
    start = parse_time(request.args.get("from"), "from")
    end = parse_time(request.args.get("to"), "to")
    if start is not None and end is not None and end < start:
        raise errors.InvalidRequest("'to' is before 'from'", field="to")
    out: dict[str, Any] = {"start": start, "end": end}
    if mode_model:
        out["mode"] = request.args.get("mode") or None
        out["model"] = request.args.get("model") or None
    return out


def _row_json(row: dict[str, Any]) -> dict[str, Any]:
    out = dict(row)
    out["created"] = row["created_at"]
    out["created_at"] = iso_utc(row["created_at"])
    out["cost_usd"] = usd(row["cost_micros"])
    out["markup_usd"] = usd(row["markup_micros"])
    return out


# ---------------------------------------------------------------- standing

def _window_json(w: Any) -> dict[str, Any]:   # a store.WindowUsage
    out: dict[str, Any] = {
        "limit_usd": usd(w.limit_micros), "used_usd": usd(w.used_micros),
        "remaining_usd": usd(w.remaining("usd")),
        "limit_micros": w.limit_micros, "used_micros": w.used_micros,
        "remaining_micros": w.remaining("usd"),
        "resets_at": None if w.resets_at is None else iso_utc(w.resets_at)}
    for dim, limit, used in (("input_tokens", w.limit_input, w.used_input),
                             ("output_tokens", w.limit_output, w.used_output)):
        if limit is not None:
            out[dim] = {"limit": limit, "used": used, "remaining": w.remaining(dim)}
    return out


def _wallet_json(pos: Any) -> dict[str, Any]:   # a store.Position
    return {"balance_usd": usd(pos.balance_micros), "held_usd": usd(pos.held_micros),
            "available_usd": usd(pos.available_micros), "balance_micros": pos.balance_micros,
            "held_micros": pos.held_micros, "available_micros": pos.available_micros}


@bp.get("/v1/account/quota")
async def quota():
    account_id = await _caller("/v1/account/quota")
    plan, pos, now = await common.services().admission.position(account_id)
    rolling = {w.name: _window_json(w) for w in pos.windows if w.name != "daily"}
    daily = next((_window_json(w) for w in pos.windows if w.name == "daily"), None)
    return {"object": "account.quota", "account_id": account_id, "as_of": iso_utc(now),
            "plan": None if plan is None else {
                "id": plan.id, "free": plan.free,
                "fallthrough_to_wallet": plan.fallthrough_to_wallet,
                "models": list(plan.models) or None, "modes": list(plan.modes) or None},
            "windows": rolling or None, "daily": daily,
            "wallet": _wallet_json(pos), "balance_usd": usd(pos.balance_micros)}


@bp.get("/v1/balance")
async def balance():
    account_id = await _caller("/v1/balance")
    plan, pos, _ = await common.services().admission.position(account_id)
    return {"object": "balance", "account_id": account_id, **_wallet_json(pos),
            "currency": "usd", "tier": "payg" if plan is None else plan.id,
            "plan": None if plan is None else plan.id, "auto_topup": False,
            "key_budgets": await _key_budgets(account_id)}


async def _key_budgets(account_id: str) -> list[dict[str, Any]]:
    """This account's keys that carry a monthly budget, with this month's standing."""
    rows = await _records().key_budgets(account_id, time.time())
    return [{**r, "limit_usd": usd(r["limit_micros"]), "spent_usd": usd(r["spent_micros"]),
             "held_usd": usd(r["held_micros"]), "remaining_usd": usd(r["remaining_micros"])}
            for r in rows]


# ---------------------------------------------------------------- usage

@bp.get("/v1/usage")
async def usage():
    account_id = await _caller("/v1/usage")
    filters = _filters()
    limit = _int_arg("limit", 100, 1, MAX_LIMIT)
    offset = _int_arg("offset", 0, 0, 10**9)
    rows, total = await _records().usage_rows(account_id, limit=limit, offset=offset, **filters)
    return {"object": "list", "data": [_row_json(r) for r in rows], "total": total,
            "limit": limit, "offset": offset, "has_more": offset + len(rows) < total}


def _priced_models() -> list[tuple[str, Any]]:
    seen: dict[str, Any] = {}
    for entry in common.services().catalog.public_entries():
        if entry.price is not None and "chat" in entry.model.capabilities:
            seen.setdefault(entry.model.id, entry.price)
    return list(seen.items())


def comparison(totals: dict[str, int], models: list[tuple[str, Any]]) -> dict[str, Any] | None:
    """The same tokens priced on each configured model; the dearest one is compared."""
    if not models:
        return None
    u = c.Usage(input_tokens=totals["tokens_in"], output_tokens=totals["tokens_out"],
                cached_input_tokens=min(totals["cached_tokens"], totals["tokens_in"]))
    model, price = max(models, key=lambda m: (cost_micros(m[1], u), m[0]))
    would = cost_micros(price, u)
    actual = totals["cost_micros"]
    return {"most_expensive_model": model, "would_have_cost_usd": usd(would),
            "would_have_cost_micros": would, "actual_cost_usd": usd(actual),
            "actual_cost_micros": actual, "saved_usd": usd(would - actual),
            "saved_micros": would - actual,
            "saved_percent": round(100.0 * (would - actual) / would, 2) if would else 0.0}


@bp.get("/v1/usage/summary")
async def usage_summary():
    account_id = await _caller("/v1/usage/summary")
    filters = _filters()
    out = await _records().usage_summary(account_id, **filters)

    def money(d: dict[str, Any]) -> dict[str, Any]:
        return {**d, "cost_usd": usd(d["cost_micros"]), "markup_usd": usd(d["markup_micros"])}

    return {"object": "usage.summary",
            "from": None if filters["start"] is None else iso_utc(filters["start"]),
            "to": None if filters["end"] is None else iso_utc(filters["end"]),
            "totals": money(out["totals"]),
            "by_model": [money(r) for r in out["by_model"]],
            "by_mode": [money(r) for r in out["by_mode"]],
            "by_day": [money(r) for r in out["by_day"]],
            "comparison": comparison(out["totals"], _priced_models())}


def csv_line(values: list[Any]) -> str:
    """One RFC 4180 record: CRLF-terminated, fields with comma, quote, CR or LF quoted,
    quotes doubled."""
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL).writerow(values)
    return buf.getvalue()


def csv_record(row: dict[str, Any]) -> list[Any]:
    out = []
    for name in _CSV_COLUMNS:
        if name == "created_at":
            out.append(iso_utc(row["created_at"]))
        elif name == "cost_usd":
            m = row["cost_micros"]
            out.append(f"{m // MICROS_PER_USD}.{m % MICROS_PER_USD:06d}")
        elif name in ("estimated", "stream", "failover"):
            out.append("true" if row[name] else "false")
        elif name == "latency_ms":
            out.append(f"{row[name]:.1f}")
        else:
            out.append("" if row[name] is None else row[name])
    return out


@bp.get("/v1/usage/export")
async def usage_export():
    account_id = await _caller("/v1/usage/export")
    filters = _filters(mode_model=False)
    records = _records()

    async def body() -> AsyncIterator[bytes]:
        yield csv_line(list(_CSV_COLUMNS)).encode()
        after = None
        while True:
            rows = await records.usage_page(account_id, after=after, limit=_EXPORT_PAGE,
                                            **filters)
            if not rows:
                return
            yield "".join(csv_line(csv_record(r)) for r in rows).encode()
            if len(rows) < _EXPORT_PAGE:
                return
            after = (rows[-1]["created_at"], rows[-1]["request_id"])

    return Response(body(), content_type="text/csv; charset=utf-8", headers={
        "Content-Disposition": 'attachment; filename="prism-usage.csv"',
        "Cache-Control": "no-store"})


@bp.get("/v1/requests/<request_id>")
async def request_record(request_id: str):
    account_id = await _caller("/v1/requests")
    rec = await _records().request_record(account_id, request_id)
    if rec is None:
        raise errors.NotFound(f"No request {request_id!r} on this account")
    _, pos, _ = await common.services().admission.position(account_id)
    ending = next((e for e in reversed(rec["wallet_entries"])
                   if e["kind"] in ("settle", "void", "expire")), None)
    hold = rec["window_hold"]
    out = {"object": "request", **_row_json(rec["log"]),
           "funded_by": "window" if hold else ("wallet" if rec["wallet_entries"] else None),
           "wallet_balance_after_usd": None if ending is None else usd(ending["balance_after"]),
           "wallet_balance_after_micros": None if ending is None else ending["balance_after"],
           "window_hold": hold,
           "now": {"wallet": _wallet_json(pos),
                   "windows": {w.name: _window_json(w) for w in pos.windows} or None}}
    return out


# ---------------------------------------------------------------- keys

def _key_json(key) -> dict[str, Any]:
    return {"id": key.id, "object": "api_key", "name": key.name, "prefix": key.prefix,
            "created_at": iso_utc(key.created_at),
            "last_used_at": None if key.last_used_at is None else iso_utc(key.last_used_at),
            "revoked": key.revoked_at is not None}


@bp.post("/v1/keys")
async def create_key():
    account_id = await _caller("/v1/keys")
    body = _optional_json(await request.get_data(cache=False))
    name = body.get("name", "api key")
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        raise errors.InvalidRequest("name must be 1..200 characters", field="name")
    key, plaintext = await _records().create_key(account_id, name)
    return {**_key_json(key), "key": plaintext}, 201


def _optional_json(data: bytes) -> dict[str, Any]:
    """An optional JSON object body (empty means {})."""
    return jsonbody.decode_object(data, empty_ok=True)


@bp.get("/v1/keys")
async def list_keys():
    account_id = await _caller("/v1/keys")
    keys = await _records().active_keys(account_id)
    return {"object": "list", "data": [_key_json(k) for k in keys]}


@bp.delete("/v1/keys/<key_id>")
async def revoke_key(key_id: str):
    account_id = await _caller("/v1/keys")
    if not await _records().revoke_key(account_id, key_id):
        raise errors.NotFound(f"No active key {key_id!r} on this account")
    return {"id": key_id, "object": "api_key", "revoked": True}
