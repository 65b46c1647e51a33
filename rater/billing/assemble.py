"""Invoice assembly: the fees of one billing moment of one subscription, and invoice totals. Pure.

The subscription fee line is always kept (also at 0: a Free plan or a billing day inside a trial);
usage fees with 0 units and 0 amount are left out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from aggregator.aggregations import MetricUsage
from rater.billing.schedule import Due
from rater.usage import ChargeLine, charge_fee


@dataclass(frozen=True)
class PlanItem:
    """How the subscription fee line is labelled."""

    code: str
    name: str
    invoice_display_name: str | None


@dataclass(frozen=True)
class FeeLine:
    fee_type: str  # "subscription" or "charge"
    charge_id: str | None
    billable_metric_id: str | None
    item_code: str
    item_name: str
    invoice_display_name: str | None
    units: Decimal
    events_count: int | None
    amount_cents: int
    precise_amount_cents: Decimal
    from_datetime: datetime | None
    to_datetime: datetime | None


def subscription_fee(due: Due, plan: PlanItem) -> FeeLine:
    return FeeLine("subscription", None, None, plan.code, plan.name, plan.invoice_display_name, Decimal(1), None,
                   due.fee_cents, Decimal(due.fee_cents), due.fee_from, due.fee_to)


def usage_fees(due: Due, charges: Sequence[ChargeLine], usage: Mapping[str, MetricUsage],
               currency: str) -> list[FeeLine]:
    """The charge fees of the moment's usage window, zero lines left out."""
    if due.charges is None:
        return []
    lines = []
    for charge in charges:
        events_count, fee = charge_fee(charge, usage, currency)
        if fee.units == 0 and fee.amount_cents == 0 and fee.precise_amount_cents == 0:
            continue
        lines.append(FeeLine("charge", charge.charge_id, charge.metric_id, charge.metric_code, charge.metric_name,
                             charge.invoice_display_name, fee.units, events_count, fee.amount_cents,
                             fee.precise_amount_cents, due.charges.start, due.charges.end))
    return lines


def moment_fees(due: Due, plan: PlanItem, charges: Sequence[ChargeLine], usage: Mapping[str, MetricUsage],
                currency: str) -> list[FeeLine]:
    return [subscription_fee(due, plan), *usage_fees(due, charges, usage, currency)]


def total_cents(lines: Sequence[FeeLine]) -> int:
    return sum(line.amount_cents for line in lines)


def payment_status_at_finalization(total: int) -> str:
    """A $0 invoice has nothing to collect: it is paid the moment it is final."""
    return "succeeded" if total == 0 else "pending"


def number_prefix(organization_name: str, customer_id: str) -> str:
    letters = "".join(ch for ch in organization_name.upper() if ch.isalnum())[:3] or "INV"
    return f"{letters}-{customer_id.replace('-', '')[:8].upper()}"


def invoice_number(organization_name: str, customer_id: str, sequential_id: int) -> str:
    """Lago-style per-customer numbering: organization prefix, customer, sequence."""
    return f"{number_prefix(organization_name, customer_id)}-{sequential_id:03d}"


def draft_number(organization_name: str, customer_id: str) -> str:
    """A draft has no sequence yet (finalizing assigns it), as Lago shows drafts."""
    return f"{number_prefix(organization_name, customer_id)}-DRAFT"
