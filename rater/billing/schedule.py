"""What is due when: the billing moments of one subscription up to a given instant. Pure.

A subscription produces, in time order:
- `start`        pay in advance, no trial, not backdated: the first period's fee at the start
                 (prorated for calendar billing, full for anniversary billing);
- `trial_end`    pay in advance with a trial that ends inside a period: the fee from the trial end
                 to that period's end, prorated on whole days rounded up;
- `periodic`     every period end (the billing day): the usage of the past period, plus the fee of
                 the coming period (in advance) or of the past one (in arrears, prorated when the
                 trial or the start cut it); a yearly plan that bills its charges monthly has one
                 at every month end, with the month's usage and, at the year's end only, the fee;
- `termination`  at termination: the usage of the period so far, plus the arrears fee up to the
                 termination day (in advance, that period was paid already).

Each moment has a `billing_key` that names it uniquely within the subscription; the unique
key of `invoice_subscriptions` on (subscription, billing_key) makes billing it twice impossible.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from functools import cached_property
from zoneinfo import ZoneInfo

from core.domain.money import round_cents
from core.domain.periods import (
    BillingCycle,
    Period,
    charges_interval,
    local_period_bounds,
    start_day,
    subscription_cycle,
    usage_cycle_of,
)

INVOICING_REASONS = {
    "start": "subscription_starting",
    "trial_end": "subscription_periodic",
    "periodic": "subscription_periodic",
    "termination": "subscription_terminating",
}


@dataclass(frozen=True)
class Terms:
    """What billing needs to know about a subscription and its plan."""

    subscription_id: str
    customer_id: str
    started_at: datetime
    created_at: datetime
    interval: str
    billing_time: str
    timezone: str
    pay_in_advance: bool
    amount_cents: int
    trial_days: int
    ended_at: datetime | None  # terminated_at, or ending_at once it has passed
    bill_charges_monthly: bool = False  # a yearly plan's usage billed every month
    # a plan change's subscription: the start of the first subscription of its chain (trial, anniversary)
    anchor_at: datetime | None = None
    follows_previous: bool = False  # its first period starts at `started_at` (core.domain.periods)
    started_by_upgrade: bool = False  # its start moment is on the upgrade's invoice
    ended_by_upgrade: bool = False  # its end moment is on the upgrade's invoice, the change day credited too
    credits_unused_fee: bool = True  # an ended period paid in advance is credited (on_termination_credit_note)
    invoices_termination: bool = True  # on_termination_invoice: generate (else its invoice is closed unseen)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def started_on(self) -> date:
        return start_day(self.started_at, self.timezone)

    @cached_property  # found once per subscription and billing run, used for each of its moments
    def cycle(self) -> BillingCycle:
        return subscription_cycle(self.interval, self.billing_time, self.timezone, self.started_at, self.anchor_at,
                                  self.follows_previous)

    @cached_property
    def charges_cycle(self) -> BillingCycle:
        """How its usage is cut into the windows billed (the billing periods, or months)."""
        return usage_cycle_of(self.cycle, self.bill_charges_monthly)

    @property
    def trial_end(self) -> datetime | None:
        """The end of the trial, counted from the first start of the chain (a plan change keeps it)."""
        return (self.anchor_at or self.started_at) + timedelta(days=self.trial_days) if self.trial_days > 0 else None

    def in_trial(self, instant: datetime) -> bool:
        return self.trial_end is not None and self.trial_end > instant


@dataclass(frozen=True)
class Due:
    """One billing moment of one subscription."""

    kind: str
    at: datetime
    billing_key: str
    fee_cents: int
    fee_from: datetime | None
    fee_to: datetime | None
    charges: Period | None  # the usage window [start, end) billed, if any
    closes: Period | None  # the usage period this moment closes for good (its key goes to closed_periods)
    bills_fee: bool = True  # False: a usage-only moment (a month of a yearly plan billing its charges monthly)
    charges_days: tuple[int, int] | None = None  # days of the usage window, of its whole usage period
    upgrade: bool = False  # a moment of a plan upgrade (both subscriptions' moments share its invoice)
    credit_cents: int = 0  # the unused part of the ended period's fee paid in advance (a credit note)

    @property
    def invoicing_reason(self) -> str:
        return "upgrading" if self.upgrade else INVOICING_REASONS[self.kind]

    @property
    def credit_reason(self) -> str:
        return "order_change" if self.upgrade else "order_cancellation"



def _period(terms: Terms, instant: datetime) -> Period:
    period = terms.cycle.period_at(instant)
    assert period is not None, "instant before the subscription started"
    return period


def _usage_period(terms: Terms, instant: datetime) -> Period:
    period = terms.charges_cycle.period_at(instant)
    assert period is not None, "instant before the subscription started"
    return period


def _local(terms: Terms, instant: datetime) -> date:
    return instant.astimezone(terms.zone).date()


def full_days(terms: Terms, period: Period, interval: str | None = None) -> int:
    """Days of the whole period `period` belongs to (a first calendar period is clipped at the start),
    of the plan's interval unless another is given."""
    day = _local(terms, period.start)
    anchor = date.min if terms.billing_time == "calendar" else terms.cycle.started_on  # the chain's anniversary
    start, next_start = local_period_bounds(day, interval or terms.interval, terms.billing_time, anchor)
    return (next_start - start).days


