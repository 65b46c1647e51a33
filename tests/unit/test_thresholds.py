"""The thresholds rule (core.domain.thresholds), the progressive credit an invoice deducts, and a period key
read back. Pure, table-driven."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from types import SimpleNamespace

import pytest

from core.domain.aggregation import Metric, MetricUsage
from core.domain.charges import ChargeLine
from core.domain.periods import Period, key_start
from core.domain.thresholds import MAX_LEVELS_PER_EVALUATION, Threshold, alert_value, crossed, usage_amount
from rater.billing.assemble import progressive_credit
from rater.serializers import threshold_completion

D = Decimal
FIXED = (Threshold(D(800), code="warn"), Threshold(D(1000), code="cap"))
WITH_RECURRING = (Threshold(D(1000), code="first"), Threshold(D(500), recurring=True, code="every"))
ONLY_RECURRING = (Threshold(D(10_000), recurring=True),)


@pytest.mark.parametrize(("thresholds", "fired", "current", "levels"), [
    (FIXED, None, D(799), []),
    (FIXED, None, D(800), [800]),  # previous < value <= current: reaching it is crossing it
    (FIXED, None, D(1200), [800, 1000]),  # one evaluation, both: listed together
    (FIXED, D(800), D(999), []),
    (FIXED, D(800), D(1000), [1000]),
    (FIXED, D(1000), D(5000), []),  # fixed thresholds fire once
    (FIXED, D(1000), D(10), []),  # usage going down fires nothing, and nothing again on the way up to 1,000
    (WITH_RECURRING, None, D(999), []),
    (WITH_RECURRING, None, D(1000), [1000]),
    (WITH_RECURRING, D(1000), D(1499), []),
    (WITH_RECURRING, D(1000), D(1500), [1500]),
    (WITH_RECURRING, D(1500), D(3100), [2000, 2500, 3000]),
    (WITH_RECURRING, None, D(2600), [1000, 1500, 2000, 2500]),
    (ONLY_RECURRING, None, D(9_999), []),  # no fixed threshold: multiples of the recurring one from 0
    (ONLY_RECURRING, None, D(20_200), [10_000, 20_000]),
    (ONLY_RECURRING, D(20_000), D(30_100), [30_000]),
    ((Threshold(D("0.5")),), None, D("0.5"), [D("0.5")]),
    ((Threshold(D(0)),), None, D(0), []),  # usage starts at 0: a threshold at 0 never fires
])
def test_the_levels_an_evaluation_crosses(thresholds: tuple[Threshold, ...], fired: Decimal | None,
                                          current: Decimal, levels: list[int]) -> None:
    assert [c.level for c in crossed(thresholds, fired, current)] == [D(level) for level in levels]


def test_a_huge_jump_lists_only_the_highest_recurring_levels() -> None:
    found = crossed((Threshold(D(1), recurring=True),), None, D(1_000_000))
    assert len(found) == MAX_LEVELS_PER_EVALUATION
    assert (found[0].level, found[-1].level) == (D(1_000_000 - MAX_LEVELS_PER_EVALUATION + 1), D(1_000_000))


def test_crossed_levels_name_their_threshold() -> None:
    assert [(c.threshold.code, c.threshold.recurring) for c in crossed(WITH_RECURRING, None, D(1600))] == [
        ("first", False), ("every", True)]


MTU = Metric("m-mtu", "mtu", "unique_count_agg", "user_id")
CALLS = Metric("m-calls", "calls", "count_agg", None)
TEAM = ChargeLine("c-mtu", "graduated", {"graduated_ranges": [
    {"from_value": 0, "to_value": 10000, "per_unit_amount": "0", "flat_amount": "0"},
    {"from_value": 10001, "to_value": 25000, "per_unit_amount": "0.012", "flat_amount": "0"},
    {"from_value": 25001, "to_value": None, "per_unit_amount": "0.011", "flat_amount": "0"}]}, None, MTU, "MTU")
PER_CALL = ChargeLine("c-calls", "standard", {"amount": "0.05"}, None, CALLS, "Calls")
USAGE = {"m-mtu": MetricUsage(27_000, 30_000, D(0), D(0), D(0)), "m-calls": MetricUsage(0, 40, D(0), D(0), D(0))}


@pytest.mark.parametrize(("alert_type", "metric_id", "invoiced", "value"), [
    ("current_usage_amount", None, 0, D(20_200 + 200)),  # 15,000 × 1.2 + 2,000 × 1.1, and 40 calls × 5
    ("billable_metric_current_usage_amount", "m-mtu", 0, D(20_200)),
    ("billable_metric_current_usage_units", "m-mtu", 0, D(27_000)),
    ("billable_metric_current_usage_units", "m-calls", 0, D(40)),
    ("billable_metric_current_usage_units", "m-other", 0, D(0)),  # a metric the plan does not charge
    ("lifetime_usage_amount", None, 5_000, D(25_400)),
])
def test_what_each_alert_type_measures(alert_type: str, metric_id: str | None, invoiced: int,
                                       value: Decimal) -> None:
    assert alert_value(alert_type, metric_id, (TEAM, PER_CALL), USAGE, "USD", invoiced) == value


def test_the_usage_amount_is_current_usage_priced() -> None:
    assert usage_amount((TEAM, PER_CALL), USAGE, "USD") == 20_400
    assert usage_amount((TEAM, PER_CALL), {}, "USD") == 0


@pytest.mark.parametrize(("fees", "billed", "credit"), [
    (46_500, 20_200, 20_200),  # the contract's July 1 invoice: 12,000 + 34,500 − 20,200
    (46_500, 0, 0),
    (10_000, 20_200, 10_000),  # never more than the invoice's own fees
    (0, 500, 0),
])
def test_the_progressive_credit_an_invoice_deducts(fees: int, billed: int, credit: int) -> None:
    assert progressive_credit(fees, billed) == credit


def test_a_period_key_reads_back_as_its_start() -> None:
    start = datetime(2026, 6, 20, 15, 0, 7, tzinfo=UTC)
    assert key_start(Period(start, datetime(2026, 7, 1, tzinfo=UTC)).key) == start


def test_threshold_completion_of_fixed_and_recurring_thresholds() -> None:
    reached_at = datetime(2026, 6, 10, tzinfo=UTC)
    thresholds = [SimpleNamespace(amount_cents=20_000, recurring=False),
                  SimpleNamespace(amount_cents=10_000, recurring=True)]
    shown = threshold_completion(thresholds, 25_000, [(20_000, reached_at)])
    # the recurring one at its first level, past the fixed one: 30,000
    assert [(t["amount_cents"], t["completion_ratio"], t["reached_at"]) for t in shown] == [
        (20_000, 1.0, "2026-06-10T00:00:00.000Z"), (30_000, pytest.approx(25_000 / 30_000), None)]
