"""Current usage in Lago's shape: a period's aggregated state priced by the plan's charges. Pure, no I/O."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime, timedelta
from typing import Any

from core.domain.aggregation import MetricUsage
from core.domain.charges import ChargeLine, charge_fee, units_text
from rater.serializers import iso


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
            "billable_metric": {"lago_id": charge.metric.id, "name": charge.metric_name,
                                "code": charge.metric.code, "aggregation_type": charge.metric.aggregation_type},
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
