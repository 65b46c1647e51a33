"""Properties of billing periods (core.domain.periods), checked on generated subscriptions and instants.

For every interval and billing time, in UTC and in zones with daylight saving time (New York and
Paris change their clocks at 02:00/03:00, so local midnight always exists there): the period
containing an instant contains it, starts at local midnight, is contiguous with its neighbours, and
starts on the day the rules say (the 1st, a Monday, a quarter, Jan 1; or the anniversary day
clamped to the month's length).
"""

from __future__ import annotations

import calendar
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.domain.periods import BILLING_TIMES, INTERVALS, Period, period_containing

ZONES = ("UTC", "America/New_York", "Europe/Paris")
_MONTHS = {"monthly": 1, "quarterly": 3, "yearly": 12}

zones = st.sampled_from(ZONES)
intervals = st.sampled_from(INTERVALS)
billing_times = st.sampled_from(BILLING_TIMES)
# Start days weighted towards month ends, where clamping happens.
start_days = st.one_of(
    st.dates(min_value=date(1999, 1, 1), max_value=date(2060, 12, 31)),
    st.builds(lambda y, m, d: date(y, m, min(d, calendar.monthrange(y, m)[1])),
              st.integers(1999, 2060), st.integers(1, 12), st.integers(28, 31)),
)
# Up to ~4 years after the start, to the microsecond.
offsets = st.integers(min_value=0, max_value=4 * 366 * 86400 * 10**6).map(lambda us: timedelta(microseconds=us))


def local_midnight(day: date, zone: str) -> datetime:
    return datetime.combine(day, time(0), tzinfo=ZoneInfo(zone)).astimezone(UTC)


def local_day(instant: datetime, zone: str) -> date:
    return instant.astimezone(ZoneInfo(zone)).date()


def period_of(instant: datetime, interval: str, billing_time: str, started_on: date, zone: str) -> Period:
    period = period_containing(instant, interval=interval, billing_time=billing_time, started_on=started_on,
                               timezone=zone)
    assert period is not None
    return period


def expected_anniversary_day(start: date, anchor: date) -> int:
    return min(anchor.day, calendar.monthrange(start.year, start.month)[1])


@settings(max_examples=400, deadline=None)
@given(zones, intervals, billing_times, start_days, offsets)
def test_period_contains_the_instant_and_is_contiguous(zone: str, interval: str, billing_time: str,
                                                       started_on: date, offset: timedelta) -> None:
    instant = local_midnight(started_on, zone) + offset
    period = period_of(instant, interval, billing_time, started_on, zone)

    assert period.start <= instant < period.end
    # starts and ends at local midnight, even across a daylight saving change
    for bound in (period.start, period.end):
        assert bound.astimezone(ZoneInfo(zone)).time() == time(0)
    # the next period starts where this one ends; the previous one ends where this one starts
    after = period_of(period.end, interval, billing_time, started_on, zone)
    assert after.start == period.end and after.end > after.start
    if local_day(period.start, zone) > started_on:
        before = period_of(period.start - timedelta(microseconds=1), interval, billing_time, started_on, zone)
        assert before.end == period.start
    else:
        assert local_day(period.start, zone) == started_on
        assert period_containing(period.start - timedelta(microseconds=1), interval=interval,
                                 billing_time=billing_time, started_on=started_on, timezone=zone) is None


@settings(max_examples=400, deadline=None)
@given(zones, intervals, start_days, offsets)
def test_calendar_periods_start_on_the_natural_boundary(zone: str, interval: str, started_on: date,
                                                        offset: timedelta) -> None:
    instant = local_midnight(started_on, zone) + offset
    period = period_of(instant, interval, "calendar", started_on, zone)
    start, end = local_day(period.start, zone), local_day(period.end, zone)
    if start != started_on:  # only the first period may start on the subscription's day
        if interval == "weekly":
            assert start.weekday() == 0
        else:
            assert start.day == 1 and (start.month - 1) % _MONTHS[interval] == 0
    if interval == "weekly":
        assert end.weekday() == 0 and 1 <= (end - start).days <= 7
    else:
        assert end.day == 1 and (end.month - 1) % _MONTHS[interval] == 0


@settings(max_examples=400, deadline=None)
@given(zones, intervals, start_days, offsets)
def test_anniversary_periods_repeat_the_start_day_clamped(zone: str, interval: str, started_on: date,
                                                          offset: timedelta) -> None:
    instant = local_midnight(started_on, zone) + offset
    period = period_of(instant, interval, "anniversary", started_on, zone)
    start, end = local_day(period.start, zone), local_day(period.end, zone)
    if interval == "weekly":
        assert start.weekday() == started_on.weekday() and (end - start).days == 7
        return
    assert start.day == expected_anniversary_day(start, started_on)
    assert end.day == expected_anniversary_day(end, started_on)
    months = (end.year - start.year) * 12 + end.month - start.month
    assert months == _MONTHS[interval]


