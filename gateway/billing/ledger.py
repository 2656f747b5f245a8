"""Hold-then-close over the store, as the request path sees it.

Each call is one transaction on the store's writer thread. Store exceptions are mapped
to client errors here, at the boundary: a plan window that cannot cover the request
is 429 quota_exceeded (403 free_tier_limit on a free plan) with the reset time, an
empty wallet 402 insufficient_balance. Settlement and voiding are safe to call from a
shielded `finally`: the store makes the second ending of a hold a no-op.
"""
from __future__ import annotations

import logging
import math
import time
from datetime import datetime, timezone
from typing import Any, Callable, Sequence

import store
from gateway import errors
from gateway.billing.pricing import format_usd
from store.budgets import BudgetExceeded

_log = logging.getLogger("prism.billing")

_DIMENSION_WORDS = {"usd": "spend", "input_tokens": "input tokens",
                    "output_tokens": "output tokens"}


def iso_utc(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _span(seconds: float) -> str:
    s = max(0, math.ceil(seconds))
    d, rem = divmod(s, 86400)
    h, rem = divmod(rem, 3600)
    m, s = divmod(rem, 60)
    parts = [f"{d}d"] * bool(d) + [f"{h}h"] * bool(h) + [f"{m}m"] * bool(m)
    return " ".join(parts) or f"{s}s"


def _amount(dimension: str, n: int) -> str:
    return f"${format_usd(n)}" if dimension == "usd" else f"{n} {_DIMENSION_WORDS[dimension]}"


def quota_message(q: "store.QuotaExceeded", now: float) -> tuple[str, dict[str, str]]:
    """What ran out, by how much, and when it resets; plus the reset headers."""
    window = "daily window" if q.window == "daily" else f"{q.window} window"
    what = _DIMENSION_WORDS[q.dimension]
    left = max(q.limit - q.used, 0)
    text = (f"the plan's {window} has {_amount(q.dimension, left)} of "
            f"{_amount(q.dimension, q.limit)} {what} left and this request needs up to "
            f"{_amount(q.dimension, q.needed)}")
    headers: dict[str, str] = {}
    if q.resets_at is None:
        text += "; that is more than the whole window allows, so lower max_tokens"
    else:
        text += f"; it resets at {iso_utc(q.resets_at)} (in {_span(q.resets_at - now)})"
        headers["X-Prism-Quota-Reset"] = iso_utc(q.resets_at)
        headers["Retry-After"] = str(max(1, math.ceil(q.resets_at - now)))
    return text, headers


def _void_log(log: dict[str, Any] | None) -> dict[str, Any] | None:
    """The log row of a request whose settlement failed: an internal error that cost
    nothing, every text field made encodable (a field that would not store may be why
    the settlement failed)."""
    if log is None:
        return None
    row = {k: (v.encode("utf-8", "replace").decode("utf-8") if isinstance(v, str) else v)
           for k, v in log.items()}
    row.update(status=500, error_type=errors.SettleFailed.type_name, cost_micros=0,
               tokens_in=0, tokens_out=0, cached_tokens=0, estimated=False)
    return row


class Ledger:
    def __init__(self, writer: "store.Writer", *, hold_ttl_seconds: int,
                 close_fault: Callable[[str], None] | None = None) -> None:
        self._writer = writer
        self._ttl = hold_ttl_seconds
        # Test-only: called with the request's route at the point where a request is
        # settled after its upstream answered; a test makes it raise to prove that
        # the close path still voids the hold and the client pays nothing.
        self._close_fault = close_fault

    def after_upstream(self, route: str) -> None:
        """Mark the step after an upstream answered and before its money closes."""
        if self._close_fault is not None:
            self._close_fault(route)

    @staticmethod
    def _insufficient(exc: "store.InsufficientFunds", now: float) -> errors.InsufficientBalance:
        message = (f"Insufficient balance: this request may cost up to "
                   f"${format_usd(exc.needed_micros)} but ${format_usd(exc.available_micros)} "
                   f"is available. Top up the wallet, or lower max_tokens to reduce the "
                   f"reservation.")
        headers: dict[str, str] = {}
        quota = getattr(exc, "quota", None)
        if quota is not None:
            text, headers = quota_message(quota, now)
            headers.pop("Retry-After", None)   # the wallet, not time, is what is short
            message += f" (The plan's quota could not cover it either: {text}.)"
        return errors.InsufficientBalance(message, code="insufficient_balance", headers=headers)

    async def admit(self, account_id: str, request_id: str, amount_micros: int, *,
                    plan: Any = None, windows: Sequence[Any] = (), input_tokens: int = 0,
                    output_tokens: int = 0, now: float | None = None,
                    position: bool = True, budgets: Sequence[Any] = (),
                    shielded: bool = False) -> "store.Admitted":
        """Hold the request's worst case: the plan's windows first, then (if the plan
        falls through, or there is no plan) the wallet. With `position`, the account's
        standing after the hold comes back too. `shielded`: no cancellation stops the
        wait for the hold (see Writer.call_shielded)."""
        now = time.time() if now is None else now
        call = self._writer.call_shielded if shielded else self._writer.call
        try:
            return await call(
                store.admit, account_id, request_id, amount_micros, self._ttl,
                plan=None if plan is None else plan.id, windows=windows,
                input_tokens=input_tokens, output_tokens=output_tokens,
                fallthrough=True if plan is None else plan.fallthrough_to_wallet, now=now,
                position=position, budgets=budgets)
        except BudgetExceeded as exc:
            b = exc.budget
            whose = "this API key's" if b.scope == "key" else "your organization's"
            left = max(b.limit_micros - exc.spent_micros - exc.held_micros, 0)
            raise errors.InsufficientBalance(
                f"Budget exceeded: {whose} monthly budget of ${format_usd(b.limit_micros)} "
                f"has ${format_usd(left)} left and this request may cost up to "
                f"${format_usd(exc.needed_micros)}. It resets at the start of next month "
                f"(UTC), or an operator can raise it.",
                code=f"{b.scope}_budget_exceeded") from None
        except store.InsufficientFunds as exc:
            raise self._insufficient(exc, now) from None
        except store.QuotaExceeded as q:
            text, headers = quota_message(q, now)
            code = f"{q.window}_{q.dimension}" if q.window == "daily" else f"window_{q.window}"
            if plan is not None and plan.free:
                raise errors.FreeTierLimit(f"Free tier limit ({code}): {text}.", code=code,
                                           headers=headers) from None
            raise errors.QuotaExceeded(f"Quota exceeded: {text}.", code=code, headers=headers,
                                       resets_at=q.resets_at) from None

    async def close(self, hold_id: str, cost_micros: int | None, *, input_tokens: int = 0,
                    output_tokens: int = 0, estimated: bool = False,
                    log: dict[str, Any] | None = None, account_id: str | None = None,
                    windows: Sequence[Any] = ()) -> "store.Closed":
        """Settle (cost) or void (None) a hold of either kind, exactly once.

        If a settlement raises (anything: a bug, a row that will not store), the hold is
        voided instead with an internal-error log row, and SettleFailed (carrying that
        row as ``log``) tells the caller to answer the client with an error: the bill
        then matches what the client received, nothing, and no hold is left behind."""
        try:
            if cost_micros is not None:
                self.after_upstream(str((log or {}).get("route", "")))
            return await self._writer.call(
                store.quota.close, hold_id, cost_micros=cost_micros, input_tokens=input_tokens,
                output_tokens=output_tokens, estimated=estimated, log=log,
                account_id=account_id, windows=windows)
        except Exception as exc:
            if cost_micros is None:
                raise
            _log.exception("settling hold %s failed; voiding it", hold_id)
            row = _void_log(log)
            await self._writer.call(store.quota.close, hold_id, cost_micros=None, log=row,
                                    account_id=account_id, windows=windows)
            rid = (log or {}).get("request_id", "?")
            failed = errors.SettleFailed(f"Internal error while closing the request; nothing "
                                         f"was charged. Quote request id {rid}")
            failed.log = row
            raise failed from exc

    async def log_only(self, log: dict[str, Any]) -> None:
        await self._writer.call(store.insert_request_log, **log)
