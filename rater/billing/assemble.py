"""Invoice assembly: the fees of one billing moment of one subscription, and invoice totals. Pure.

The subscription fee line is always kept (also at 0: a Free plan or a billing day inside a trial),
except on the monthly usage invoices of a yearly plan that bills its charges monthly; usage fees with
0 units and 0 amount are left out, unless a charge's minimum trues them up: then the fee stays and
its true-up fee (the difference, units 1) follows it.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from core.domain.aggregation import MetricUsage
from core.domain.charges import ChargeLine, amount_details, charge_fee, true_up, units_text
from rater.billing.schedule import Due


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
    true_up: bool = False  # the true-up of the charge fee just before it to the charge's minimum
    amount_details: dict[str, Any] = field(default_factory=dict)  # how the charge priced its units


def fee_rows(invoice_id: str, subscription_id: str, lines: Sequence[FeeLine], currency: str,
             first_position: int) -> list[dict[str, Any]]:
    """The `fees` rows of one subscription's lines on an invoice, numbered from `first_position`;
    a true-up row points at the charge fee before it."""
    rows = [{
        "id": str(uuid.uuid4()), "invoice_id": invoice_id, "subscription_id": subscription_id,
        "fee_type": line.fee_type, "charge_id": line.charge_id, "billable_metric_id": line.billable_metric_id,
        "item_code": line.item_code, "item_name": line.item_name, "invoice_display_name": line.invoice_display_name,
        "units": units_text(line.units), "events_count": line.events_count, "amount_cents": line.amount_cents,
        "precise_amount_cents": str(line.precise_amount_cents), "currency": currency,
        "from_datetime": line.from_datetime, "to_datetime": line.to_datetime, "position": first_position + n,
        "true_up_parent_fee_id": None, "amount_details": line.amount_details,
    } for n, line in enumerate(lines)]
    for n, line in enumerate(lines):
        if line.true_up:
            rows[n]["true_up_parent_fee_id"] = rows[n - 1]["id"]
    return rows


def subscription_fee(due: Due, plan: PlanItem) -> list[FeeLine]:
    """The moment's subscription fee line; none on a usage-only moment."""
    if not due.bills_fee:
        return []
    return [FeeLine("subscription", None, None, plan.code, plan.name, plan.invoice_display_name, Decimal(1), None,
                    due.fee_cents, Decimal(due.fee_cents), due.fee_from, due.fee_to)]


def usage_fees(due: Due, charges: Sequence[ChargeLine], usage: Mapping[str, MetricUsage],
               currency: str) -> list[FeeLine]:
    """The charge fees of the moment's usage window, zero lines left out, each followed by its true-up."""
    if due.charges is None:
        return []
    if due.charges_days is None:
        raise ValueError("a moment with a usage window says how many days it covers")
    lines = []
    for charge in charges:
        events_count, fee = charge_fee(charge, usage, currency)
        short = true_up(charge.min_amount_cents, fee.amount_cents, fee.precise_amount_cents, *due.charges_days)
        if fee.units == 0 and fee.amount_cents == 0 and fee.precise_amount_cents == 0 and short is None:
            continue
        parent = FeeLine("charge", charge.charge_id, charge.metric.id, charge.metric.code, charge.metric_name,
                         charge.invoice_display_name, fee.units, events_count, fee.amount_cents,
                         fee.precise_amount_cents, due.charges.start, due.charges.end,
                         amount_details=amount_details(charge.charge_model, charge.properties, fee.units))
        lines.append(parent)
        if short is not None:
            lines.append(replace(parent, units=Decimal(1), events_count=0, amount_cents=short[0],
                                 precise_amount_cents=short[1], true_up=True, amount_details={}))
    return lines


def moment_fees(due: Due, plan: PlanItem, charges: Sequence[ChargeLine], usage: Mapping[str, MetricUsage],
                currency: str) -> list[FeeLine]:
    return [*subscription_fee(due, plan), *usage_fees(due, charges, usage, currency)]


def total_cents(lines: Sequence[FeeLine]) -> int:
    return sum(line.amount_cents for line in lines)


def progressive_credit(fees_amount_cents: int, billed_cents: int) -> int:
    """What an invoice deducts for its period's earlier progressive billing invoices: what they billed,
    never more than its own fees."""
    return max(0, min(billed_cents, fees_amount_cents))


@dataclass
class Credit:
    """A credit note's balance as invoices take it."""

    credit_note_id: str
    balance_cents: int


def take_credits(credits: Sequence[Credit], total: int) -> list[tuple[str, int]]:
    """What an invoice of `total` cents takes from the customer's credit notes (oldest first), never
    more than its total nor than a note's balance; the balances are lowered as taken."""
    taken = []
    for credit in credits:
        if total <= 0:
            break
        cents = min(credit.balance_cents, total)
        if cents > 0:
            credit.balance_cents -= cents
            total -= cents
            taken.append((credit.credit_note_id, cents))
    return taken


# Invoices the API shows. A `closed` invoice ($0, its customer skipping $0 invoices) billed its moments
# for good but is not an invoice anyone reads or pays: no number, no webhook, not listed (as Lago). A
# `voided` one was finalized, then cancelled (`POST /invoices/{lago_id}/void`): nothing is due on it.
VISIBLE_STATUSES = ("draft", "finalized", "voided")
PAYMENT_STATUSES = ("pending", "succeeded", "failed")


def voidable(status: str, payment_status: str) -> bool:
    """Only a final invoice not paid can be voided (a paid one is refunded with a credit note instead)."""
    return status == "finalized" and payment_status != "succeeded"


def final_status(fees_amount_cents: int, finalize_zero_amount: bool) -> str:
    """What finalizing makes of an invoice: `finalized`, or `closed` for a $0 one whose customer skips them."""
    return "finalized" if fees_amount_cents != 0 or finalize_zero_amount else "closed"


def finalizes_zero_amount(setting: str | None) -> bool:
    """A customer's `finalize_zero_amount_invoice`: `skip`, or `finalize`/`inherit` (the organization's
    default, which finalizes them, as Lago's)."""
    return setting != "skip"


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
