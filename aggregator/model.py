"""What the aggregator knows about a subscription, and what it decides for one event. Pure values."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

AGGREGATION_TYPES = ("count_agg", "sum_agg", "max_agg", "unique_count_agg", "latest_agg", "weighted_sum_agg")
REJECT_REASONS = ("unknown_subscription", "unknown_metric", "missing_field", "invalid_value", "period_closed",
                  "malformed")
# Numeric properties are kept as integers of millionths so that Redis adds them exactly.
VALUE_SCALE = 10**6


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

    @property
    def scope(self) -> str:
        """The Redis hash tag: every key of a subscription lives in one cluster slot."""
        return f"{self.organization_id}:{self.external_id}"


@dataclass(frozen=True)
class Op:
    """One state change: `kind` U (add to a unique set), N (count), S (sum), X (max), L (latest)."""

    kind: str
    key: str
    value: str = ""
    timestamp_us: int = 0


@dataclass(frozen=True)
class Planned:
    scope: str
    transaction_id: str
    ops: tuple[Op, ...]


@dataclass(frozen=True)
class Rejected:
    reason: str
    detail: str
