"""The billing moments of a subscription (rater.billing.schedule): the contract's timelines in cents."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from core.domain.periods import Period
from rater.billing.schedule import Terms, due_until, since_creation_day


def terms(start: datetime, *, created: datetime | None = None, trial: int = 0, advance: bool = True,
          amount: int = 12000, billing_time: str = "calendar", timezone: str = "UTC", interval: str = "monthly",
          ended: datetime | None = None) -> Terms:
    return Terms("sub", "cus", start, created or start, interval, billing_time, timezone, advance, amount, trial, ended)


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


def summary(moments: list) -> list[tuple[str, str, int]]:
    return [(m.kind, m.at.isoformat(), m.fee_cents) for m in moments]


def test_segment_team_trial_mid_month_bills_the_prorated_fee_at_trial_end_then_the_full_fee() -> None:
    team = terms(utc(2026, 6, 10), trial=14)
    moments = due_until(team, utc(2026, 7, 1, 0, 0, 1))
    assert summary(moments) == [
        ("trial_end", "2026-06-24T00:00:00+00:00", 2800),  # 7 days of 30
        ("periodic", "2026-07-01T00:00:00+00:00", 12000),
    ]
    july = moments[1]
    assert (july.charges.start, july.charges.end) == (utc(2026, 6, 10), utc(2026, 7, 1))  # usage since the start
    assert (july.fee_from, july.fee_to) == (utc(2026, 7, 1), utc(2026, 8, 1))  # in advance: July
    assert july.closes is not None and july.closes.key == "20260610T000000Z"
    assert july.billing_key == "period:20260610T000000Z"


def test_trial_ending_in_the_afternoon_counts_that_day_whole() -> None:
    team = terms(utc(2026, 6, 10, 15, 30), trial=14)
    assert summary(due_until(team, utc(2026, 6, 30)))[0] == ("trial_end", "2026-06-24T15:30:00+00:00", 2800)


def test_nothing_is_due_before_its_moment() -> None:
    team = terms(utc(2026, 6, 10), trial=14)
    assert due_until(team, utc(2026, 6, 23, 23, 59)) == []
    assert [m.kind for m in due_until(team, utc(2026, 6, 24))] == ["trial_end"]


def test_pay_in_advance_start_without_trial_is_prorated_on_calendar_billing() -> None:
    plan = terms(utc(2026, 3, 20, 9))
    assert summary(due_until(plan, utc(2026, 3, 20, 9))) == [("start", "2026-03-20T09:00:00+00:00", 4645)]  # 12/31


def test_anniversary_start_charges_the_full_fee_and_bills_on_the_anniversary_day() -> None:
    plan = terms(utc(2026, 1, 31, 8), billing_time="anniversary")
    moments = due_until(plan, utc(2026, 3, 31))
    assert summary(moments) == [
        ("start", "2026-01-31T08:00:00+00:00", 12000),
        ("periodic", "2026-02-28T00:00:00+00:00", 12000),  # clamped to the short month
        ("periodic", "2026-03-31T00:00:00+00:00", 12000),
    ]


def test_backdated_subscription_has_no_start_invoice() -> None:
    plan = terms(utc(2026, 3, 20), created=utc(2026, 5, 2))
    assert [m.kind for m in due_until(plan, utc(2026, 5, 2))] == ["periodic", "periodic"]
    assert since_creation_day(plan, due_until(plan, utc(2026, 6, 1))) == due_until(plan, utc(2026, 6, 1))[2:]


def test_arrears_plan_prorates_the_first_partial_period_and_the_termination() -> None:
    plan = terms(utc(2026, 4, 16), advance=False, amount=3000)
    moments = due_until(plan, utc(2026, 6, 1))
    assert summary(moments) == [("periodic", "2026-05-01T00:00:00+00:00", 1500),  # 15 of 30 days
                                ("periodic", "2026-06-01T00:00:00+00:00", 3000)]
    ended = terms(utc(2026, 4, 16), advance=False, amount=3000, ended=utc(2026, 6, 10, 12))
    last = due_until(ended, utc(2026, 7, 1))[-1]
    assert (last.kind, last.fee_cents) == ("termination", 1000)  # June 1..10: 10 of 30 days
    assert (last.charges.start, last.charges.end) == (utc(2026, 6, 1), utc(2026, 6, 10, 12))
    assert [m.kind for m in due_until(ended, utc(2026, 7, 1))] == ["periodic", "periodic", "termination"]


def test_new_york_billing_day_is_local_midnight() -> None:
    plan = terms(utc(2026, 5, 1, 4), timezone="America/New_York", created=utc(2026, 5, 1, 4))
    moments = due_until(plan, utc(2026, 6, 1, 4))
    assert moments[0].kind == "start" and moments[0].fee_cents == 12000
    assert moments[1].at == datetime(2026, 6, 1, tzinfo=ZoneInfo("America/New_York"))
    assert moments[1].charges.end - moments[1].charges.start == timedelta(days=31)


def test_free_plan_still_has_a_zero_subscription_fee_each_billing_day() -> None:
    free = terms(utc(2026, 2, 1), amount=0, advance=False, created=utc(2026, 1, 1))
    assert summary(due_until(free, utc(2026, 4, 1))) == [("periodic", "2026-03-01T00:00:00+00:00", 0),
                                                         ("periodic", "2026-04-01T00:00:00+00:00", 0)]


def test_catch_up_lists_every_missed_billing_day_once() -> None:
    plan = terms(utc(2026, 1, 5), created=utc(2026, 1, 1))
    keys = [m.billing_key for m in due_until(plan, utc(2026, 5, 15))]
    assert keys == ["start:20260105T000000Z", "period:20260105T000000Z", "period:20260201T000000Z",
                    "period:20260301T000000Z", "period:20260401T000000Z"]
    assert len(set(keys)) == len(keys)


def test_moments_since_an_instant_are_the_same_as_the_tail_of_the_whole_history() -> None:
    for start in (utc(2020, 1, 31, 8), utc(2021, 6, 10)):
        for billing_time in ("calendar", "anniversary"):
            plan = terms(start, billing_time=billing_time, trial=14, created=utc(2026, 3, 14, 15))
            whole = due_until(plan, utc(2026, 7, 2))
            since = utc(2026, 3, 14)
            assert [m for m in due_until(plan, utc(2026, 7, 2), since) if m.kind == "periodic"] == [
                m for m in whole if m.kind == "periodic" and m.at >= since]


def yearly(start: datetime, *, advance: bool, monthly: bool = True, ended: datetime | None = None) -> Terms:
    return Terms("sub", "cus", start, start, "yearly", "calendar", "UTC", advance, 120000, 0, ended, monthly)


def test_a_yearly_plan_billing_charges_monthly_bills_each_month_usage_and_the_fee_once_a_year() -> None:
    moments = due_until(yearly(utc(2026, 1, 1), advance=True), utc(2027, 1, 1))
    assert len(moments) == 13
    assert summary(moments[:3]) == [("start", "2026-01-01T00:00:00+00:00", 120000),
                                    ("periodic", "2026-02-01T00:00:00+00:00", 0),
                                    ("periodic", "2026-03-01T00:00:00+00:00", 0)]
    february = moments[2]
    assert (february.bills_fee, february.billing_key) == (False, "charges:20260201T000000Z")
    assert (february.fee_from, february.fee_to) == (utc(2026, 1, 1), utc(2027, 1, 1))  # shown as its billing period
    assert (february.charges, february.closes) == (Period(utc(2026, 2, 1), utc(2026, 3, 1)),) * 2
    assert february.charges_days == (28, 28)
    year_end = moments[12]
    assert (year_end.at, year_end.fee_cents, year_end.bills_fee) == (utc(2027, 1, 1), 120000, True)
    assert (year_end.fee_from, year_end.fee_to) == (utc(2027, 1, 1), utc(2028, 1, 1))  # in advance: 2027
    assert year_end.charges == Period(utc(2026, 12, 1), utc(2027, 1, 1))  # December's usage
    assert year_end.billing_key == "period:20260101T000000Z"


def test_in_arrears_the_yearly_fee_comes_with_the_last_month_and_a_termination_prorates_it() -> None:
    moments = due_until(yearly(utc(2026, 1, 1), advance=False), utc(2027, 1, 1))
    assert [m.fee_cents for m in moments] == [0] * 11 + [120000]
    assert [m.bills_fee for m in moments] == [False] * 11 + [True]
    ended = due_until(yearly(utc(2026, 1, 1), advance=False, ended=utc(2026, 3, 10, 12)), utc(2026, 4, 1))
    assert summary(ended) == [("periodic", "2026-02-01T00:00:00+00:00", 0),
                              ("periodic", "2026-03-01T00:00:00+00:00", 0),
                              ("termination", "2026-03-10T12:00:00+00:00", 22685)]  # 69 days of 365
    assert ended[2].charges == Period(utc(2026, 3, 1), utc(2026, 3, 10, 12))
    assert ended[2].charges_days == (10, 31)


def test_without_monthly_charges_a_yearly_plan_bills_its_usage_once_a_year() -> None:
    moments = due_until(yearly(utc(2026, 1, 1), advance=False, monthly=False), utc(2027, 1, 1))
    assert summary(moments) == [("periodic", "2027-01-01T00:00:00+00:00", 120000)]
    assert moments[0].charges == Period(utc(2026, 1, 1), utc(2027, 1, 1))
    assert moments[0].charges_days == (365, 365)
