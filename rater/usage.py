"""Current usage in Lago's shape: a period's aggregated state priced by the plan's charges. Pure, no I/O."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from core.domain.aggregation import MetricUsage
from core.domain.charges import ChargeLine, charge_fee, units_text
from core.domain.taxes import InvoiceTaxes, Tax
from rater.serializers import iso


def customer_usage(charges: Sequence[ChargeLine], usage: Mapping[str, MetricUsage], currency: str,
                   period_start: datetime, period_end: datetime, issuing_date: date,
                   charge_taxes: Sequence[Sequence[Tax]] | None = None) -> dict[str, Any]:
    """The period's usage priced; taxed with each charge's taxes (`charge_taxes`, one per charge) unless None
    (`apply_taxes=false`), as its invoice would tax the usage fees alone."""
    lines = []
    total = 0
    bases: list[tuple[Decimal, Sequence[Tax]]] = []
    for n, charge in enumerate(charges):
        events_count, fee = charge_fee(charge, usage, currency)
        total += fee.amount_cents
        if charge_taxes is not None:
            bases.append((Decimal(fee.amount_cents), charge_taxes[n]))
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
    taxes = InvoiceTaxes.of(bases).amount_cents
    return {
        "from_datetime": iso(period_start),
        "to_datetime": iso(period_end - timedelta(milliseconds=1)),
        "issuing_date": issuing_date.isoformat(),
        "lago_invoice_id": None,
        "currency": currency,
        "amount_cents": total,
        "taxes_amount_cents": taxes,
        "total_amount_cents": total + taxes,
        "charges_usage": lines,
    }
