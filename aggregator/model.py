"""What the aggregator knows about a subscription, and what it decides for one event. Pure values."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from core.domain.aggregation import Metric
from core.domain.charges import ChargeLine
from core.domain.periods import BillingCycle
from core.domain.thresholds import Alert, Threshold

REJECT_REASONS = ("unknown_subscription", "unknown_metric", "missing_field", "invalid_value", "period_closed",
                  "malformed")


@dataclass(frozen=True)
class SubscriptionView:
    """A subscription with everything needed to place and aggregate its events."""

    id: str
    organization_id: str
    external_id: str
    status: str
    cycle: BillingCycle
    metrics_by_code: dict[str, Metric] = field(default_factory=dict)
    terminated_at_us: int | None = None  # events at or after this instant belong to no open period
    closed_period_keys: frozenset[str] = frozenset()  # periods whose invoice is finalized
    started_at_us: int = 0
    # the subscription its external_id named before (a plan change, or one terminated and used again)
    predecessor: SubscriptionView | None = None
    # what its usage is watched for by the alerts worker (aggregator/alerts.py): its external_id's alerts (read
    # by the alerts worker's catalog; the aggregators' only reads whether there are any: `alerted`), its
    # progressive billing thresholds (none when disabled), and the plan's charges and currency to price it
    alerted: bool = False
    alerts: tuple[Alert, ...] = ()
    usage_thresholds: tuple[Threshold, ...] = ()
    lines: tuple[ChargeLine, ...] = ()
    currency: str = "USD"

    @cached_property
    def watched(self) -> bool:
        return bool(self.alerted or self.alerts or self.usage_thresholds)

    @cached_property  # read for each evaluation of the subscription
    def metric_ids(self) -> list[str]:
        """The metrics its plan charges, whose usage its alerts and thresholds price."""
        return sorted({line.metric.id for line in self.lines})

    def at(self, timestamp_us: int) -> SubscriptionView:
        """The subscription of this external_id that an event at `timestamp_us` counts for: the latest
        one started by then (or the first one, which rejects it as before its start)."""
        view = self
        while view.predecessor is not None and timestamp_us < view.started_at_us:
            view = view.predecessor
        return view

    @cached_property  # read for every event of the subscription
    def scope(self) -> str:
        """The Redis hash tag: every key of a subscription lives in one cluster slot."""
        return f"{self.organization_id}:{self.external_id}"


@dataclass(frozen=True)
class Rejected:
    reason: str
    detail: str
