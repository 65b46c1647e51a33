"""Current usage: a period's aggregated state priced by the plan's charges. Pure assembly, no I/O."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from aggregator.aggregations import MetricUsage
from rater.pricing import Fee, price, round_units
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
    """(events_count, fee) of one charge for a period's aggregated usage: the metric's unit rounding,
    then the charge model's price, rounded once. Shared by current usage and invoices."""
    state = usage.get(charge.metric_id, EMPTY)
    units = round_units(units_of(charge.aggregation_type, state), charge.rounding_function,
                        charge.rounding_precision)
    events_count = state.unique_count if charge.aggregation_type == "unique_count_agg" else state.events_count
    return events_count, price(charge.charge_model, charge.properties, units, currency, events_count)


def units_text(units: Decimal) -> str:
    text = format(units.normalize(), "f") if units else "0"
    return text if "." in text else f"{text}.0"


def customer_usage(charges: Sequence[ChargeLine], usage: Mapping[str, MetricUsage], currency: str,
                   period_start: datetime, period_end: datetime, issuing_date: date) -> dict[str, Any]:
    lines = []
    total = 0
    for charge in charges:
        events_count, fee = charge_fee(charge, usage, currency)
        total += fee.amount_cents
        lines.append({
            "units": units_text(fee.units),
            "total_aggregated_units": units_text(fee.units),
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
