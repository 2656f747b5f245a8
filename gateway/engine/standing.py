"""What admission and settlement tell about a request, apart from the money itself:
its log status and error type, the operator's detail of an upstream failure, and the
standing headers (RateLimit-*, X-Prism-Wallet-Remaining, X-Prism-Window-Remaining and
friends) the client gets. Split out of gateway.engine.admission."""
from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING

from gateway import errors
from gateway.billing.pricing import format_usd
from gateway.billing.ratelimit import Decision

if TYPE_CHECKING:
    import store

_log = logging.getLogger("prism.upstream")


def status_of(error: BaseException | None) -> int:
    if error is None:
        return 200
    return error.status if isinstance(error, errors.PrismError) else 499


def error_type_of(error: BaseException | None) -> str | None:
    if error is None:
        return None
    return error.type_name if isinstance(error, errors.PrismError) else type(error).__name__


def operator_detail(request_id: str, error: BaseException | None) -> dict[str, str]:
    """An upstream failure's own words (already redacted by providers.base) for the
    operator: logged here and put on the dashboard's event, never sent to the client."""
    detail = getattr(error, "detail", None)
    if not detail:
        return {}
    _log.warning("request %s: %s", request_id, detail)
    return {"error_detail": detail}


def rate_headers(decision: Decision) -> dict[str, str]:
    """RateLimit-Limit/-Remaining/-Reset for the limit closest to running out (the
    separate-header form of the IETF httpapi draft), and RateLimit-Policy listing
    every limit that applies."""
    tight = decision.tightest()
    if tight is None:
        return {}
    policy = ", ".join(f'{s.limit.rate};w={s.limit.period_s};burst={s.limit.burst};'
                       f'name="{s.limit.name}"' for s in decision.states)
    return {"RateLimit-Limit": str(tight.limit.burst),
            "RateLimit-Remaining": str(tight.remaining),
            "RateLimit-Reset": str(math.ceil(tight.reset_s)),
            "RateLimit-Policy": policy}


def position_headers(pos: "store.Position | None", funded_by: str | None) -> dict[str, str]:
    if pos is None:
        return {}
    h = {"X-Prism-Wallet-Remaining": format_usd(max(pos.available_micros, 0))}
    usd = [(w.name, w.remaining("usd")) for w in pos.windows if w.limit_micros is not None]
    if usd:
        h["X-Prism-Window-Remaining"] = format_usd(min(r for _, r in usd))
        h["X-Prism-Windows-Remaining"] = ", ".join(f"{n}={format_usd(r)}" for n, r in usd)
    for w in pos.windows:
        if w.limit_input is not None:
            h["X-Prism-Daily-Input-Tokens-Remaining"] = str(w.remaining("input_tokens"))
        if w.limit_output is not None:
            h["X-Prism-Daily-Output-Tokens-Remaining"] = str(w.remaining("output_tokens"))
    if funded_by:
        h["X-Prism-Funded-By"] = funded_by
    return h
