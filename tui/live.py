"""Live: every request as the gateway finishes it, filterable, with sparklines.

Rows arrive as Event frames; the view keeps the newest MAX_ROWS records and rebuilds
the table from them when the filter changes. Throughput (requests per second) and
mean latency per second cover the last minute. A Dropped frame means the gateway
discarded events while this dashboard lagged; the count is shown, never hidden.
"""
from __future__ import annotations

import time
from collections import deque
from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Input, Label, Sparkline

from tui.common import clock, usd

MAX_ROWS = 1000
SPARK_SECONDS = 60
# Most telling first: at 80 columns the table scrolls sideways after "cost".
COLUMNS = ("time", "key", "model", "status", "latency", "tokens", "cost", "route",
           "dialect", "failover", "node")


def cells(record: dict[str, Any], key_names: dict[str, str]) -> tuple[str, ...]:
    key_id = record.get("key_id") or ""
    status = int(record.get("status") or 0)
    shown_status = str(status) if status < 400 else f"[red]{status}[/red]"
    return (
        clock(record.get("at")),
        key_names.get(key_id) or key_id[:12] or "-",
        record.get("model") or "-",
        shown_status,
        f"{float(record.get('latency_ms') or 0):.0f}ms",
        f"{record.get('tokens_in') or 0}/{record.get('tokens_out') or 0}",
        usd(int(record.get("cost_micros") or 0)),
        record.get("route") or "-",
        record.get("dialect") or "-",
        "yes" if record.get("failover") else "",
        # Another process sharing the store served it (gateway.shared.feed); blank: this one.
        str(record.get("node") or "").removeprefix("node_"),
    )


class LiveView(Vertical):
    BINDINGS = [
        Binding("slash", "focus_filter", "Filter"),
        Binding("escape", "leave_filter", "Table", show=False),
        Binding("c", "clear", "Clear"),
    ]

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.records: deque[dict[str, Any]] = deque(maxlen=MAX_ROWS)
        self.dropped_total = 0
        self.filter = ""
        self._row_seq = 0
        self._second = int(time.time())
        self._counts: deque[float] = deque([0.0] * SPARK_SECONDS, maxlen=SPARK_SECONDS)
        self._latency: deque[float] = deque([0.0] * SPARK_SECONDS, maxlen=SPARK_SECONDS)
        self._lat_sum = 0.0

    def compose(self) -> ComposeResult:
        yield Input(placeholder="filter (model, key, route, status...)", id="filter",
                    compact=True)
        with Horizontal(id="sparks"):
            yield Label("req/s", classes="spark-label")
            yield Sparkline(list(self._counts), id="throughput")
            yield Label("latency", classes="spark-label")
            yield Sparkline(list(self._latency), id="latency")
        yield Label("", id="live-stats")
        table = DataTable(id="requests", cursor_type="row", zebra_stripes=True)
        table.add_columns(*COLUMNS)
        yield table

    def on_mount(self) -> None:
        self.set_interval(1.0, self.tick)
        self._show_stats()

    # ---------------------------------------------------------------- feed

    def add_event(self, record: dict[str, Any]) -> None:
        self.records.append(record)
        self._counts[-1] += 1
        self._lat_sum += float(record.get("latency_ms") or 0.0)
        self._latency[-1] = self._lat_sum / self._counts[-1]
        if self._matches(record):
            self._append_row(record)
        self._show_stats()

    def add_dropped(self, count: int) -> None:
        self.dropped_total += count
        self._show_stats()

    def _append_row(self, record: dict[str, Any]) -> None:
        table = self.query_one("#requests", DataTable)
        at_end = table.cursor_row >= table.row_count - 1
        self._row_seq += 1
        table.add_row(*cells(record, self.app.key_names), key=str(self._row_seq))
        while table.row_count > MAX_ROWS:
            table.remove_row(next(iter(table.rows)))
        if at_end:
            table.move_cursor(row=table.row_count - 1, animate=False)

    # ---------------------------------------------------------------- filter

    def _matches(self, record: dict[str, Any]) -> bool:
        if not self.filter:
            return True
        text = " ".join(str(c) for c in cells(record, self.app.key_names)).lower()
        extra = f" {record.get('key_id') or ''} {record.get('request_id') or ''} " \
                f"{record.get('provider') or ''} {record.get('error_type') or ''}"
        return all(word in text + extra.lower() for word in self.filter.split())

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id != "filter":
            return
        self.filter = event.value.strip().lower()
        self.rebuild()

    def rebuild(self) -> None:
        """Redraw every kept record (a new filter, or key names learned late)."""
        table = self.query_one("#requests", DataTable)
        table.clear()
        for record in self.records:
            if self._matches(record):
                self._row_seq += 1
                table.add_row(*cells(record, self.app.key_names), key=str(self._row_seq))
        self._show_stats()

    def action_focus_filter(self) -> None:
        self.query_one("#filter", Input).focus()

    def action_leave_filter(self) -> None:
        self.query_one("#requests", DataTable).focus()

    def action_clear(self) -> None:
        self.records.clear()
        self.rebuild()

    # ---------------------------------------------------------------- sparklines

    def tick(self) -> None:
        now = int(time.time())
        for _ in range(min(now - self._second, SPARK_SECONDS)):
            self._counts.append(0.0)
            self._latency.append(0.0)
            self._lat_sum = 0.0
        self._second = now
        self.query_one("#throughput", Sparkline).data = list(self._counts)
        self.query_one("#latency", Sparkline).data = list(self._latency)
        self._show_stats()

    def _show_stats(self) -> None:
        shown = self.query_one("#requests", DataTable).row_count
        last = self._counts[-2] if len(self._counts) > 1 else 0
        text = f"{len(self.records)} requests, {shown} shown, {last:.0f} req/s"
        if self.dropped_total:
            text += f"  [b yellow]{self.dropped_total} events dropped (dashboard too slow)[/]"
        self.query_one("#live-stats", Label).update(text)
