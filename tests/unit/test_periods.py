from datetime import UTC, date, datetime

import pytest

from core.domain.periods import period_containing


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_calendar_monthly_first_period_starts_on_start_day() -> None:
    period = period_containing(utc(2026, 6, 20), interval="monthly", billing_time="calendar",
                               started_on=date(2026, 6, 10), timezone="UTC")
    assert period is not None
    assert (period.start, period.end) == (utc(2026, 6, 10), utc(2026, 7, 1))


def test_calendar_monthly_in_customer_timezone() -> None:
    # 2026-07-01 03:30 UTC is still June 30 in New York (UTC-4 in summer).
    period = period_containing(utc(2026, 7, 1, 3, 30), interval="monthly", billing_time="calendar",
                               started_on=date(2026, 1, 1), timezone="America/New_York")
    assert period is not None
    assert (period.start, period.end) == (utc(2026, 6, 1, 4), utc(2026, 7, 1, 4))


def test_before_start_is_outside_any_period() -> None:
    assert period_containing(utc(2026, 6, 9, 23), interval="monthly", billing_time="calendar",
                             started_on=date(2026, 6, 10), timezone="UTC") is None


@pytest.mark.parametrize(
    ("instant", "start", "end"),
    [
        (utc(2026, 2, 27), utc(2026, 1, 31), utc(2026, 2, 28)),
        (utc(2026, 2, 28), utc(2026, 2, 28), utc(2026, 3, 31)),
        (utc(2026, 4, 29), utc(2026, 3, 31), utc(2026, 4, 30)),
    ],
)
def test_anniversary_monthly_clamps_short_months(instant: datetime, start: datetime, end: datetime) -> None:
    period = period_containing(instant, interval="monthly", billing_time="anniversary",
                               started_on=date(2026, 1, 31), timezone="UTC")
    assert period is not None
    assert (period.start, period.end) == (start, end)


def test_calendar_weekly_quarterly_yearly() -> None:
    kw = {"billing_time": "calendar", "started_on": date(2020, 1, 1), "timezone": "UTC"}
    week = period_containing(utc(2026, 11, 26), interval="weekly", **kw)
    quarter = period_containing(utc(2026, 11, 26), interval="quarterly", **kw)
    year = period_containing(utc(2026, 11, 26), interval="yearly", **kw)
    assert week is not None and (week.start, week.end) == (utc(2026, 11, 23), utc(2026, 11, 30))
    assert quarter is not None and (quarter.start, quarter.end) == (utc(2026, 10, 1), utc(2027, 1, 1))
    assert year is not None and (year.start, year.end) == (utc(2026, 1, 1), utc(2027, 1, 1))
