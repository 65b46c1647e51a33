"""Thresholds crossed by a usage value: the one rule behind usage alerts and progressive billing. Pure.

A set of thresholds is some fixed values and at most one recurring value R. Their *levels* are the
fixed values, then, past the highest fixed value H (0 when there is none), H + R, H + 2R, ... A level
fires once (per billing period for alerts and progressive billing, once ever for lifetime alerts):
an evaluation seeing `current` fires every level L with `fired < L <= current`, where `fired` is the
highest level fired before (0 when none has: usage starts at 0, so a level of 0 never fires). The
record of `fired` is durable (core.db.thresholds), which is what makes a threshold fire exactly once
whatever is redelivered, replayed or evaluated twice.

What is measured: an alert's type names it (`alert_value`), from the same priced usage as current
usage (core.domain.charges.charge_fee); progressive billing measures the period's usage amount.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

from core.domain.aggregation import MetricUsage
from core.domain.charges import ChargeLine, charge_fee

ALERT_TYPES = ("current_usage_amount", "billable_metric_current_usage_amount",
               "billable_metric_current_usage_units", "lifetime_usage_amount")
METRIC_ALERT_TYPES = ("billable_metric_current_usage_amount", "billable_metric_current_usage_units")
LIFETIME = "lifetime"  # the period key of a lifetime alert's one record
MAX_LEVELS_PER_EVALUATION = 100  # recurring levels listed for one evaluation (the highest ones)


@dataclass(frozen=True)
class Threshold:
    value: Decimal
    recurring: bool = False
    code: str | None = None
    ref: str | None = None  # whose threshold it is, when the caller needs to know (a usage threshold's id)


@dataclass(frozen=True)
class Alert:
    """A usage alert of a subscription external_id, as its evaluation needs it."""

    id: str
    alert_type: str
    metric_id: str | None
    thresholds: tuple[Threshold, ...]

    def period_key(self, usage_period_key: str) -> str:
        """Where its fired levels are recorded: per billing period, or once for a lifetime alert."""
        return LIFETIME if self.alert_type == "lifetime_usage_amount" else usage_period_key


@dataclass(frozen=True)
class Crossing:
    threshold: Threshold
    level: Decimal  # the value crossed: the threshold's own, or a multiple past the fixed ones for a recurring one


def crossed(thresholds: Iterable[Threshold], fired: Decimal | None, current: Decimal) -> list[Crossing]:
    """The levels `fired < level <= current`, in ascending order."""
    floor = Decimal(0) if fired is None else max(fired, Decimal(0))
    fixed = sorted((t for t in thresholds if not t.recurring), key=lambda t: t.value)
    found = [Crossing(t, t.value) for t in fixed if floor < t.value <= current]
    recurring = next((t for t in thresholds if t.recurring), None)
    if recurring is not None and recurring.value > 0:
        top = fixed[-1].value if fixed else Decimal(0)
        last = (current - top) // recurring.value  # the highest multiple reached
        first = max((floor - top) // recurring.value + 1, Decimal(1)) if floor >= top else Decimal(1)
        first = max(first, last - MAX_LEVELS_PER_EVALUATION + 1)
        k = first
        while k <= last:
            found.append(Crossing(recurring, top + k * recurring.value))
            k += 1
    return found


def usage_amount(lines: Sequence[ChargeLine], usage: Mapping[str, MetricUsage], currency: str,
                 metric_id: str | None = None) -> int:
    """The period's usage amount in cents, as current usage shows it (one metric's charges, or all)."""
    return sum(charge_fee(line, usage, currency)[1].amount_cents for line in lines
               if metric_id is None or line.metric.id == metric_id)


def metric_units(lines: Sequence[ChargeLine], usage: Mapping[str, MetricUsage], currency: str,
                 metric_id: str) -> Decimal:
    """The units of a metric as its first charge counts them (its rounding applied); 0 without one."""
    for line in lines:
        if line.metric.id == metric_id:
            return charge_fee(line, usage, currency)[1].units
    return Decimal(0)


def alert_value(alert_type: str, metric_id: str | None, lines: Sequence[ChargeLine],
                usage: Mapping[str, MetricUsage], currency: str, invoiced_cents: int = 0) -> Decimal:
    """What an alert of this type watches, for one period's usage (`invoiced_cents`: the usage amount the
    subscription's earlier periods were invoiced, for a lifetime alert)."""
    if alert_type == "billable_metric_current_usage_units":
        return metric_units(lines, usage, currency, metric_id or "")
    if alert_type == "billable_metric_current_usage_amount":
        return Decimal(usage_amount(lines, usage, currency, metric_id))
    amount = Decimal(usage_amount(lines, usage, currency))
    return amount + invoiced_cents if alert_type == "lifetime_usage_amount" else amount
