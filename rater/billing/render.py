"""Invoices and fees as Lago's serializers return them (keys of the spec). Pure: rows in, dicts out.

Unsupported features (prepaid credits, payment providers) are present with zero or empty values so typed
clients parse.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import timedelta
from decimal import Decimal
from typing import Any

from core.domain.charges import units_text
from core.domain.money import minor_units
from core.domain.taxes import round_cents
from rater import serializers
from rater.serializers import iso


def _currency_amount(cents: Decimal, currency: str) -> str:
    return str(cents.scaleb(-minor_units(currency)))


def applied_tax(row: Any, owner: str, currency: str) -> dict[str, Any]:
    """A tax a fee or an invoice carries (Lago's FeeAppliedTaxObject, InvoiceAppliedTaxObject)."""
    body = {"lago_id": row.id, f"lago_{owner}_id": getattr(row, f"{owner}_id"), "lago_tax_id": row.tax_id,
            "tax_name": row.tax_name, "tax_code": row.tax_code, "tax_rate": serializers.number(Decimal(row.tax_rate)),
            "tax_description": row.tax_description, "amount_cents": row.amount_cents, "amount_currency": currency,
            "created_at": iso(row.created_at)}
    if owner == "invoice":
        body["fees_amount_cents"] = row.fees_amount_cents
    return body


def fee(row: Any, invoice: Any, external_customer_id: str, external_subscription_id: str,
        pay_in_advance: bool, true_up_fee_id: str | None = None, applied_taxes: Sequence[Any] = ()) -> dict[str, Any]:
    """A fee with its taxes; a charge fee trued up to its minimum names its true-up fee, which names it back."""
    precise = Decimal(row.precise_amount_cents)
    deducted = Decimal(row.precise_coupons_amount_cents)
    taxes_precise = Decimal(row.taxes_precise_amount_cents)
    units = Decimal(row.units)
    unit_amount = (precise.scaleb(-minor_units(row.currency)) / units) if units else Decimal(0)
    is_charge = row.fee_type == "charge"
    return {
        "lago_id": row.id,
        "lago_charge_id": row.charge_id,
        "lago_charge_filter_id": None,
        "lago_fixed_charge_id": None,
        "lago_invoice_id": row.invoice_id,
        "lago_true_up_fee_id": true_up_fee_id,
        "lago_true_up_parent_fee_id": row.true_up_parent_fee_id,
        "lago_subscription_id": row.subscription_id,
        "lago_customer_id": invoice.customer_id,
        "external_customer_id": external_customer_id,
        "external_subscription_id": external_subscription_id,
        "amount_cents": row.amount_cents,
        "precise_amount_cents": str(precise),
        "precise_amount": _currency_amount(precise, row.currency),
        "precise_total_amount": _currency_amount(precise + taxes_precise, row.currency),
        "amount_currency": row.currency,
        "taxes_amount_cents": row.taxes_amount_cents,
        "taxes_precise_amount": _currency_amount(taxes_precise, row.currency),
        "taxes_rate": float(row.taxes_rate),
        "units": row.units,
        "precise_unit_amount": str(unit_amount.normalize()) if unit_amount else "0.0",
        "total_aggregated_units": row.units,
        "total_amount_cents": row.amount_cents + row.taxes_amount_cents,
        "total_amount_currency": row.currency,
        "events_count": row.events_count,
        "pay_in_advance": pay_in_advance and not is_charge,
        "invoiceable": True,
        "from_date": iso(row.from_datetime),
        "to_date": iso(row.to_datetime - timedelta(milliseconds=1)) if row.to_datetime else None,
        "payment_status": invoice.payment_status,
        "created_at": iso(row.created_at),
        "succeeded_at": iso(invoice.finalized_at) if invoice.payment_status == "succeeded" else None,
        "failed_at": None,
        "refunded_at": None,
        "event_transaction_id": None,
        "description": None,
        "precise_coupons_amount_cents": units_text(deducted),
        "sub_total_excluding_taxes_amount_cents": round_cents(Decimal(row.amount_cents) - deducted),
        "sub_total_excluding_taxes_precise_amount_cents": str(precise - deducted),
        "amount_details": row.amount_details,
        "self_billed": False,
        "item": {
            "type": row.fee_type,
            "code": row.item_code,
            "name": row.item_name,
            "description": None,
            "invoice_display_name": row.invoice_display_name or row.item_name,
            "filter_invoice_display_name": None,
            "filters": None,
            "lago_item_id": row.billable_metric_id if is_charge else row.subscription_id,
            "item_type": "BillableMetric" if is_charge else "Subscription",
            "grouped_by": {},
        },
        "applied_taxes": [applied_tax(tax, "fee", row.currency) for tax in applied_taxes],
        "presentation_breakdowns": [],
    }


def billing_period(moment: Any, external_subscription_id: str, plan_id: str) -> dict[str, Any]:
    def last_ms(moment_end: Any) -> str | None:
        return iso(moment_end - timedelta(milliseconds=1)) if moment_end else None

    return {
        "lago_subscription_id": moment.subscription_id,
        "external_subscription_id": external_subscription_id,
        "lago_plan_id": plan_id,
        "subscription_from_datetime": iso(moment.fee_from),
        "subscription_to_datetime": last_ms(moment.fee_to),
        # a moment billing no usage (a start, a trial end) shows the period of its fee, as Lago fills it
        "charges_from_datetime": iso(moment.charges_from or moment.fee_from),
        "charges_to_datetime": last_ms(moment.charges_to or moment.fee_to),
        "invoicing_reason": moment.invoicing_reason,
    }


def invoice(row: Any, customer: dict[str, Any], applied_usage_thresholds: Sequence[dict[str, Any]] = (),
            metadata: Sequence[Any] = (), applied_taxes: Sequence[Any] = (), file_url: str = "") -> dict[str, Any]:
    """The invoice as listed (Lago's InvoiceObject): totals, status, the customer, the metadata rows and its
    taxes; a progressive billing invoice with the threshold that made it (`applied_usage_thresholds`,
    rater.billing.documents); the signed link to its document once it has one (rater.billing.files)."""
    subtotal = row.fees_amount_cents - row.progressive_billing_credit_amount_cents - row.coupons_amount_cents
    paid = row.payment_status == "succeeded"
    return {
        "lago_id": row.id,
        "billing_entity_code": None,
        # numbered once final: a draft has no sequential_id (left out, as Lago types it non-nullable)
        **({} if row.sequential_id is None else {"sequential_id": row.sequential_id}),
        "number": row.number,
        "issuing_date": row.issuing_date.isoformat(),
        "payment_due_date": row.payment_due_date.isoformat(),
        "payment_overdue": row.payment_overdue,
        "net_payment_term": row.net_payment_term,
        "invoice_type": row.invoice_type,
        "status": row.status,
        "payment_status": row.payment_status,
        "currency": row.currency,
        "fees_amount_cents": row.fees_amount_cents,
        "coupons_amount_cents": row.coupons_amount_cents,
        "credit_notes_amount_cents": row.credit_notes_amount_cents,
        "sub_total_excluding_taxes_amount_cents": subtotal,
        "taxes_amount_cents": row.taxes_amount_cents,
        "taxes_rate": float(row.taxes_rate),
        "sub_total_including_taxes_amount_cents": subtotal + row.taxes_amount_cents,
        "prepaid_credit_amount_cents": 0,
        "prepaid_granted_credit_amount_cents": 0,
        "prepaid_purchased_credit_amount_cents": 0,
        "progressive_billing_credit_amount_cents": row.progressive_billing_credit_amount_cents,
        "total_amount_cents": row.total_amount_cents,
        "total_due_amount_cents": 0 if paid or row.status == "voided" else row.total_amount_cents,
        "total_paid_amount_cents": row.total_amount_cents if paid else 0,
        "total_offsetted_credit_note_amount_cents": 0,
        "purchase_order_number": None,
        "voided_at": iso(row.voided_at),
        "xml_url": None,
        "version_number": 4,
        "self_billed": False,
        "file_url": file_url,
        "web_url": None,
        "created_at": iso(row.created_at),
        "updated_at": iso(row.updated_at),
        "customer": customer,
        "metadata": [{"lago_id": item.id, "key": item.key, "value": item.value, "created_at": iso(item.created_at)}
                     for item in metadata],
        "applied_taxes": [applied_tax(tax, "invoice", row.currency) for tax in applied_taxes],
        "applied_invoice_custom_sections": [],
        "applied_usage_thresholds": list(applied_usage_thresholds),
        "test_clock_id": customer["test_clock_id"],  # a meterline addition: billed on its customer's test clock
    }


def coupon_credit(row: Any, invoice_row: Any) -> dict[str, Any]:
    """What a coupon took from an invoice (Lago's CreditObject of a coupon: before taxes)."""
    return {"lago_id": row.id, "amount_cents": row.amount_cents, "amount_currency": invoice_row.currency,
            "before_taxes": True,
            "item": {"lago_item_id": row.coupon_id, "type": "coupon", "code": row.code, "name": row.name},
            "invoice": {"lago_id": invoice_row.id, "payment_status": invoice_row.payment_status}}


def invoice_extended(row: Any, customer: dict[str, Any], fees: Sequence[dict[str, Any]],
                     subscriptions: Sequence[dict[str, Any]], billing_periods: Sequence[dict[str, Any]],
                     applied_usage_thresholds: Sequence[dict[str, Any]] = (), metadata: Sequence[Any] = (),
                     applied_taxes: Sequence[Any] = (), credits: Sequence[Any] = (), file_url: str = ""
                     ) -> dict[str, Any]:
    """The invoice as fetched one by one (Lago's InvoiceObjectExtended), with what its coupons took."""
    return {**invoice(row, customer, applied_usage_thresholds, metadata, applied_taxes, file_url), "fees": list(fees),
            "subscriptions": list(subscriptions), "billing_periods": list(billing_periods),
            "credits": [coupon_credit(credit, row) for credit in credits],
            "error_details": []}


def credit_note(row: Any, invoice_row: Any, customer: dict[str, Any], fee_doc: dict[str, Any]) -> dict[str, Any]:
    """A credit note (Lago's CreditNoteObject): the credited part of one subscription fee with the fee's taxes
    on it, its balance."""
    base = row.credit_amount_cents - row.taxes_amount_cents
    return {
        "lago_id": row.id,
        "billing_entity_code": "",
        "sequential_id": row.sequential_id,
        "number": row.number,
        "lago_invoice_id": row.invoice_id,
        "invoice_number": invoice_row.number,
        "issuing_date": row.issuing_date.isoformat(),
        "credit_status": row.credit_status,
        "refund_status": None,
        "reason": row.reason,
        "description": None,
        "currency": row.currency,
        "total_amount_cents": row.credit_amount_cents,
        "taxes_amount_cents": row.taxes_amount_cents,
        "taxes_rate": float(row.taxes_rate),
        "sub_total_excluding_taxes_amount_cents": base,
        "balance_amount_cents": row.balance_amount_cents,
        "credit_amount_cents": row.credit_amount_cents,
        "refund_amount_cents": 0,
        "offset_amount_cents": 0,
        "coupons_adjustment_amount_cents": 0,
        "created_at": iso(row.created_at),
        "updated_at": iso(row.updated_at),
        "voided_at": iso(row.voided_at),
        "file_url": "",
        "self_billed": False,
        "items": [{"lago_id": row.fee_id, "amount_cents": base, "amount_currency": row.currency, "fee": fee_doc}],
        # each of the credited fee's taxes on the credited amount (their sum rounded once: taxes_amount_cents)
        "applied_taxes": [{
            "lago_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"meterline:credit_note_tax:{row.id}:{tax['lago_tax_id']}")),
            "lago_credit_note_id": row.id, "lago_tax_id": tax["lago_tax_id"], "tax_name": tax["tax_name"],
            "tax_code": tax["tax_code"], "tax_rate": tax["tax_rate"], "tax_description": tax["tax_description"],
            "amount_cents": round_cents(Decimal(base) * Decimal(str(tax["tax_rate"])) / 100),
            "amount_currency": row.currency, "base_amount_cents": base, "created_at": iso(row.created_at),
        } for tax in fee_doc["applied_taxes"]],
        "metadata": None,  # Lago's credit note metadata is an object or null (an invoice's is a list)
        "error_details": [],
        "customer": customer,
    }


def applied_usage_threshold(crossing: Any, threshold: Any) -> dict[str, Any]:
    """The threshold a progressive billing invoice was issued for, with the usage amount seen then."""
    return {"lifetime_usage_amount_cents": crossing.usage_amount_cents, "created_at": iso(crossing.reached_at),
            "usage_threshold": serializers.usage_threshold(threshold)}


def triggered_alert(row: Any, alert: Any, subscription: Any, metric_code: str | None) -> dict[str, Any]:
    """What an evaluation fired (Lago's TriggeredAlertObject); values as numbers, as Lago sends them."""
    return {"lago_id": row.id, "lago_organization_id": row.organization_id, "lago_alert_id": row.alert_id,
            "lago_subscription_id": row.subscription_id, "external_subscription_id": subscription.external_id,
            "external_customer_id": subscription.external_customer_id, "billable_metric_code": metric_code,
            "alert_type": alert.alert_type, "alert_code": alert.code, "alert_name": alert.name,
            "current_value": serializers.number(row.current_value),
            "previous_value": serializers.number(row.previous_value), "triggered_at": iso(row.triggered_at),
            "crossed_thresholds": [serializers.alert_threshold(t) for t in row.crossed_thresholds]}
