"""Billing periods: which period of a subscription contains an instant, in the customer's timezone.

Periods are half-open `[start, end)` in UTC; `end` is the next period's start. Calendar periods
align to the interval's natural boundary (Monday, the 1st, a quarter, Jan 1); anniversary
periods repeat from the subscription's start day, clamped to the last day of short months.
The first period of a subscription starts at the start of its start day.

A subscription that follows another one of its external_id (a plan change) keeps the anniversary
day of the first one, and its first period starts at the instant it started.

`BillingCycle` is what every reader of periods holds (the aggregator placing an event, current
usage, the billing schedule, the API's subscription document): one type, one way to find a period.
"""

from __future__ import annotations

import calendar as _calendar
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

INTERVALS: tuple[str, ...] = ("weekly", "monthly", "quarterly", "yearly")
BILLING_TIMES: tuple[str, ...] = ("calendar", "anniversary")
_MONTHS = {"monthly": 1, "quarterly": 3, "yearly": 12}


KEY_FORMAT = "%Y%m%dT%H%M%SZ"  # a period's key: its start in UTC, to the second


@dataclass(frozen=True, order=True)
class Period:
    start: datetime  # UTC, inclusive
    end: datetime  # UTC, exclusive

    @property
    def key(self) -> str:
        """A stable identifier of the period, used in storage keys."""
        return self.start.strftime(KEY_FORMAT)


def key_start(key: str) -> datetime:
    """The start of the period with this key (the inverse of `Period.key`)."""
    return datetime.strptime(key, KEY_FORMAT).replace(tzinfo=UTC)


def _add_months(day: date, months: int, anchor_day: int) -> date:
    index = day.year * 12 + (day.month - 1) + months
    year, month = divmod(index, 12)
    last = _calendar.monthrange(year, month + 1)[1]
    return date(year, month + 1, min(anchor_day, last))


def _local_midnight(day: date, tz: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)


def _calendar_start(day: date, interval: str) -> date:
    if interval == "weekly":
        return day - timedelta(days=day.weekday())
    if interval == "monthly":
        return day.replace(day=1)
    if interval == "quarterly":
        return date(day.year, 3 * ((day.month - 1) // 3) + 1, 1)
    return date(day.year, 1, 1)


def _next_start(start: date, interval: str, anchor_day: int) -> date:
    if interval == "weekly":
        return start + timedelta(days=7)
    return _add_months(start, _MONTHS[interval], anchor_day)


def _anniversary_start(day: date, interval: str, anchor: date) -> date:
    if interval == "weekly":
        return day - timedelta(days=(day - anchor).days % 7)
    step = _MONTHS[interval]
    months = (day.year - anchor.year) * 12 + day.month - anchor.month
    candidate = _add_months(anchor, months - months % step, anchor.day)
    if candidate > day:
        candidate = _add_months(anchor, months - months % step - step, anchor.day)
    return candidate


def local_period_bounds(day: date, interval: str, billing_time: str, anchor: date) -> tuple[date, date]:
    """The period containing local date `day` as local dates `[start, next_start)`, clipped at the anchor."""
    if billing_time == "calendar":
        start = _calendar_start(day, interval)
        next_start = _next_start(start, interval, 1)
    else:
        start = _anniversary_start(day, interval, anchor)
        next_start = _next_start(start, interval, anchor.day)
    return max(start, anchor), next_start


def period_containing(instant: datetime, *, interval: str, billing_time: str, started_on: date,
                      timezone: str) -> Period | None:
    """The billing period containing `instant` (aware), or None when it is before the subscription started."""
    tz = ZoneInfo(timezone)
    day = instant.astimezone(tz).date()
    if day < started_on:
        return None
    start, next_start = local_period_bounds(day, interval, billing_time, started_on)
    return Period(_local_midnight(start, tz), _local_midnight(next_start, tz))


def subscription_cycle(interval: str, billing_time: str, timezone: str, started_at: datetime,
                       anchor_at: datetime | None = None, follows_previous: bool = False) -> BillingCycle:
    """A subscription's billing cycle (the one rule for every reader): periods anchored on the start day
    of its chain (`anchor_at`: the first subscription a plan change continues), the first one starting
    at its own start when it follows another subscription of its external_id."""
    return BillingCycle(interval, billing_time, start_day(anchor_at or started_at, timezone), timezone,
                        started_at if follows_previous else None)


def usage_cycle_of(cycle: BillingCycle, bill_charges_monthly: bool | None) -> BillingCycle:
    """How a subscription's usage is cut: its billing cycle, by month for a yearly plan billing charges monthly."""
    return replace(cycle, interval=charges_interval(cycle.interval, bill_charges_monthly))


def charges_interval(interval: str, bill_charges_monthly: bool | None) -> str:
    """The interval a plan's usage is billed on: its own, or monthly for a yearly plan that bills its
    charges monthly (Lago's `bill_charges_monthly`, which only yearly plans have)."""
    return "monthly" if interval == "yearly" and bill_charges_monthly else interval


def start_day(started_at: datetime, timezone: str | None) -> date:
    """The local day a subscription started on, in its customer's timezone (UTC when unset)."""
    return started_at.astimezone(ZoneInfo(timezone or "UTC")).date()


@dataclass(frozen=True)
class BillingCycle:
    """How a subscription's billing periods are cut: its plan's interval, calendar or anniversary
    billing, the local day it started on and its customer's timezone."""

    interval: str
    billing_time: str
    started_on: date
    timezone: str
    # set when the subscription follows another of its external_id (a plan change, or one used again):
    # its first period starts at this instant, where the other one's ended
    not_before: datetime | None = None

    def period_at(self, instant: datetime) -> Period | None:
        """The billing period containing `instant` (aware), or None before the subscription started."""
        if self.not_before is not None and instant < self.not_before:
            return None
        period = period_containing(instant, interval=self.interval, billing_time=self.billing_time,
                                   started_on=self.started_on, timezone=self.timezone)
        if period is not None and self.not_before is not None and period.start < self.not_before:
            return Period(self.not_before, period.end)
        return period
