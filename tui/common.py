"""Small pieces every dashboard view shares: money in and out, times, table refills."""
from __future__ import annotations

import time
from decimal import Decimal, InvalidOperation
from typing import Any, Iterable

from textual.widgets import DataTable
from textual.widgets.data_table import CellDoesNotExist

from gateway.billing.pricing import format_usd

MAX_USD = Decimal(1_000_000)


def usd(micros: int | None) -> str:
    """$1.234500 -> '1.2345': six decimals is exact but too wide for a table."""
    if micros is None:
        return "-"
    text = format_usd(micros).rstrip("0")
    return text + "00" if text.endswith(".") else text


def parse_usd(text: str) -> int:
    """'-1.5' -> -1500000 micro-USD, exactly (no float on the way); ValueError with a
    readable message otherwise."""
    try:
        amount = Decimal(text.strip().lstrip("$").replace(",", ""))
    except InvalidOperation:
        raise ValueError(f"{text!r} is not an amount in dollars") from None
    if not amount.is_finite() or abs(amount) > MAX_USD:
        raise ValueError("amount must be at most 1,000,000 dollars either way")
    micros = amount * 1_000_000
    if micros != micros.to_integral_value():
        raise ValueError("amounts go down to 0.000001 dollars, no further")
    return int(micros)


def clock(at: float | None) -> str:
    return time.strftime("%H:%M:%S", time.localtime(at)) if at else "-"


def date(at: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(at)) if at else "-"


def fill_table(table: DataTable, rows: Iterable[tuple[str, tuple[Any, ...]]]) -> None:
    """Replace a table's rows, keeping the cursor on the same row key if it survives,
    so a periodic refresh does not yank the operator's selection."""
    keep = selected_key(table)
    table.clear()
    for key, cells in rows:
        table.add_row(*cells, key=key)
    if keep is not None and keep in table.rows:
        table.move_cursor(row=table.get_row_index(keep), animate=False)


def selected_key(table: DataTable) -> str | None:
    if not table.row_count:
        return None
    try:
        return table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
    except CellDoesNotExist:
        return None
