"""A charge priced on a period's aggregated usage: the metric's units, its rounding, the charge model's
price, rounded once. Shared by current usage, invoices and anything else that prices usage. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from core.domain.aggregation import Metric, MetricUsage
from core.domain.pricing import Fee, price, round_units


@dataclass(frozen=True)
class ChargeLine:
    """A plan's charge with its billable metric."""

    charge_id: str
    charge_model: str
    properties: Mapping[str, Any]
    invoice_display_name: str | None
    metric: Metric
    metric_name: str
    rounding_function: str | None = None
    rounding_precision: int | None = None


def units_of(aggregation_type: str, usage: MetricUsage) -> Decimal:
    if aggregation_type == "unique_count_agg":
        return Decimal(usage.unique_count)
    if aggregation_type == "count_agg":
        return Decimal(usage.events_count)
    if aggregation_type == "sum_agg":
        return usage.sum
    if aggregation_type == "max_agg":
        return usage.max
    if aggregation_type == "latest_agg":
        return max(usage.latest, Decimal(0))
    if aggregation_type == "weighted_sum_agg":
        return usage.weighted_sum
    return Decimal(0)


EMPTY = MetricUsage(0, 0, Decimal(0), Decimal(0), Decimal(0))


def charge_fee(charge: ChargeLine, usage: Mapping[str, MetricUsage], currency: str) -> tuple[int, Fee]:
    """(events_count, fee) of one charge for a period's aggregated usage (keyed by metric id)."""
    state = usage.get(charge.metric.id, EMPTY)
    kind = charge.metric.aggregation_type
    units = round_units(units_of(kind, state), charge.rounding_function, charge.rounding_precision)
    events_count = state.unique_count if kind == "unique_count_agg" else state.events_count
    return events_count, price(charge.charge_model, charge.properties, units, currency, events_count)


def units_text(units: Decimal) -> str:
    """Units as Lago writes them: a decimal string with at least one decimal ("3.0", "0.5")."""
    text = format(units.normalize(), "f") if units else "0"
    return text if "." in text else f"{text}.0"