def days_between(terms: Terms, start: datetime, end: datetime) -> int:
    """Whole local days from `start` to `end`, a started day counting as a whole one."""
    end_local = end.astimezone(terms.zone)
    last = end_local.date() if end_local.time() == datetime.min.time() else end_local.date() + timedelta(days=1)
    return max((last - _local(terms, start)).days, 0)


def charges_days(terms: Terms, window: Period) -> tuple[int, int]:
    """Days of a usage window (a started day counting whole) and of the whole usage period it is in:
    what prorates a charge's minimum."""
    interval = charges_interval(terms.interval, terms.bill_charges_monthly)
    return days_between(terms, window.start, window.end), full_days(terms, window, interval)


def prorated(terms: Terms, period: Period, start: datetime, end: datetime) -> int:
    """The fee for [start, end) within `period`: round(days × amount / days of the whole period)."""
    days, whole = days_between(terms, start, end), full_days(terms, period)
    if days >= whole:
        return terms.amount_cents
    return round_cents(Decimal(days) * terms.amount_cents / whole)


def _arrears_fee(terms: Terms, period: Period, stop: datetime) -> tuple[int, datetime, datetime]:
    begin = max(period.start, terms.trial_end or period.start)
    if begin >= stop:
        return 0, period.start, stop
    return prorated(terms, period, begin, stop), begin, stop


def _start(terms: Terms, first: Period) -> Due | None:
    """The first fee in advance (none in a trial): the full fee of an anniversary period, else the days
    from the start day (counted whole) to the period end."""
    backdated = terms.started_on < _local(terms, terms.created_at)
    if not terms.pay_in_advance or terms.in_trial(terms.started_at) or backdated:
        return None
    whole = terms.billing_time == "anniversary" and not terms.follows_previous
    fee = terms.amount_cents if whole else prorated(terms, first, first.start, first.end)
    return Due("start", terms.started_at, f"start:{first.key}", fee, first.start, first.end, None, None,
               upgrade=terms.started_by_upgrade)


def _trial_end(terms: Terms) -> Due | None:
    trial_end = terms.trial_end
    if trial_end is None or not terms.pay_in_advance or trial_end <= terms.started_at:
        return None
    if terms.ended_at is not None and terms.ended_at <= trial_end:
        return None
    period = _period(terms, trial_end)
    if trial_end <= period.start:  # the trial ends on a billing day: that day bills the full fee
        return None
    fee = prorated(terms, period, trial_end, period.end)
    return Due("trial_end", trial_end, f"trial_end:{period.key}", fee, trial_end, period.end, None, None)


