"""The five-field cron parser and its next firing, pure."""
from __future__ import annotations

import datetime as dt

import pytest

from gateway.jobs import cron


def _ts(*a, tz="UTC") -> float:
    return dt.datetime(*a, tzinfo=cron.zone_of(tz)).timestamp()


def test_fields_and_next():
    c = cron.parse("*/15 9-17 * * mon-fri")
    assert c.minutes == frozenset({0, 15, 30, 45}) and c.hours == frozenset(range(9, 18))
    # Saturday 10:07 in Paris -> Monday 09:00 in Paris.
    assert c.next_after(_ts(2026, 12, 5, 10, 7, tz="Europe/Paris"), "Europe/Paris") == \
        _ts(2026, 12, 7, 9, 0, tz="Europe/Paris")
    assert cron.parse("0 0 1 1 *").next_after(_ts(2026, 12, 5)) == _ts(2027, 1, 1)
    assert cron.parse("* * * * *").next_after(_ts(2026, 12, 5, 10, 7, 30)) == _ts(2026, 12, 5, 10, 8)
    # Strictly after: a time on a firing gives the next one.
    assert cron.parse("30 * * * *").next_after(_ts(2026, 1, 1, 0, 30)) == _ts(2026, 1, 1, 1, 30)


def test_day_fields_or_and_sunday_seven():
    # Day 13 or any Friday (Vixie cron's OR when both are restricted).
    c = cron.parse("0 12 13 * fri")
    assert c.next_after(_ts(2026, 3, 1)) == _ts(2026, 3, 6, 12)      # a Friday
    assert cron.parse("0 0 * * 7").weekdays == frozenset({0})
    assert cron.parse("0 0 * jan,jul sun").months == frozenset({1, 7})


def test_dst_gap_is_skipped():
    # 02:30 does not exist in Paris on 2026-03-29: the next real 02:30 is the day after.
    c = cron.parse("30 2 * * *")
    assert c.next_after(_ts(2026, 3, 28, 3, 0, tz="Europe/Paris"), "Europe/Paris") == \
        _ts(2026, 3, 30, 2, 30, tz="Europe/Paris")


@pytest.mark.parametrize("bad", ["", "* * * *", "60 * * * *", "* 24 * * *", "*/0 * * * *",
                                 "5-1 * * * *", "a * * * *", "* * 0 * *", "0 0 31 2 *",
                                 "* * * * * *"])
def test_refusals(bad):
    with pytest.raises(cron.CronError):
        cron.parse(bad).next_after(0.0)


def test_unknown_zone():
    with pytest.raises(cron.CronError):
        cron.zone_of("Mars/Olympus")
