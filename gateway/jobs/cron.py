"""Five-field cron expressions (minute hour day-of-month month day-of-week) and the next
time one fires in a time zone. Pure: no trio, no I/O.

Each field takes ``*``, numbers, ranges ``a-b``, steps ``*/n`` or ``a-b/n``, and lists of
those; months and weekdays also take three-letter English names (day 0 or 7 is Sunday).
As in Vixie cron, when both day fields are restricted a day matching either one fires.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_MONTHS = {n: i + 1 for i, n in enumerate(
    "jan feb mar apr may jun jul aug sep oct nov dec".split())}
_DAYS = {n: i for i, n in enumerate("sun mon tue wed thu fri sat".split())}
_BOUNDS = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))
_NAMES = ({}, {}, {}, _MONTHS, _DAYS)
_MAX_DAYS = 366 * 5


class CronError(ValueError):
    pass


def _value(text: str, names: dict[str, int], lo: int, hi: int) -> int:
    v = names.get(text.lower())
    if v is None:
        if not text.isdigit():
            raise CronError(f"{text!r} is not a number")
        v = int(text)
    if not lo <= v <= hi:
        raise CronError(f"{v} is outside {lo}-{hi}")
    return v


def _field(text: str, i: int) -> frozenset[int]:
    lo, hi = _BOUNDS[i]
    out: set[int] = set()
    for item in text.split(","):
        rng, _, step_s = item.partition("/")
        step = 1
        if step_s:
            if not step_s.isdigit() or int(step_s) == 0:
                raise CronError(f"bad step in {item!r}")
            step = int(step_s)
        if rng == "*":
            a, b = lo, hi
        elif "-" in rng:
            x, _, y = rng.partition("-")
            a, b = _value(x, _NAMES[i], lo, hi), _value(y, _NAMES[i], lo, hi)
            if a > b:
                raise CronError(f"empty range {item!r}")
        else:
            a = _value(rng, _NAMES[i], lo, hi)
            b = hi if step_s else a
        out.update(range(a, b + 1, step))
    if i == 4 and 7 in out:
        out = (out - {7}) | {0}
    return frozenset(out)


@dataclass(frozen=True)
class Cron:
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    any_day: bool
    any_weekday: bool

    def _day_ok(self, d: dt.date) -> bool:
        dom = d.day in self.days
        dow = (d.isoweekday() % 7) in self.weekdays
        if self.any_day and self.any_weekday:
            return True
        if self.any_day:
            return dow
        if self.any_weekday:
            return dom
        return dom or dow

    def next_after(self, ts: float, tz: str = "UTC") -> float:
        """The first firing strictly after unix time ``ts``, as unix time."""
        zone = zone_of(tz)
        start = (dt.datetime.fromtimestamp(ts, zone).replace(second=0, microsecond=0)
                 + dt.timedelta(minutes=1))
        day = start.date()
        for _ in range(_MAX_DAYS):
            if day.month in self.months and self._day_ok(day):
                for h in sorted(self.hours):
                    for m in sorted(self.minutes):
                        cand = dt.datetime(day.year, day.month, day.day, h, m, tzinfo=zone)
                        # A wall time skipped by a DST jump does not round-trip: skip it.
                        back = dt.datetime.fromtimestamp(cand.timestamp(), zone)
                        if (back.hour, back.minute) != (h, m):
                            continue
                        if cand >= start and cand.timestamp() > ts:
                            return cand.timestamp()
            day += dt.timedelta(days=1)
        raise CronError("the expression never fires")


def zone_of(tz: str) -> ZoneInfo:
    if not isinstance(tz, str) or not 0 < len(tz) <= 64:
        raise CronError("timezone must be an IANA zone name such as 'Europe/Paris'")
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise CronError(f"unknown time zone {tz!r}") from None


def parse(expr: str) -> Cron:
    if not isinstance(expr, str) or len(expr) > 200:
        raise CronError("a cron expression is a string of five fields")
    parts = expr.split()
    if len(parts) != 5:
        raise CronError(f"a cron expression has five fields, not {len(parts)}")
    f = [_field(p, i) for i, p in enumerate(parts)]
    cron = Cron(*f, any_day=parts[2] == "*", any_weekday=parts[4] == "*")
    return cron
