"""Objects as Lago's serializers return them. Unsupported features are present as null or empty, but a
field Lago's schema types as non-nullable is never null: text meterline has no value for is "", any
other such field is left out (rater.openapi.objects describes every object exactly)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from core.db.catalog import billing_cycle
from core.domain.charges import units_text


def iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def billable_metric(row: Any) -> dict[str, Any]:
    return {
        "lago_id": row.id,
        "name": row.name,
        "code": row.code,
        "description": row.description,
        "aggregation_type": row.aggregation_type,
        "weighted_interval": row.weighted_interval,
        "recurring": row.recurring,
        "rounding_function": row.rounding_function,
        "rounding_precision": row.rounding_precision,
        "created_at": iso(row.created_at),
        "field_name": row.field_name,
        "expression": row.expression or "",
        "filters": [],
    }


def tax(row: Any) -> dict[str, Any]:
    """A tax (Lago's TaxObject)."""
    return {"lago_id": row.id, "name": row.name, "code": row.code, "rate": number(Decimal(row.rate)),
            "description": row.description, "applied_to_organization": row.applied_to_organization,
            "created_at": iso(row.created_at)}


def test_clock(row: Any, customers_count: int) -> dict[str, Any]:
    """A test clock (a meterline addition, in Stripe's shape): its time, and whether what it was advanced over
    has all run (`ready`) or not yet (`advancing`)."""
    return {"lago_id": row.id, "name": row.name, "frozen_time": iso(row.frozen_time), "status": row.status,
            "customers_count": customers_count, "created_at": iso(row.created_at),
            "updated_at": iso(row.updated_at)}


def charge(row: Any, tax_rows: Sequence[Any]) -> dict[str, Any]:
    return {
        "lago_id": row.id,
        "lago_billable_metric_id": row.billable_metric_id,
        "billable_metric_code": row.billable_metric_code,
        "code": None,
        "invoice_display_name": row.invoice_display_name,
        "created_at": iso(row.created_at),
        "charge_model": row.charge_model,
        "pay_in_advance": row.pay_in_advance,
        "invoiceable": row.invoiceable,
        "regroup_paid_fees": None,
        "prorated": False,
        "min_amount_cents": row.min_amount_cents,
        "properties": row.properties,
        "filters": [],
        "taxes": [tax(t) for t in tax_rows],
        "applied_pricing_unit": None,
        "accepts_target_wallet": False,
        "lago_parent_id": None,
    }


def number(value: Decimal) -> int | float:
    """A decimal as a JSON number: whole ones as integers."""
    return int(value) if value == value.to_integral_value() else float(value)


def usage_threshold(row: Any) -> dict[str, Any]:
    """A progressive billing threshold (Lago's UsageThresholdObject)."""
    return {"lago_id": row.id, "threshold_display_name": row.threshold_display_name,
            "amount_cents": row.amount_cents, "recurring": row.recurring,
            "created_at": iso(row.created_at), "updated_at": iso(row.updated_at)}


def applicable_usage_threshold(row: Any) -> dict[str, Any]:
    return {"threshold_display_name": row.threshold_display_name, "amount_cents": row.amount_cents,
            "recurring": row.recurring}


def plan(row: Any, charge_rows: list[Any], threshold_rows: Sequence[Any], tax_rows: Sequence[Any],
         charge_tax_rows: dict[str, list[Any]]) -> dict[str, Any]:
    """A plan with its charges; its taxes and each charge's (`tax_rows`, `charge_tax_rows` by charge id)."""
    return {
        "lago_id": row.id,
        "name": row.name,
        "invoice_display_name": row.invoice_display_name or "",
        "created_at": iso(row.created_at),
        "code": row.code,
        "interval": row.interval,
        "description": row.description or "",
        "amount_cents": row.amount_cents,
        "amount_currency": row.amount_currency,
        "trial_period": float(row.trial_period),
        "pay_in_advance": row.pay_in_advance,
        "bill_charges_monthly": row.bill_charges_monthly,
        "bill_fixed_charges_monthly": None,
        "charges": [charge(c, charge_tax_rows.get(c.id, [])) for c in charge_rows],
        "fixed_charges": [],
        "taxes": [tax(t) for t in tax_rows],
        "usage_thresholds": [usage_threshold(t) for t in threshold_rows],
        "entitlements": [],
        "metadata": None,
    }


CUSTOMER_ATTRIBUTES = (
    "address_line1", "address_line2", "city", "country", "legal_name", "legal_number", "logo_url",
    "firstname", "lastname", "phone", "state", "tax_identification_number", "url", "zipcode",
    "billing_entity_code", "external_salesforce_id",
)


def customer(row: Any, tax_rows: Sequence[Any]) -> dict[str, Any]:
    attributes = row.attributes or {}
    body: dict[str, Any] = {
        "lago_id": row.id,
        "sequential_id": row.sequential_id,
        "slug": row.slug,
        "external_id": row.external_id,
        "name": row.name,
        "email": row.email,
        "currency": row.currency,
        "timezone": row.timezone,
        "applicable_timezone": row.timezone or "UTC",
        "invoice_grace_period": row.invoice_grace_period,
        "net_payment_term": row.net_payment_term,
        "account_type": attributes.get("account_type", "customer"),
        "customer_type": attributes.get("customer_type"),
        "created_at": iso(row.created_at),
        "updated_at": iso(getattr(row, "updated_at", None) or row.created_at),
        "finalize_zero_amount_invoice": attributes.get("finalize_zero_amount_invoice", "inherit"),
        "skip_invoice_custom_sections": False,
        # the grace the customer's drafts get (0 when not set), as Lago types it: an integer, never null
        "billing_configuration": {"invoice_grace_period": row.invoice_grace_period or 0},
        "shipping_address": attributes.get("shipping_address") or {},
        "metadata": [],
        "integration_customers": [],
        "taxes": [tax(t) for t in tax_rows],
        "applicable_invoice_custom_sections": [],
        "error_details": [],
        "test_clock_id": row.test_clock_id,  # a meterline addition: the test clock it lives on
    }
    for name in CUSTOMER_ATTRIBUTES:
        body[name] = attributes.get(name)
    body["billing_entity_code"] = body["billing_entity_code"] or ""
    return body


def subscription(row: Any, now: datetime | None = None, thresholds: Sequence[Any] | None = None) -> dict[str, Any]:
    """A `subscription_query()` row, with its billing period and trial as of `now`, and with the progressive
    billing `thresholds` that apply to it when given (catalog.shown_usage_thresholds)."""
    now = now or row.clock_time or datetime.now(UTC)  # its customer's test clock's time when on one
    period_start = period_end = trial_ended_at = None
    if row.started_at is not None:
        # as of now, within its life: one ended is shown its last period, one starting a moment on (an
        # upgrade takes effect a second after it is asked) its first
        at = max(min(now, row.terminated_at) if row.terminated_at else now, row.started_at)
        period = billing_cycle(row).period_at(at)
        if period is not None:
            period_start, period_end = period.start, period.end - timedelta(milliseconds=1)
        if row.trial_period:  # counted from the first start of a plan change's chain
            ends = (row.anchor_at or row.started_at) + timedelta(days=row.trial_period)
            trial_ended_at = ends if ends <= now else None
    body = {
        "lago_id": row.id,
        "external_id": row.external_id,
        "lago_customer_id": row.customer_id,
        "external_customer_id": row.external_customer_id,
        "billing_entity_code": "",
        "name": row.name,
        "plan_code": row.plan_code,
        "plan_amount_cents": row.plan_amount_cents,
        "plan_amount_currency": row.plan_amount_currency,
        "status": row.status,
        "billing_time": row.billing_time,
        "subscription_at": iso(row.subscription_at),
        "started_at": iso(row.started_at),
        "trial_ended_at": iso(trial_ended_at),
        "ending_at": iso(row.ending_at),
        "terminated_at": iso(row.terminated_at),
        "canceled_at": iso(row.canceled_at),
        "created_at": iso(row.created_at),
        "previous_plan_code": row.previous_plan_code,
        "next_plan_code": row.next_plan_code,
        # the local day the scheduled downgrade starts (the current period's end)
        "downgrade_plan_date": row.changes_at.astimezone(ZoneInfo(row.timezone or "UTC")).date().isoformat()
        if row.changes_at is not None and row.next_plan_code is not None else None,
        "current_billing_period_started_at": iso(period_start),
        "current_billing_period_ending_at": iso(period_end),
        # Lago shows the credit option only where it applies: a fee paid in advance
        "on_termination_credit_note": row.on_termination_credit_note if row.pay_in_advance else None,
        "on_termination_invoice": row.on_termination_invoice,
        "progressive_billing_disabled": row.progressive_billing_disabled,
        "applied_invoice_custom_sections": [],
        "payment_method": {},
        "consolidate_invoice": True,  # a customer's subscriptions due together share one invoice
        "cancellation_reason": None,
        "activated_at": iso(row.started_at),
        "activation_rules": [],
        "test_clock_id": row.test_clock_id,  # a meterline addition: the clock its customer lives on
        "purchase_order_number": None,
    }
    if thresholds is not None:
        body["applicable_usage_thresholds"] = [applicable_usage_threshold(t) for t in thresholds]
    return body


def alert_threshold(stored: Mapping[str, Any]) -> dict[str, Any]:
    """A threshold of an alert (or one a triggered alert crossed) as stored: `{code, value, recurring}`."""
    return {"code": stored.get("code"), "value": units_text(Decimal(str(stored["value"]))),
            "recurring": bool(stored.get("recurring"))}


def triggered_alert(row: Any) -> dict[str, Any]:
    """What one evaluation of an alert fired (meterline's extension of the alert object)."""
    return {"lago_id": row.id, "lago_subscription_id": row.subscription_id,
            "current_value": number(row.current_value), "previous_value": number(row.previous_value),
            "crossed_thresholds": [alert_threshold(t) for t in row.crossed_thresholds],
            "triggered_at": iso(row.triggered_at)}


def alert(row: Any, metric_row: Any | None, state: Any | None, triggered: Sequence[Any]) -> dict[str, Any]:
    """An `alerts` row (Lago's AlertObject) with its billable metric, the record of its latest evaluation
    that fired (`threshold_states`: the value seen then, and when) and its latest triggered alerts."""
    return {
        "lago_id": row.id,
        "lago_organization_id": row.organization_id,
        "external_subscription_id": row.subscription_external_id,
        "lago_wallet_id": None,
        "wallet_code": None,
        "billable_metric": billable_metric(metric_row) if metric_row is not None else None,
        "alert_type": row.alert_type,
        "code": row.code,
        "name": row.name,
        "direction": "increasing",
        "previous_value": number(state.last_value) if state is not None else 0,
        "last_processed_at": iso(state.updated_at) if state is not None else None,
        "thresholds": [alert_threshold(t) for t in row.thresholds],
        "created_at": iso(row.created_at),
        "triggered_alerts": [triggered_alert(t) for t in triggered],
    }


def threshold_completion(thresholds: Sequence[Any], current_cents: int,
                         reached: Sequence[tuple[int, datetime]]) -> list[dict[str, Any]]:
    """How far the current period's usage amount is along each progressive billing threshold: a fixed one at
    its amount, the recurring one at its first level (past the highest fixed one); reached when a progressive
    crossing of the period (level, moment) got to that level. In ascending order of level."""
    top = max((t.amount_cents for t in thresholds if not t.recurring), default=0)
    completion = []
    for threshold in thresholds:
        level = top + threshold.amount_cents if threshold.recurring else threshold.amount_cents
        reached_at = min((at for crossed, at in reached if crossed >= level), default=None)
        completion.append({"amount_cents": level, "completion_ratio": min(current_cents / level, 1.0),
                           "reached_at": iso(reached_at)})
    return sorted(completion, key=lambda entry: entry["amount_cents"])


def lifetime_usage(lago_id: str, row: Any, invoiced_cents: int, current_cents: int, now: datetime,
                   completion: list[dict[str, Any]]) -> dict[str, Any]:
    """A subscription external_id's usage since its first start (Lago's LifetimeUsageObject)."""
    return {
        "lago_id": lago_id,
        "lago_subscription_id": row.id,
        "external_subscription_id": row.external_id,
        "external_historical_usage_amount_cents": 0,
        "invoiced_usage_amount_cents": invoiced_cents,
        "current_usage_amount_cents": current_cents,
        "from_datetime": iso(row.anchor_at or row.started_at or row.subscription_at),
        "to_datetime": iso(now),
        "usage_thresholds": completion,
    }


def pagination(page: int, per_page: int, total: int) -> dict[str, Any]:
    pages = (total + per_page - 1) // per_page if total else 0
    current = page if total else 0
    return {
        "current_page": current,
        "next_page": page + 1 if page < pages else None,
        "prev_page": page - 1 if page > 1 and total else None,
        "total_pages": pages,
        "total_count": total,
    }