@settings(max_examples=200, deadline=None)
@given(zones, intervals, billing_times, start_days, offsets)
def test_period_is_the_same_for_every_instant_in_it(zone: str, interval: str, billing_time: str,
                                                    started_on: date, offset: timedelta) -> None:
    instant = local_midnight(started_on, zone) + offset
    period = period_of(instant, interval, billing_time, started_on, zone)
    for probe in (period.start, period.end - timedelta(microseconds=1), period.start + (period.end - period.start) / 2):
        assert period_of(probe, interval, billing_time, started_on, zone) == period


@pytest.mark.parametrize("year", [2023, 2024, 2100, 2000])  # common, leap, century common, century leap
@pytest.mark.parametrize("anchor_day", [28, 29, 30, 31])
def test_anniversary_monthly_every_month_length(year: int, anchor_day: int) -> None:
    """Each month of the year: the period starts on the anchor day, or the month's last day when shorter."""
    anchor = date(year - 1, 12, min(anchor_day, 31))
    for month in range(1, 13):
        last = calendar.monthrange(year, month)[1]
        day = date(year, month, min(anchor_day, last))
        period = period_of(local_midnight(day, "UTC") + timedelta(hours=12), "monthly", "anniversary", anchor, "UTC")
        assert local_day(period.start, "UTC") == day
        following = date(year + month // 12, month % 12 + 1, 1)
        expected_end = following.replace(day=min(anchor_day, calendar.monthrange(following.year, following.month)[1]))
        assert local_day(period.end, "UTC") == expected_end


@pytest.mark.parametrize(("year", "leap"), [(2024, True), (2025, False), (2028, True), (2100, False)])
def test_yearly_anniversary_from_february_29(year: int, leap: bool) -> None:
    period = period_of(datetime(year, 3, 15, tzinfo=UTC), "yearly", "anniversary", date(2020, 2, 29), "UTC")
    assert local_day(period.start, "UTC") == date(year, 2, 29 if leap else 28)
    assert local_day(period.end, "UTC") == date(year + 1, 2, 29 if calendar.isleap(year + 1) else 28)


@pytest.mark.parametrize(
    ("zone", "instant", "start", "end", "hours"),
    [
        # New York springs forward on 2026-03-08 (23-hour day) and falls back on 2026-11-01 (25 hours)
        ("America/New_York", datetime(2026, 3, 8, 12, tzinfo=UTC),
         datetime(2026, 3, 1, 5, tzinfo=UTC), datetime(2026, 4, 1, 4, tzinfo=UTC), 31 * 24 - 1),
        ("America/New_York", datetime(2026, 11, 1, 12, tzinfo=UTC),
         datetime(2026, 11, 1, 4, tzinfo=UTC), datetime(2026, 12, 1, 5, tzinfo=UTC), 30 * 24 + 1),
        # Paris: 2026-03-29 and 2026-10-25
        ("Europe/Paris", datetime(2026, 3, 29, 12, tzinfo=UTC),
         datetime(2026, 2, 28, 23, tzinfo=UTC), datetime(2026, 3, 31, 22, tzinfo=UTC), 31 * 24 - 1),
        ("Europe/Paris", datetime(2026, 10, 25, 12, tzinfo=UTC),
         datetime(2026, 9, 30, 22, tzinfo=UTC), datetime(2026, 10, 31, 23, tzinfo=UTC), 31 * 24 + 1),
    ],
)
def test_calendar_month_across_daylight_saving_change(zone: str, instant: datetime, start: datetime,
                                                      end: datetime, hours: int) -> None:
    period = period_of(instant, "monthly", "calendar", date(2020, 1, 1), zone)
    assert (period.start, period.end) == (start, end)
    assert period.end - period.start == timedelta(hours=hours)


def test_weekly_period_across_daylight_saving_change_is_seven_local_days() -> None:
    # Paris, week of Monday 2026-10-19 .. Monday 2026-10-26: 7 local days, 169 hours
    period = period_of(datetime(2026, 10, 25, 12, tzinfo=UTC), "weekly", "calendar", date(2020, 1, 1),
                       "Europe/Paris")
    assert (period.start, period.end) == (datetime(2026, 10, 18, 22, tzinfo=UTC),
                                          datetime(2026, 10, 25, 23, tzinfo=UTC))
    assert period.end - period.start == timedelta(hours=169)
