"""The contract's plan-change timelines as billing moments (rater.billing.schedule), exact to the cent.

Customer in UTC, calendar monthly, June 2026 has 30 days. Free: $0 in arrears; Team: 12,000 cents in
advance with a 14-day trial; Business: 50,000 cents in advance, no trial.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from core.domain.periods import Period
from core.domain.plan_changes import is_upgrade, yearly_amount_cents
from rater.billing.schedule import Terms, due_until


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


def subscription(start: datetime, *, amount: int, advance: bool, trial: int = 0, ended: datetime | None = None,
                 **changes: object) -> Terms:
    terms = Terms("sub", "cus", start, start, "monthly", "calendar", "UTC", advance, amount, trial, ended)
    return replace(terms, **changes)


def summary(moments: list) -> list[tuple[str, str, int, str]]:
    return [(m.kind, m.at.isoformat(), m.fee_cents, m.invoicing_reason) for m in moments]


def test_plans_compare_by_their_yearly_amount() -> None:
    assert yearly_amount_cents("weekly", 100) == 5200
    assert is_upgrade(("monthly", 0), ("monthly", 12000))
    assert is_upgrade(("monthly", 12000), ("monthly", 12000))  # equal: an upgrade, at once
    assert not is_upgrade(("monthly", 12000), ("yearly", 100000))  # 144,000 a year against 100,000
    assert is_upgrade(("quarterly", 30000), ("monthly", 10000))


def test_free_to_team_after_the_trial_bills_eleven_days_of_team_on_the_upgrade_invoice() -> None:
    change = utc(2026, 6, 20, 15)
    free = subscription(utc(2026, 6, 1), amount=0, advance=False, ended=change, ended_by_upgrade=True)
    (ended,) = due_until(free, utc(2026, 7, 1))
    assert summary([ended]) == [("termination", "2026-06-20T15:00:00+00:00", 0, "upgrading")]
    assert ended.charges == Period(utc(2026, 6, 1), change)  # Free's usage up to the change
    team = subscription(change, amount=12000, advance=True, trial=14, anchor_at=utc(2026, 6, 1),
                        follows_previous=True, started_by_upgrade=True)
    start, july = due_until(team, utc(2026, 7, 1))
    assert summary([start, july]) == [("start", "2026-06-20T15:00:00+00:00", 4400, "upgrading"),  # 11 x 400
                                      ("periodic", "2026-07-01T00:00:00+00:00", 12000, "subscription_periodic")]
    assert july.charges == Period(change, utc(2026, 7, 1))  # Team's usage from the change on
    assert july.closes is not None and july.closes.key == "20260620T150000Z"  # never Free's June period


def test_free_to_team_in_its_trial_bills_team_from_the_trial_end_counted_from_the_first_start() -> None:
    team = subscription(utc(2026, 6, 5, 12), amount=12000, advance=True, trial=14, anchor_at=utc(2026, 6, 1),
                        follows_previous=True, started_by_upgrade=True)
    assert summary(due_until(team, utc(2026, 6, 30))) == [
        ("trial_end", "2026-06-15T00:00:00+00:00", 6400, "subscription_periodic")]  # 16 x 400


def test_team_to_business_credits_ten_days_of_team_and_bills_ten_days_of_business() -> None:
    change = utc(2026, 6, 21, 9)
    team = subscription(utc(2026, 5, 1), amount=12000, advance=True, trial=14, ended=change, ended_by_upgrade=True)
    ended = due_until(team, change)[-1]
    assert (ended.kind, ended.credit_cents, ended.credit_reason) == ("termination", 4000, "order_change")
    business = subscription(change, amount=50000, advance=True, anchor_at=utc(2026, 5, 1), follows_previous=True,
                            started_by_upgrade=True)
    (start,) = due_until(business, change)
    assert (start.fee_cents, start.fee_from, start.fee_to) == (16667, change, utc(2026, 7, 1))  # 10 x 50,000 / 30


def test_a_termination_credits_the_days_after_the_termination_day() -> None:
    team = subscription(utc(2026, 5, 1), amount=12000, advance=True, trial=14, ended=utc(2026, 6, 21, 9))
    ended = due_until(team, utc(2026, 6, 21, 9))[-1]
    assert (ended.kind, ended.fee_cents, ended.credit_cents, ended.credit_reason) == (
        "termination", 0, 3600, "order_cancellation")  # 9 x 400
    assert due_until(replace(team, credits_unused_fee=False), utc(2026, 6, 22))[-1].credit_cents == 0
    in_trial = subscription(utc(2026, 6, 10), amount=12000, advance=True, trial=14, ended=utc(2026, 6, 20))
    assert due_until(in_trial, utc(2026, 6, 20))[-1].credit_cents == 0  # nothing was paid yet


def test_team_to_free_ends_team_at_its_period_end_with_its_usage_only() -> None:
    team = subscription(utc(2026, 5, 1), amount=12000, advance=True, trial=14, ended=utc(2026, 7, 1))
    june = due_until(team, utc(2026, 7, 1))[-1]
    assert (june.kind, june.at, june.fee_cents, june.credit_cents) == ("termination", utc(2026, 7, 1), 0, 0)
    assert june.charges == Period(utc(2026, 6, 1), utc(2026, 7, 1))
    free = subscription(utc(2026, 7, 1), amount=0, advance=False, anchor_at=utc(2026, 5, 1), follows_previous=True)
    assert due_until(free, utc(2026, 7, 1)) == []  # in arrears: its first fee comes on August 1


def test_an_anniversary_change_prorates_on_the_periods_of_the_first_start() -> None:
    # Team on anniversary billing from Dec 31; upgraded on Jan 30: its period is Dec 31 - Jan 30 (31 days)
    change = utc(2027, 1, 30, 12)
    business = subscription(change, amount=50000, advance=True, anchor_at=utc(2026, 12, 31), follows_previous=True,
                            started_by_upgrade=True, billing_time="anniversary")
    (start,) = due_until(business, change)
    assert (start.fee_cents, start.fee_to) == (1613, utc(2027, 1, 31))  # round(1 x 50,000 / 31)
    # changed again on Feb 20: its period is Jan 31 - Feb 27 (28 days), 8 of them unused (Feb 20-27)
    ended = replace(business, ended_at=utc(2027, 2, 20, 9), ended_by_upgrade=True)
    assert due_until(ended, utc(2027, 2, 20, 9))[-1].credit_cents == 14286  # round(8 x 50,000 / 28)
