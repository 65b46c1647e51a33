"""Planning one event: its billing period, its state changes, or its rejection reason."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from aggregator.model import Rejected, SubscriptionView
from aggregator.planning import period_of, plan, scaled
from core.domain.aggregation import Metric
from core.domain.lifecycle import effective_status
from core.domain.periods import BillingCycle
from core.usage_state.keys import totals_key, unique_key
from core.usage_state.ops import STATE_RETENTION_S, Op, Planned
from schemas.events import Event

ORG = "00000000-0000-0000-0000-000000000001"
METRICS = {
    "calls": Metric("m-count", "calls", "count_agg", None),
    "mtu": Metric("m-unique", "mtu", "unique_count_agg", "user_id"),
    "bytes": Metric("m-sum", "bytes", "sum_agg", "bytes"),
    "peak": Metric("m-max", "peak", "max_agg", "value"),
    "seats": Metric("m-latest", "seats", "latest_agg", "seats"),
    "storage": Metric("m-weighted", "storage", "weighted_sum_agg", "gb"),
}


def micros(*args: int, tz: object = UTC) -> int:
    moment = datetime(*args, tzinfo=tz)  # type: ignore[arg-type]
    return int(moment.timestamp()) * 1_000_000


def view(**overrides: object) -> SubscriptionView:
    cycle: dict[str, object] = dict(interval="monthly", billing_time="calendar", started_on=date(2026, 1, 15),
                                    timezone="UTC")
    values: dict[str, object] = dict(
        id="sub-uuid", organization_id=ORG, external_id="sub-1", status="active", metrics_by_code=METRICS,
    )
    for name, value in overrides.items():
        (cycle if name in cycle else values)[name] = value
    return SubscriptionView(**values, cycle=BillingCycle(**cycle))  # type: ignore[arg-type]


def event(code: str = "calls", timestamp_us: int | None = None, tx: str = "tx-1", **properties: object) -> Event:
    return Event(lago_id="l", organization_id=ORG, transaction_id=tx, code=code, external_subscription_id="sub-1",
                 timestamp_us=timestamp_us if timestamp_us is not None else micros(2026, 3, 10, 12, 0),
                 received_at_us=0, properties=properties)


SCOPE = f"{ORG}:sub-1"
MARCH = "20260301T000000Z"
MARCH_EXPIRY = micros(2026, 4, 1) // 1_000_000 + STATE_RETENTION_S


def test_count_event_lands_in_its_calendar_month() -> None:
    assert plan(event(), view()) == Planned(SCOPE, "tx-1", (Op("N", totals_key(SCOPE, "m-count", MARCH)),),
                                            MARCH_EXPIRY, MARCH)


def test_first_period_starts_on_the_start_day() -> None:
    planned = plan(event(timestamp_us=micros(2026, 1, 20)), view())
    assert isinstance(planned, Planned)
    assert planned.ops[0].key == totals_key(SCOPE, "m-count", "20260115T000000Z")


def test_period_follows_the_customer_timezone() -> None:
    # 2026-03-31 23:30 in Tokyo is 14:30 UTC: still March there; 2026-04-01 00:30 Tokyo is 15:30 UTC March 31
    tokyo = view(timezone="Asia/Tokyo")
    march = plan(event(timestamp_us=micros(2026, 3, 31, 14, 30)), tokyo)
    april = plan(event(timestamp_us=micros(2026, 3, 31, 15, 30)), tokyo)
    assert isinstance(march, Planned) and isinstance(april, Planned)
    assert march.ops[0].key == totals_key(SCOPE, "m-count", "20260228T150000Z")
    assert april.ops[0].key == totals_key(SCOPE, "m-count", "20260331T150000Z")


def test_anniversary_period_and_memo_do_not_leak_between_periods() -> None:
    anniversary = view(billing_time="anniversary", id="sub-anniversary")
    keys = []
    for moment in (micros(2026, 3, 14, 23), micros(2026, 3, 15), micros(2026, 4, 14, 23, 59), micros(2026, 3, 1)):
        outcome = plan(event(timestamp_us=moment), anniversary)
        assert isinstance(outcome, Planned)
        keys.append(outcome.ops[0].key.rsplit(":", 2)[1])
    assert keys == ["20260215T000000Z", "20260315T000000Z", "20260315T000000Z", "20260215T000000Z"]


def test_a_refreshed_view_of_the_same_subscription_does_not_reuse_the_old_view_s_period() -> None:
    # the catalog reloads a subscription whose customer moved to Tokyo: same id, another view
    utc, tokyo = view(id="sub-moved"), view(id="sub-moved", timezone="Asia/Tokyo")
    moment = micros(2026, 3, 31, 15, 30)  # March 31 in UTC, April 1 in Tokyo
    assert period_of(moment, utc).key == MARCH  # type: ignore[union-attr]
    assert period_of(moment, tokyo).key == "20260331T150000Z"  # type: ignore[union-attr]
    assert period_of(moment, utc).key == MARCH  # type: ignore[union-attr]


def test_events_of_one_period_share_its_state_key_strings_and_a_refreshed_view_makes_its_own() -> None:
    subscription = view(id="sub-keys")
    first, second = (plan(event("mtu", tx=tx, user_id="u"), subscription) for tx in ("a", "b"))
    assert isinstance(first, Planned) and isinstance(second, Planned)
    assert first.ops[0].key == unique_key(SCOPE, "m-unique", MARCH)
    assert second.ops[0].key is first.ops[0].key  # made once for the period, not per event
    moved = plan(event("mtu", tx="c", user_id="u"), view(id="sub-keys", external_id="sub-2"))
    assert isinstance(moved, Planned)
    assert moved.ops[0].key == unique_key(f"{ORG}:sub-2", "m-unique", MARCH)


def test_period_of_is_none_before_the_start() -> None:
    assert period_of(micros(2026, 1, 14, 23, 59), view(id="other")) is None


@pytest.mark.parametrize(("code", "properties", "ops"), [
    ("mtu", {"user_id": "u-7"}, (Op("U", unique_key(SCOPE, "m-unique", MARCH), "u-7"),)),
    ("mtu", {"user_id": 42}, (Op("U", unique_key(SCOPE, "m-unique", MARCH), "42"),)),
    ("bytes", {"bytes": "1.5"}, (Op("N", totals_key(SCOPE, "m-sum", MARCH)),
                                 Op("S", totals_key(SCOPE, "m-sum", MARCH), "0", 1_500_000))),
    ("bytes", {"bytes": "-0.000001"}, (Op("N", totals_key(SCOPE, "m-sum", MARCH)),  # two words: -10**12 + (10**12 - 1)
                                       Op("S", totals_key(SCOPE, "m-sum", MARCH), "-1", 999_999_999_999))),
    ("peak", {"value": -3}, (Op("N", totals_key(SCOPE, "m-max", MARCH)),
                             Op("X", totals_key(SCOPE, "m-max", MARCH), "-3000000"))),
])
def test_numeric_and_unique_operations(code: str, properties: dict[str, object], ops: tuple[Op, ...]) -> None:
    outcome = plan(event(code, **properties), view())
    assert isinstance(outcome, Planned)
    assert outcome.ops == ops


def test_latest_carries_the_event_time() -> None:
    moment = micros(2026, 3, 10, 12, 0)
    outcome = plan(event("seats", timestamp_us=moment, seats=7), view())
    assert isinstance(outcome, Planned)
    assert outcome.ops[1] == Op("L", totals_key(SCOPE, "m-latest", MARCH), "7000000", moment)


def test_weighted_sum_adds_value_times_remaining_time_split_in_two_integers() -> None:
    moment = micros(2026, 3, 31)  # one day before the end of March
    outcome = plan(event("storage", timestamp_us=moment, gb=2), view())
    assert isinstance(outcome, Planned)
    key = totals_key(SCOPE, "m-weighted", MARCH)
    product = 2_000_000 * 86400 * 1_000_000
    assert outcome.ops == (Op("N", key), Op("S", key, "0", 2_000_000),
                           Op("W", key, str(product // 10**12), product % 10**12),
                           Op("P", key, str(31 * 86400 * 1_000_000)))


@pytest.mark.parametrize(("subscription", "code", "properties", "reason"), [
    (None, "calls", {}, "unknown_subscription"),
    ("pending", "calls", {}, "unknown_subscription"),
    ("canceled", "calls", {}, "unknown_subscription"),
    ("active", "nope", {}, "unknown_metric"),
    ("active", "mtu", {}, "missing_field"),
    ("active", "mtu", {"user_id": None}, "invalid_value"),
    ("active", "mtu", {"user_id": ["a"]}, "invalid_value"),
    ("active", "bytes", {"bytes": "ten"}, "invalid_value"),
    ("active", "bytes", {"bytes": "0.0000001"}, "invalid_value"),
    ("active", "bytes", {"bytes": True}, "invalid_value"),
    ("active", "bytes", {"bytes": 10**9}, "invalid_value"),
    ("active", "storage", {"gb": "NaN"}, "invalid_value"),
])
def test_rejections(subscription: str | None, code: str, properties: dict[str, object], reason: str) -> None:
    outcome = plan(event(code, **properties), view(status=subscription) if subscription else None)
    assert isinstance(outcome, Rejected)
    assert outcome.reason == reason


def test_event_before_the_start_is_period_closed() -> None:
    outcome = plan(event(timestamp_us=micros(2026, 1, 1)), view(id="early"))
    assert isinstance(outcome, Rejected) and outcome.reason == "period_closed"


def test_event_in_an_invoiced_period_is_period_closed() -> None:
    closed = view(id="closed", closed_period_keys=frozenset({MARCH}))
    outcome = plan(event(), closed)
    assert isinstance(outcome, Rejected) and outcome.reason == "period_closed"
    assert isinstance(plan(event(timestamp_us=micros(2026, 4, 2)), closed), Planned)


def test_terminated_subscription_takes_events_before_termination_only() -> None:
    terminated = view(id="terminated", status="terminated", terminated_at_us=micros(2026, 3, 10, 12, 0))
    assert isinstance(plan(event(timestamp_us=micros(2026, 3, 10, 11, 59)), terminated), Planned)
    outcome = plan(event(timestamp_us=micros(2026, 3, 10, 12, 0)), terminated)
    assert isinstance(outcome, Rejected) and outcome.reason == "period_closed"


def test_pending_subscription_counts_as_active_once_its_start_has_come() -> None:
    now = datetime(2026, 3, 1, tzinfo=UTC)
    assert effective_status("pending", datetime(2026, 3, 1, tzinfo=UTC), now) == "active"
    assert effective_status("pending", datetime(2026, 3, 2, tzinfo=UTC), now) == "pending"
    assert effective_status("terminated", datetime(2026, 1, 1, tzinfo=UTC), now) == "terminated"


@pytest.mark.parametrize(("raw", "expected"), [
    (3, 3_000_000), ("2.25", 2_250_000), (0.1, 100_000), ("-0.000001", -1), (" 7 ", 7_000_000),
    ("1e-7", None), ("inf", None), (None, None), (False, None), ({}, None), (999_999_999, 999_999_999_000_000),
])
def test_scaled(raw: object, expected: int | None) -> None:
    assert scaled(raw) == expected
