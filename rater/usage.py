"""Current usage: a period's aggregated state priced by the plan's charges. Pure assembly, no I/O."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from aggregator.redis_state import MetricUsage
from rater.pricing import price
from rater.serializers import iso


@dataclass(frozen=True)
class ChargeLine:
    charge_id: str
    charge_model: str
    properties: Mapping[str, Any]
    invoice_display_name: str | None
    metric_id: str
    metric_name: str
    metric_code: str
    aggregation_type: str


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
    return Decimal(0)


def _units_text(units: Decimal) -> str:
    text = format(units.normalize(), "f") if units else "0"
    return text if "." in text else f"{text}.0"


def customer_usage(charges: Sequence[ChargeLine], usage: Mapping[str, MetricUsage], currency: str,
                   period_start: datetime, period_end: datetime, issuing_date: date) -> dict[str, Any]:
    lines = []
    total = 0
    empty = MetricUsage(0, 0, Decimal(0), Decimal(0), Decimal(0))
    for charge in charges:
        state = usage.get(charge.metric_id, empty)
        units = units_of(charge.aggregation_type, state)
        events_count = state.unique_count if charge.aggregation_type == "unique_count_agg" else state.events_count
        fee = price(charge.charge_model, charge.properties, units, currency, events_count)
        total += fee.amount_cents
        lines.append({
            "units": _units_text(units),
            "total_aggregated_units": _units_text(units),
            "events_count": events_count,
            "amount_cents": fee.amount_cents,
            "amount_currency": currency,
            "pricing_unit_details": None,
            "charge": {"lago_id": charge.charge_id, "charge_model": charge.charge_model,
                       "invoice_display_name": charge.invoice_display_name},
            "billable_metric": {"lago_id": charge.metric_id, "name": charge.metric_name,
                                "code": charge.metric_code, "aggregation_type": charge.aggregation_type},
            "filters": [],
            "grouped_usage": [],
            "presentation_breakdowns": [],
        })
    return {
        "from_datetime": iso(period_start),
        "to_datetime": iso(period_end - timedelta(milliseconds=1)),
        "issuing_date": issuing_date.isoformat(),
        "lago_invoice_id": None,
        "currency": currency,
        "amount_cents": total,
        "taxes_amount_cents": 0,
        "total_amount_cents": total,
        "charges_usage": lines,
    }
