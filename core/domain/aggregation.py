"""The aggregation functions of the contract, in exact integer arithmetic. Pure: no I/O.

Redis keeps, per (subscription, charge, period), only integers that these functions define:
values are integers of millionths (`VALUE_SCALE`), times integers of microseconds. The Lua script
in core/usage_state/redis_state.py applies the same arithmetic incrementally; `fold` is the reference
used by tests (and by anyone recomputing a period from the archive) to check it.

weighted_sum_agg (time-weighted value over the period). Each event's value is a change of a
gauge that holds from the event's timestamp until the end of the period (Lago semantics, not
recurring: the gauge is 0 at the start of every period). The time integral of the gauge is

    sum_i v_i * (end - t_i)

which is a plain sum, independent of the order in which events arrive: Redis adds each event's
product once, and a late event is exact too. The units are that integral divided by the period's
length. The products exceed 64 bits for large values over long periods, so the sum is kept as two
integers `wh * 10**12 + wl` with 0 <= wl < 10**12 (the script carries from wl into wh).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal

AGGREGATION_TYPES = ("count_agg", "sum_agg", "max_agg", "unique_count_agg", "latest_agg", "weighted_sum_agg")
# Numeric properties are kept as integers of millionths so that Redis adds them exactly.
VALUE_SCALE = 10**6
WEIGHT_BASE = 10**12
UNITS_QUANTUM = Decimal("0.000001")  # weighted units are rounded half-even to 6 decimals
# Largest |value| in millionths accepted for numeric aggregations. A period's sum can still pass
# Redis's signed 64-bit integers (~9.2e12 units), so Redis keeps it in two words (sum_words).
MAX_SCALED = 10**15


@dataclass(frozen=True)
class Metric:
    """A billable metric as aggregation sees it: what to count, and which property holds the value."""

    id: str
    code: str
    aggregation_type: str
    field_name: str | None


@dataclass(frozen=True)
class MetricUsage:
    """Aggregated state of one metric in one period, as read back for pricing."""

    unique_count: int
    events_count: int
    sum: Decimal
    max: Decimal
    latest: Decimal
    weighted_sum: Decimal = Decimal(0)


def weighted_contribution(value: int, timestamp_us: int, period_end_us: int) -> tuple[int, int]:
    """One event's share of the weighted integral as (high, low) with 0 <= low < WEIGHT_BASE."""
    return divmod(value * (period_end_us - timestamp_us), WEIGHT_BASE)


def sum_words(value: int) -> tuple[int, int]:
    """A value added to a sum as (high, low) with 0 <= low < WEIGHT_BASE: Redis adds the words
    apart (carrying low into high), so a sum never overflows its 64-bit integers."""
    return divmod(value, WEIGHT_BASE)


def weighted_units(high: int, low: int, period_us: int) -> Decimal:
    """The time-weighted value over a period of `period_us` microseconds, in units."""
    if period_us <= 0:
        return Decimal(0)
    integral = high * WEIGHT_BASE + low
    return (Decimal(integral) / (Decimal(period_us) * VALUE_SCALE)).quantize(UNITS_QUANTUM, ROUND_HALF_EVEN)


def descale(value: int) -> Decimal:
    return Decimal(value) / VALUE_SCALE


@dataclass(frozen=True)
class Sample:
    """One applied event as the aggregations see it: its time and its property (already validated)."""

    timestamp_us: int
    value: int | str  # integer millionths for numeric aggregations, the raw text for unique_count


def fold(aggregation_type: str, samples: Iterable[Sample], period_start_us: int,
         period_end_us: int) -> MetricUsage:
    """Aggregate one period from scratch: the reference the incremental Redis state must equal."""
    items = list(samples)
    if aggregation_type == "unique_count_agg":
        distinct = len({str(s.value) for s in items})
        return MetricUsage(distinct, distinct, Decimal(0), Decimal(0), Decimal(0))
    numbers = [(s.timestamp_us, int(s.value)) for s in items] if aggregation_type != "count_agg" else []
    # only what the aggregation keeps in Redis (planning emits no other operation for it)
    total = sum(v for _, v in numbers) if aggregation_type in ("sum_agg", "weighted_sum_agg") else 0
    maximum = max((v for _, v in numbers), default=0) if aggregation_type == "max_agg" else 0
    latest = 0
    if numbers and aggregation_type == "latest_agg":
        # the newest event wins; among equal timestamps the one applied last (as the script does)
        latest = max(enumerate(numbers), key=lambda item: (item[1][0], item[0]))[1][1]
    weighted = Decimal(0)
    if aggregation_type == "weighted_sum_agg":
        high, low = 0, 0
        for timestamp_us, value in numbers:
            h, lo = weighted_contribution(value, timestamp_us, period_end_us)
            high, low = high + h, low + lo
        weighted = weighted_units(high + low // WEIGHT_BASE, low % WEIGHT_BASE, period_end_us - period_start_us)
    return MetricUsage(0, len(items), descale(total), descale(maximum), descale(latest), weighted)