def _periodic(terms: Terms, window: Period) -> Due:
    """The moment at the end of usage period `window`: its usage, and the fee when the billing period ends too."""
    period = _period(terms, window.start)
    days = charges_days(terms, window)
    if window.end < period.end:
        # the usage of a month; the billing period it is in is what the invoice shows as the subscription's
        return Due("periodic", window.end, f"charges:{window.key}", 0, period.start, period.end, window, window,
                   False, days)
    following = _period(terms, period.end)
    if terms.pay_in_advance:
        in_trial = terms.trial_end is not None and terms.trial_end > following.start
        fee, fee_from, fee_to = (0 if in_trial else terms.amount_cents), following.start, following.end
    else:
        fee, fee_from, fee_to = _arrears_fee(terms, period, period.end)
    return Due("periodic", period.end, f"period:{period.key}", fee, fee_from, fee_to, window, window, True, days)


def unused_fee(terms: Terms, period: Period, ended_at: datetime) -> int:
    """What a fee paid in advance for `period` leaves unused when the subscription ends at `ended_at`:
    the days after that day (an upgrade: from that day on), prorated; 0 in arrears or in a trial."""
    if not terms.pay_in_advance or not terms.credits_unused_fee or terms.in_trial(ended_at):
        return 0
    days = (_local(terms, period.end) - _local(terms, ended_at)).days - (0 if terms.ended_by_upgrade else 1)
    if days <= 0:
        return 0
    return round_cents(Decimal(days) * terms.amount_cents / full_days(terms, period))


def _termination(terms: Terms, window: Period, ended_at: datetime) -> Due:
    period = _period(terms, window.start)
    if terms.pay_in_advance:
        fee, fee_from, fee_to = 0, period.start, ended_at
    else:
        fee, fee_from, fee_to = _arrears_fee(terms, period, ended_at)
    usage = Period(window.start, ended_at)
    return Due("termination", ended_at, f"termination:{period.key}", fee, fee_from, fee_to, usage, window, True,
               charges_days(terms, usage), terms.ended_by_upgrade, unused_fee(terms, period, ended_at))


def due_until(terms: Terms, as_of: datetime, since: datetime | None = None) -> list[Due]:
    """Every billing moment of the subscription at or before `as_of`, in time order; with `since`,
    only the periodic moments from `since` on are computed (periods are found directly, not walked
    from the start, so a subscription that has run for years costs the same as a new one)."""
    ended_at = terms.ended_at
    if terms.started_at > as_of or (ended_at is not None and ended_at <= terms.started_at):
        return []
    first = _period(terms, terms.started_at)
    moments = [m for m in (_start(terms, first), _trial_end(terms)) if m is not None]
    window = _usage_period(terms, terms.started_at)
    if since is not None and since > terms.started_at:
        window = _usage_period(terms, since - timedelta(microseconds=1))
    while window.end <= as_of and (ended_at is None or window.end < ended_at):
        moments.append(_periodic(terms, window))
        window = _usage_period(terms, window.end)
    if ended_at is not None and ended_at <= as_of:
        moments.append(_termination(terms, window, ended_at))
    return sorted((m for m in moments if m.at <= as_of), key=lambda m: m.at)


def creation_day_start(terms: Terms) -> datetime:
    day = _local(terms, terms.created_at)
    return datetime.combine(day, datetime.min.time(), tzinfo=terms.zone)


def since_creation_day(terms: Terms, moments: list[Due]) -> list[Due]:
    """The moments from the local day the subscription was created on.

    A backdated subscription has no invoice for the moments before it existed (Lago's rule); the
    biller loop bills from its creation day on, `meterline bill` replays the whole history.
    """
    day = _local(terms, terms.created_at)
    return [m for m in moments if _local(terms, m.at) >= day]
