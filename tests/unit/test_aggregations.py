"""The aggregation functions, the weighted-sum arithmetic and the Lua argument layout."""

from __future__ import annotations

from decimal import Decimal

import pytest

from core.domain.aggregation import (
    WEIGHT_BASE,
    MetricUsage,
    Sample,
    fold,
    weighted_contribution,
    weighted_units,
)
from core.usage_state.ops import Op, Planned
from core.usage_state.redis_state import script_arguments

DAY = 86400 * 1_000_000
START, END = 0, 30 * DAY


def samples(*pairs: tuple[int, int | str]) -> list[Sample]:
    return [Sample(t, v) for t, v in pairs]


def test_count_sum_max_latest() -> None:
    events = samples((5 * DAY, 2_000_000), (1 * DAY, -500_000), (5 * DAY, 1_000_000), (3 * DAY, 9_000_000))
    assert fold("count_agg", events, START, END).events_count == 4
    usage = fold("sum_agg", events, START, END)
    assert usage.sum == Decimal("11.5") and usage.events_count == 4
    assert fold("max_agg", events, START, END).max == Decimal(9)
    # newest timestamp wins; of two at the same time, the one applied last
    assert fold("latest_agg", events, START, END).latest == Decimal(1)


def test_unique_count_counts_distinct_text() -> None:
    usage = fold("unique_count_agg", samples((0, "a"), (1, "b"), (2, "a"), (3, "1")), START, END)
    assert (usage.unique_count, usage.events_count) == (3, 3)


def test_empty_period() -> None:
    assert fold("max_agg", [], START, END) == MetricUsage(0, 0, Decimal(0), Decimal(0), Decimal(0))


def test_weighted_sum_is_the_time_average_of_the_gauge() -> None:
    # +10 GB from day 0, +20 GB on day 15, -30 GB on day 24 (over a 30-day period):
    # 10 x 15 + 30 x 9 + 0 x 6 = 420 GB-days / 30 days = 14 GB
    events = samples((0, 10_000_000), (15 * DAY, 20_000_000), (24 * DAY, -30_000_000))
    assert fold("weighted_sum_agg", events, START, END).weighted_sum == Decimal("14.000000")
    # the order in which events arrive changes nothing
    assert fold("weighted_sum_agg", list(reversed(events)), START, END).weighted_sum == Decimal("14.000000")


def test_weighted_sum_rounds_half_even_to_six_decimals() -> None:
    # 1 unit for one microsecond of a 3-microsecond period: 0.333333...
    assert weighted_units(0, 1_000_000, 3) == Decimal("0.333333")
    assert weighted_units(0, 2_000_000, 3) == Decimal("0.666667")
    assert weighted_units(5, 5, 0) == Decimal(0)


def test_weighted_contribution_keeps_the_low_part_in_range_for_negative_values() -> None:
    high, low = weighted_contribution(-1, 0, 5)
    assert (high, low) == (-1, WEIGHT_BASE - 5)
    assert high * WEIGHT_BASE + low == -5


def test_weighted_contribution_is_exact_beyond_64_bits() -> None:
    value, length = 999_999_999_999_999, 366 * DAY
    high, low = weighted_contribution(value, 0, length)
    assert high * WEIGHT_BASE + low == value * length
    assert value * length > 2**63


def test_script_arguments_index_each_key_once_with_its_expiry_and_each_period_s_marks_apart() -> None:
    planned = [
        Planned("s", "tx-1", (Op("N", "k1"), Op("S", "k1", "5")), 100, "p1"),
        Planned("s", "tx-2", (Op("U", "k2", "u"),), 200, "p2"),
        Planned("s", "tx-3", (Op("L", "k1", "7", 42),), 150, "p1"),
    ]
    keys, argv = script_arguments(planned)
    assert keys == ["ml:{s}:tx:p1", "k1", "ml:{s}:tx:p2", "k2"]
    assert argv == ["4", "150", "150", "200", "200",  # a period's marks expire with its latest state
                    "tx-1", "1", "2", "N", "2", "", "0", "S", "2", "5", "0",
                    "tx-2", "3", "1", "U", "4", "u", "0",
                    "tx-3", "1", "1", "L", "2", "7", "42"]


def test_stats_increments_of_a_batch() -> None:
    from aggregator.processor import BatchResult
    from aggregator.stats import stats_increments

    result = BatchResult(applied=7, duplicates=0, archived=7, rejected={"unknown_metric": 2, "period_closed": 1})
    assert stats_increments(result) == {"applied": 7, "rejected:unknown_metric": 2, "rejected:period_closed": 1}


def test_observe_latencies_leaves_the_buckets_observe_leaves() -> None:
    from prometheus_client import CollectorRegistry, Histogram

    from aggregator.stats import observe_latencies

    registry = CollectorRegistry()
    bounds = (0.001, 0.01, 0.1, 1.0)
    one_by_one = Histogram("one_by_one", "h", buckets=bounds, registry=registry)
    in_bulk = Histogram("in_bulk", "h", buckets=bounds, registry=registry)
    now_us = 1_795_000_000_123_456.0
    # on and between the bounds, in no order, one received after "now" (a clock ahead): 0 latency
    ago_us = [1_000, 0, 100_000, 10_000, 50_000, 1_000_000, 1_001, 750_000, 3_500_000, 3_500_000, 120_000_000, -5]
    moments = [int(now_us) - ago for ago in ago_us]
    for moment in moments:
        one_by_one.observe(max(now_us - moment, 0.0) / 1_000_000)
    observe_latencies(in_bulk, now_us, moments)
    observe_latencies(in_bulk, now_us, [])

    def samples(name: str) -> list[tuple[str, dict[str, str], float]]:
        [metric] = [m for m in registry.collect() if m.name == name]
        return [(s.name.removeprefix(name), s.labels, s.value) for s in metric.samples if "created" not in s.name]

    bulk, single = samples("in_bulk"), samples("one_by_one")
    assert [s for s in bulk if s[0] != "_sum"] == [s for s in single if s[0] != "_sum"]
    assert [value for _, labels, value in bulk if labels] == [3, 5, 7, 9, 12]
    [bulk_sum], [single_sum] = ([v for name, _, v in found if name == "_sum"] for found in (bulk, single))
    assert bulk_sum == pytest.approx(single_sum, rel=1e-12)
