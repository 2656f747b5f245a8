"""Hold-then-close for calls that are not one chat request: an MCP tool call, a proxied
A2A call, one realtime response. The same ledger path as the engine's: admission is one
guarded write that draws on the plan's windows first (when the account's plan has them
and falls through) and then the wallet; close settles for the cost or voids (None),
exactly once, writing the call's request-log row in the same transaction. Its caller
runs close shielded in a `finally`.
"""
from __future__ import annotations

import time
from typing import Any, Awaitable, Callable

from gateway.billing.windows import plan_windows


class CallMoney:
    def __init__(self, ledger: Any, plan_for: Callable[[str], Awaitable[Any]],
                 clock: Callable[[], float] = time.time, *,
                 budgets_for: Callable[[str], Awaitable[Any]] | None = None,
                 on_alerts: Callable[[Any], Awaitable[None]] | None = None) -> None:
        """``budgets_for`` gives the account's org budget (held in the same write);
        ``on_alerts`` hears of the budget thresholds a close crossed."""
        self._ledger = ledger
        self._plan_for = plan_for
        self._clock = clock
        self._budgets_for = budgets_for
        self._on_alerts = on_alerts

    async def _windows(self, account_id: str) -> tuple[Any, tuple[Any, ...]]:
        plan = await self._plan_for(account_id)
        return plan, (plan_windows(plan, self._clock()) if plan is not None else ())

    async def hold(self, account_id: str, request_id: str, amount_micros: int) -> str:
        """The hold's id; InsufficientBalance / QuotaExceeded when it cannot be covered."""
        plan, windows = await self._windows(account_id)
        budgets = await self._budgets_for(account_id) if self._budgets_for else ()
        admitted = await self._ledger.admit(account_id, request_id, amount_micros, plan=plan,
                                            windows=windows, now=self._clock(), position=False,
                                            budgets=budgets)
        return admitted.hold_id

    async def close(self, account_id: str, hold_id: str, cost_micros: int | None, *,
                    log: dict[str, Any], input_tokens: int = 0, output_tokens: int = 0,
                    estimated: bool = False) -> None:
        _, windows = await self._windows(account_id)
        closed = await self._ledger.close(hold_id, cost_micros, input_tokens=input_tokens,
                                          output_tokens=output_tokens, estimated=estimated,
                                          log=log, windows=windows)
        if getattr(closed, "alerts", ()) and self._on_alerts is not None:
            await self._on_alerts(closed.alerts)
