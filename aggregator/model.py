"""What the aggregator knows about a subscription, and what it decides for one event. Pure values."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from functools import cached_property
from typing import NamedTuple

AGGREGATION_TYPES = ("count_agg", "sum_agg", "max_agg", "unique_count_agg", "latest_agg", "weighted_sum_agg")
REJECT_REASONS = ("unknown_subscription", "unknown_metric", "missing_field", "invalid_value", "period_closed",
                  "malformed")
# Numeric properties are kept as integers of millionths so that Redis adds them exactly.
VALUE_SCALE = 10**6
# State of a period is kept this long after the period ends: long enough for the grace period and
# the invoice to be finalized (from the archive, not from Redis), short enough not to keep it forever.
STATE_RETENTION_S = 62 * 86400


@dataclass(frozen=True)
class Metric:
    id: str
    code: str
    aggregation_type: str
    field_name: str | None


@dataclass(frozen=True)
class SubscriptionView:
    """A subscription with everything needed to place and aggregate its events."""

    id: str
    organization_id: str
    external_id: str
    status: str
    interval: str
    billing_time: str
    started_on: date  # local date (customer's timezone) of the start
    timezone: str
    metrics_by_code: dict[str, Metric] = field(default_factory=dict)
    terminated_at_us: int | None = None  # events at or after this instant belong to no open period
    closed_period_keys: frozenset[str] = frozenset()  # periods whose invoice is finalized

    @cached_property  # read for every event of the subscription
    def scope(self) -> str:
        """The Redis hash tag: every key of a subscription lives in one cluster slot."""
        return f"{self.organization_id}:{self.external_id}"


class Op(NamedTuple):  # a tuple, not a dataclass: one is built per event on the hot path
    """One state change of a state key.

    `kind`: U (add `value` to a unique set), N (count), S (add the integer `value` * 10**12 +
    `timestamp_us` to the sum, see aggregations.sum_words), X (max),
    L (latest: `value` at `timestamp_us`), W (weighted: add the integer `value` * 10**12 +
    `timestamp_us` to the time-weighted sum, see aggregator/aggregations.py), P (record the
    period length `value` in microseconds, needed to read a weighted sum back).
    """

    kind: str
    key: str
    value: str = ""
    timestamp_us: int = 0


class Planned(NamedTuple):
    scope: str
    transaction_id: str
    ops: tuple[Op, ...]
    expire_at_s: int = 0  # when the state keys of the event's period may go (period end + retention)
    period_key: str = ""  # the billing period the event counts in (the archive refuses it once closed)


@dataclass(frozen=True)
class Rejected:
    reason: str
    detail: str
