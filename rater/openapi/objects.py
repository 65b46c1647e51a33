"""The objects the API answers with, as `rater.serializers` and `rater.billing.render` write them.

Every key listed is always present (but those `optional` says are left out when meterline has no
value), and no other key appears. A field Lago types as non-nullable is never null: text meterline
has no value for is "" and any other such field is left out of the object, so typed clients parse.
"""

from __future__ import annotations

from core.domain.aggregation import AGGREGATION_TYPES
from core.domain.lifecycle import STATUSES
from core.domain.periods import BILLING_TIMES, INTERVALS
from core.domain.thresholds import ALERT_TYPES
from core.openapi.schema import (
    CURRENCY,
    Schema,
    array,
    boolean,
    closed,
    const,
    day,
    empty_list,
    integer,
    moment,
    nullable,
    number,
    ref,
    text,
    uuid,
)
from rater.api.customers import ADDRESS_FIELDS
from rater.api.metrics import WEIGHTED_INTERVALS
from rater.api.plans import CHARGE_MODELS
from rater.billing.assemble import PAYMENT_STATUSES, VISIBLE_STATUSES
from rater.billing.progressive import PROGRESSIVE_BILLING
from rater.billing.schedule import INVOICING_REASONS
from rater.serializers import CUSTOMER_ATTRIBUTES

UPGRADING = "upgrading"  # the invoicing reason of a plan upgrade's moments (rater.billing.schedule.Due)

CURRENCY_CODE = text("ISO 4217 code.", pattern=CURRENCY)
_UNSUPPORTED = "meterline does not have this Lago feature"

BILLABLE_METRIC = closed({
    "lago_id": uuid(), "name": text(), "code": text(), "description": nullable(text()),
    "aggregation_type": text(enum=AGGREGATION_TYPES),
    "weighted_interval": nullable(text("Set for `weighted_sum_agg` only.", enum=WEIGHTED_INTERVALS)),
    "recurring": const(False, "Recurring metrics are refused (`not_supported`)."),
    "rounding_function": const(None, "Rounding is refused (`not_supported`)."),
    "rounding_precision": const(None, "Rounding is refused (`not_supported`)."),
    "created_at": moment(),
    "field_name": nullable(text("The event property aggregated (null for `count_agg`).")),
    "expression": const("", "Expressions are refused (`not_supported`): always empty."),
    "filters": empty_list("Metric filters are refused (`not_supported`)."),
})

_AMOUNT = {"anyOf": [text(), number()], "description": "A decimal amount, as the plan gave it (string or number)."}
_WHOLE = {"anyOf": [integer(), text(pattern="^\\s*-?[0-9]+\\s*$")], "description": "A whole number, as given."}
_RANGE = {"type": "object", "additionalProperties": False, "required": ["from_value", "to_value"],
          "properties": {"from_value": _WHOLE, "to_value": {"anyOf": [_WHOLE, {"type": "null"}]},
                         "per_unit_amount": _AMOUNT, "flat_amount": _AMOUNT}}
CHARGE_PROPERTIES: Schema = {
    "type": "object", "additionalProperties": False,
    "description": "Only the properties the charge model reads: `standard` amount; `graduated` graduated_ranges; "
                   "`volume` volume_ranges; `package` amount, package_size, free_units; `percentage` rate, "
                   "fixed_amount.",
    "properties": {"amount": _AMOUNT, "package_size": _WHOLE, "free_units": _WHOLE, "rate": _AMOUNT,
                   "fixed_amount": {"anyOf": [_AMOUNT, {"type": "null"}]},
                   "graduated_ranges": array(_RANGE), "volume_ranges": array(_RANGE)},
}

_PERCENT: Schema = {**number("A percentage: 20 is 20%."), "minimum": 0, "maximum": 100}
TAX = closed({
    "lago_id": uuid(), "name": text(), "code": text(), "rate": _PERCENT,
    "description": nullable(text()),
    "applied_to_organization": boolean("One of the organization's default taxes (a fee's when its charge, plan and "
                                       "customer have none)."),
    "created_at": moment(),
})
_TAXES = array(ref("Tax"))


def _applied_tax(owner: str, extra: dict[str, Schema]) -> Schema:
    return closed({"lago_id": uuid(), f"lago_{owner}_id": uuid(), "lago_tax_id": uuid(), "tax_name": text(),
                   "tax_code": text(), "tax_rate": _PERCENT,
                   "tax_description": nullable(text()), "amount_cents": integer("Negative on a negative fee."),
                   "amount_currency": CURRENCY_CODE, "created_at": moment(), **extra})


FEE_APPLIED_TAX = _applied_tax("fee", {})
INVOICE_APPLIED_TAX = _applied_tax("invoice", {"fees_amount_cents": integer("The taxed amount of the fees.")})
CREDIT_NOTE_APPLIED_TAX = _applied_tax("credit_note", {"base_amount_cents": integer("The credited amount taxed.")})

COUPON = closed({
    "lago_id": uuid(), "name": text(), "code": text(), "description": nullable(text()),
    "coupon_type": text(enum=("fixed_amount", "percentage")), "amount_cents": nullable(integer(minimum=1)),
    "amount_currency": nullable(CURRENCY_CODE), "reusable": boolean(), "limited_plans": boolean(),
    "plan_codes": array(text()), "limited_billable_metrics": boolean(), "billable_metric_codes": array(text()),
    "percentage_rate": nullable(text("A percentage, as a decimal string.")),
    "frequency": text(enum=("once", "recurring", "forever")), "frequency_duration": nullable(integer(minimum=1)),
    "expiration": text(enum=("no_expiration", "time_limit")), "expiration_at": nullable(moment()),
    "created_at": moment(), "terminated_at": nullable(moment()),
})
APPLIED_COUPON = closed({
    "lago_id": uuid(), "lago_coupon_id": uuid(), "coupon_code": text(), "coupon_name": text(),
    "coupon_description": nullable(text()), "coupon_status": text(enum=("active", "terminated")),
    "coupon_deleted_at": nullable(moment()), "lago_customer_id": uuid(), "external_customer_id": text(),
    "status": text(enum=("active", "terminated")), "amount_cents": nullable(integer(minimum=1)),
    "amount_cents_remaining": nullable(integer("What is left of a `once` fixed amount.")),
    "amount_currency": nullable(CURRENCY_CODE), "percentage_rate": nullable(text()),
    "frequency": text(enum=("once", "recurring", "forever")), "frequency_duration": nullable(integer(minimum=1)),
    "frequency_duration_remaining": nullable(integer(minimum=0)), "expiration_at": nullable(moment()),
    "created_at": moment(), "terminated_at": nullable(moment()),
})
CREDIT = closed({
    "lago_id": uuid(), "amount_cents": integer(minimum=1), "amount_currency": CURRENCY_CODE,
    "before_taxes": const(True, "Coupons reduce an invoice before its taxes."),
    "item": closed({"lago_item_id": uuid(), "type": const("coupon"), "code": text(), "name": text()}),
    "invoice": closed({"lago_id": uuid(), "payment_status": text(enum=PAYMENT_STATUSES)}),
})

CHARGE = closed({
    "lago_id": uuid(), "lago_billable_metric_id": uuid(), "billable_metric_code": text(),
    "code": const(None, "Charge codes are not kept."),
    "invoice_display_name": nullable(text()), "created_at": moment(),
    "charge_model": text(enum=CHARGE_MODELS),
    "pay_in_advance": const(False, "Charges paid in advance are refused (`not_supported`)."),
    "invoiceable": const(True, "Every charge is invoiced."),
    "regroup_paid_fees": const(None, _UNSUPPORTED),
    "prorated": const(False, "Prorated charges are refused."),
    "min_amount_cents": integer("A period's charge below it is trued up to it by a separate fee.", minimum=0),
    "properties": ref("ChargeProperties"),
    "filters": empty_list("Charge filters are refused (`not_supported`)."),
    "taxes": _TAXES,
    "applied_pricing_unit": const(None, _UNSUPPORTED),
    "accepts_target_wallet": const(False, _UNSUPPORTED),
    "lago_parent_id": const(None, _UNSUPPORTED),
})

USAGE_THRESHOLD = closed({
    "lago_id": uuid(), "threshold_display_name": nullable(text()),
    "amount_cents": integer("The period's usage amount that triggers a progressive billing invoice.", minimum=1),
    "recurring": boolean("Every further `amount_cents` past the highest fixed threshold triggers one again."),
    "created_at": moment(), "updated_at": moment(),
})

APPLICABLE_USAGE_THRESHOLD = closed({
    "threshold_display_name": nullable(text()), "amount_cents": integer(minimum=1), "recurring": boolean(),
})

PLAN = closed({
    "lago_id": uuid(), "name": text(),
    "invoice_display_name": text("\"\" when not set."),
    "created_at": moment(), "code": text(), "interval": text(enum=INTERVALS),
    "description": text("\"\" when not set."),
    "amount_cents": integer(minimum=0), "amount_currency": CURRENCY_CODE,
    "trial_period": number("Whole days.", ), "pay_in_advance": boolean(),
    "bill_charges_monthly": nullable(boolean("A yearly plan's choice; null for other intervals.")),
    "bill_fixed_charges_monthly": const(None, _UNSUPPORTED),
    "charges": array(ref("Charge")),
    "fixed_charges": empty_list("Fixed charges are refused (`not_supported`)."),
    "taxes": _TAXES,
    "usage_thresholds": array(ref("UsageThreshold"), "Progressive billing thresholds, by amount."),
    "entitlements": empty_list(_UNSUPPORTED), "metadata": const(None, _UNSUPPORTED),
})

ADDRESS = {"type": "object", "additionalProperties": False,
           "properties": {name: text() for name in ADDRESS_FIELDS},
           "description": "The address fields given (none when no shipping address was given)."}

_TEST_CLOCK_ID = nullable(uuid("The test clock it lives on (a meterline addition): its invoices are rehearsals."))

CUSTOMER = closed({
    "lago_id": uuid(), "sequential_id": integer("The customer's number in its organization, from 1.", minimum=1),
    "slug": text(), "external_id": text(), "name": nullable(text()), "email": nullable(text()),
    "currency": nullable(CURRENCY_CODE), "timezone": nullable(text("IANA name.")),
    "applicable_timezone": text("The customer's timezone, else UTC."),
    "invoice_grace_period": nullable(integer(minimum=0)),
    "net_payment_term": nullable(integer("Days from an invoice's issuing date to its payment due date.",
                                         minimum=0)),
    "account_type": const("customer", "Partners (self-billing) are refused (`not_supported`)."),
    "customer_type": nullable(text(enum=("company", "individual"))),
    "created_at": moment(), "updated_at": moment(),
    "finalize_zero_amount_invoice": text(enum=("inherit", "finalize", "skip")),
    "skip_invoice_custom_sections": const(False, _UNSUPPORTED),
    "billing_configuration": closed({"invoice_grace_period": integer("The grace the customer's drafts get: 0 "
                                                                     "when not set.", minimum=0)},
                                    "Payment providers are refused (`not_supported`)."),
    "shipping_address": ADDRESS,
    "metadata": empty_list("Customer metadata is refused (`not_supported`)."),
    "integration_customers": empty_list("Integrations are refused (`not_supported`)."),
    "taxes": _TAXES,
    "applicable_invoice_custom_sections": empty_list(_UNSUPPORTED),
    "error_details": empty_list(_UNSUPPORTED), "test_clock_id": _TEST_CLOCK_ID,
    **{name: nullable(text()) for name in CUSTOMER_ATTRIBUTES if name != "billing_entity_code"},
    "billing_entity_code": const("", "Billing entities are refused (`not_supported`): always empty."),
})

_APPLICABLE = ("The progressive billing thresholds that apply: the subscription's own, else its plan's; none while "
               "its progressive billing is disabled. Left out of an invoice's subscriptions.")
SUBSCRIPTION = closed({
    "lago_id": uuid(), "external_id": text(), "lago_customer_id": uuid(), "external_customer_id": text(),
    "billing_entity_code": const("", "meterline has no billing entities: always empty."),
    "name": nullable(text()), "plan_code": text(), "plan_amount_cents": integer(minimum=0),
    "plan_amount_currency": CURRENCY_CODE, "status": text(enum=STATUSES), "billing_time": text(enum=BILLING_TIMES),
    "subscription_at": moment(), "started_at": nullable(moment()),
    "trial_ended_at": nullable(moment("Once the trial has ended.")), "ending_at": nullable(moment()),
    "terminated_at": nullable(moment()),
    "canceled_at": nullable(moment("When a pending subscription (or a scheduled downgrade) was canceled.")),
    "created_at": moment(),
    "previous_plan_code": nullable(text("The plan this subscription was changed from.")),
    "next_plan_code": nullable(text("The plan of a downgrade scheduled for the period's end.")),
    "downgrade_plan_date": nullable(day("The local day the scheduled downgrade starts.")),
    "current_billing_period_started_at": nullable(moment()),
    "current_billing_period_ending_at": nullable(moment()),
    "on_termination_credit_note": nullable(text("For a plan paid in advance: whether a termination credits the "
                                                "unused days (`refund` and `offset` are refused).",
                                                enum=("credit", "skip"))),
    "on_termination_invoice": text(enum=("generate", "skip")),
    "progressive_billing_disabled": boolean("No progressive billing invoice for this subscription."),
    "applicable_usage_thresholds": array(ref("ApplicableUsageThreshold"), _APPLICABLE),
    "applied_invoice_custom_sections": empty_list(_UNSUPPORTED),
    "payment_method": closed({}, "meterline collects no payment: always empty."),
    "consolidate_invoice": const(True, "A customer's subscriptions due together share one invoice."),
    "cancellation_reason": const(None, _UNSUPPORTED), "activated_at": nullable(moment()),
    "activation_rules": empty_list(_UNSUPPORTED), "purchase_order_number": const(None, _UNSUPPORTED),
    "test_clock_id": _TEST_CLOCK_ID,
}, optional=("applicable_usage_thresholds",))

SUBSCRIPTION_EXTENDED = closed({**SUBSCRIPTION["properties"], "plan": ref("Plan")})

_DECIMAL_TEXT = text(pattern="^[0-9]+\\.[0-9]+$")
_AMOUNT_DETAILS = {
    "type": "object", "additionalProperties": False,
    "description": "How the charge priced its units when billed: a graduated charge's tiers (empty for the other "
                   "models and for subscription fees).",
    "properties": {"graduated_ranges": array(closed({
        "units": _DECIMAL_TEXT, "from_value": integer(minimum=0), "to_value": nullable(integer(minimum=0)),
        "flat_unit_amount": _DECIMAL_TEXT, "per_unit_amount": _DECIMAL_TEXT,
        "per_unit_total_amount": _DECIMAL_TEXT, "total_with_flat_amount": _DECIMAL_TEXT,
    }))},
}

_FEE_ITEM = closed({
    "type": text(enum=("subscription", "charge")), "code": text(), "name": text(),
    "description": const(None), "invoice_display_name": text(),
    "filter_invoice_display_name": const(None), "filters": const(None),
    "lago_item_id": uuid(), "item_type": text(enum=("Subscription", "BillableMetric")),
    "grouped_by": closed({}),
})

FEE = closed({
    "lago_id": uuid(), "lago_charge_id": nullable(uuid()), "lago_charge_filter_id": const(None),
    "lago_fixed_charge_id": const(None), "lago_invoice_id": uuid(),
    "lago_true_up_fee_id": nullable(uuid("The fee that trues this charge fee up to its minimum.")),
    "lago_true_up_parent_fee_id": nullable(uuid("The charge fee this true-up fee completes.")),
    "lago_subscription_id": uuid(), "lago_customer_id": uuid(), "external_customer_id": text(),
    "external_subscription_id": text(), "amount_cents": integer(), "precise_amount_cents": text(),
    "precise_amount": text(), "precise_total_amount": text(), "amount_currency": CURRENCY_CODE,
    "taxes_amount_cents": integer(), "taxes_precise_amount": text(),
    "taxes_rate": number("The sum of its taxes' rates."),
    "units": text(), "precise_unit_amount": text(), "total_aggregated_units": text(),
    "total_amount_cents": integer(), "total_amount_currency": CURRENCY_CODE,
    "events_count": nullable(integer(minimum=0)), "pay_in_advance": boolean(), "invoiceable": const(True),
    "from_date": nullable(moment()), "to_date": nullable(moment()),
    "payment_status": text(enum=("pending", "succeeded")), "created_at": moment(),
    "succeeded_at": nullable(moment()), "failed_at": const(None), "refunded_at": const(None),
    "event_transaction_id": const(None), "description": const(None),
    "precise_coupons_amount_cents": text("Its share of what the invoice deducts before taxes: its progressive "
                                         "billing credit and coupons (precise cents)."),
    "sub_total_excluding_taxes_amount_cents": integer(),
    "sub_total_excluding_taxes_precise_amount_cents": text(), "amount_details": _AMOUNT_DETAILS,
    "self_billed": const(False), "item": _FEE_ITEM, "applied_taxes": array(ref("FeeAppliedTax")),
    "presentation_breakdowns": empty_list(_UNSUPPORTED),
})

BILLING_PERIOD = closed({
    "lago_subscription_id": uuid(), "external_subscription_id": text(), "lago_plan_id": uuid(),
    "subscription_from_datetime": nullable(moment()), "subscription_to_datetime": nullable(moment()),
    "charges_from_datetime": nullable(moment()), "charges_to_datetime": nullable(moment()),
    "invoicing_reason": text(enum=sorted({*INVOICING_REASONS.values(), UPGRADING, PROGRESSIVE_BILLING})),
})

APPLIED_USAGE_THRESHOLD = closed({
    "lifetime_usage_amount_cents": integer("The period's usage amount seen when the threshold was reached "
                                           "(what the invoice bills before deducting earlier progressive "
                                           "invoices).", minimum=0),
    "created_at": moment("When the threshold was reached."), "usage_threshold": ref("UsageThreshold"),
})

_ZERO = const(0, _UNSUPPORTED)
INVOICE_METADATA = closed({"lago_id": uuid(), "key": text(max_length=20), "value": text(max_length=140),
                           "created_at": moment()})
INVOICE = closed({
    "lago_id": uuid(), "billing_entity_code": const(None, "meterline has no billing entities."),
    "sequential_id": integer("The invoice's number for its customer; left out of a draft.", minimum=1),
    "number": text(), "issuing_date": day(), "payment_due_date": day(),
    "payment_overdue": boolean("Set once its due date passed unpaid (webhook `invoice.payment_overdue`); a "
                               "payment that succeeded or a void ends it."),
    "net_payment_term": integer(minimum=0),
    "invoice_type": text("`progressive_billing` for an invoice a usage threshold triggered.",
                         enum=("subscription", PROGRESSIVE_BILLING)),
    "status": text(enum=VISIBLE_STATUSES), "payment_status": text(enum=PAYMENT_STATUSES),
    "currency": CURRENCY_CODE, "fees_amount_cents": integer(),
    "coupons_amount_cents": integer("What its customer's coupons took (a finalized invoice's).", minimum=0),
    "credit_notes_amount_cents": integer("Taken from the customer's credit notes.", minimum=0),
    "sub_total_excluding_taxes_amount_cents": integer("Fees less the progressive billing credit and coupons."),
    "taxes_amount_cents": integer(),
    "taxes_rate": number("Its taxes' rates weighted by the part of the taxed amount each applies to."),
    "sub_total_including_taxes_amount_cents": integer(),
    "prepaid_credit_amount_cents": _ZERO, "prepaid_granted_credit_amount_cents": _ZERO,
    "prepaid_purchased_credit_amount_cents": _ZERO, "progressive_billing_credit_amount_cents": integer(
        "What the period's earlier progressive billing invoices billed, deducted from the fees.", minimum=0),
    "total_amount_cents": integer(), "total_due_amount_cents": integer(), "total_paid_amount_cents": integer(),
    "total_offsetted_credit_note_amount_cents": _ZERO, "purchase_order_number": const(None),
    "voided_at": nullable(moment()), "xml_url": const(None), "version_number": const(4), "self_billed": const(False),
    "file_url": text("A signed link to its PDF once downloaded (`POST /invoices/{lago_id}/download`), working "
                      "without the API key until it expires; empty before."), "web_url": const(None),
    "created_at": moment(), "updated_at": moment(), "customer": ref("Customer"),
    "metadata": array(INVOICE_METADATA, "Set with `PUT /invoices/{lago_id}`, oldest first."),
    "applied_taxes": array(ref("InvoiceAppliedTax")),
    "applied_invoice_custom_sections": empty_list(_UNSUPPORTED),
    "applied_usage_thresholds": array(ref("AppliedUsageThreshold"),
                                      "The threshold a progressive billing invoice was issued for (else empty)."),
    "test_clock_id": _TEST_CLOCK_ID,
}, optional=("sequential_id",))

INVOICE_EXTENDED = closed({**INVOICE["properties"], "fees": array(ref("Fee")), "subscriptions": array(ref(
    "Subscription")), "billing_periods": array(ref("BillingPeriod")), "credits": array(ref("Credit")),
    "error_details": empty_list(_UNSUPPORTED)}, optional=("sequential_id",))

_CHARGE_USAGE = closed({
    "units": text(), "total_aggregated_units": text(), "events_count": integer(minimum=0), "amount_cents": integer(),
    "amount_currency": CURRENCY_CODE, "pricing_unit_details": const(None),
    "charge": closed({"lago_id": uuid(), "charge_model": text(enum=CHARGE_MODELS),
                      "invoice_display_name": nullable(text())}),
    "billable_metric": closed({"lago_id": uuid(), "name": text(), "code": text(),
                               "aggregation_type": text(enum=AGGREGATION_TYPES)}),
    "filters": empty_list(_UNSUPPORTED), "grouped_usage": empty_list(_UNSUPPORTED),
    "presentation_breakdowns": empty_list(_UNSUPPORTED),
})

CUSTOMER_USAGE = closed({
    "from_datetime": moment(), "to_datetime": moment(), "issuing_date": day(),
    "lago_invoice_id": const(None), "currency": CURRENCY_CODE, "amount_cents": integer(),
    "taxes_amount_cents": integer("The usage fees' taxes (0 with `apply_taxes=false`)."),
    "total_amount_cents": integer(),
    "charges_usage": array(_CHARGE_USAGE),
})

CREDIT_NOTE = closed({
    "lago_id": uuid(), "billing_entity_code": const("", "meterline has no billing entities: always empty."),
    "sequential_id": integer("The credit note's number for its invoice.", minimum=1), "number": text(),
    "lago_invoice_id": uuid(), "invoice_number": text(), "issuing_date": day(),
    "credit_status": text(enum=("available", "consumed", "voided")),
    "refund_status": const(None, "Refunds are refused (`not_supported`)."),
    "reason": text("A plan upgrade or a termination.", enum=("order_change", "order_cancellation")),
    "description": const(None), "currency": CURRENCY_CODE, "total_amount_cents": integer(minimum=0),
    "taxes_amount_cents": integer("The credited fee's taxes on the credited amount.", minimum=0),
    "taxes_rate": number("The credited fee's taxes' rate."),
    "sub_total_excluding_taxes_amount_cents": integer(minimum=0),
    "balance_amount_cents": integer("What invoices can still take from it.", minimum=0),
    "credit_amount_cents": integer(minimum=0), "refund_amount_cents": _ZERO, "offset_amount_cents": _ZERO,
    "coupons_adjustment_amount_cents": _ZERO, "created_at": moment(), "updated_at": moment(),
    "voided_at": nullable(moment()), "file_url": const("", "meterline renders no PDF: always empty."),
    "self_billed": const(False),
    "items": array(closed({"lago_id": uuid(), "amount_cents": integer(minimum=0), "amount_currency": CURRENCY_CODE,
                           "fee": ref("Fee")}), min_items=1, max_items=1),
    "applied_taxes": array(ref("CreditNoteAppliedTax")), "metadata": const(None, _UNSUPPORTED),
    "error_details": empty_list(_UNSUPPORTED), "customer": ref("Customer"),
})

ALERT_THRESHOLD = closed({
    "code": nullable(text()),
    "value": text("A decimal, as Lago writes it (\"1000.0\"): cents for the amount types, units otherwise.",
                  pattern="^[0-9]+\\.[0-9]+$"),
    "recurring": boolean("Fires again at every multiple of its value past the highest fixed threshold."),
})

TRIGGERED_ALERT = closed({
    "lago_id": uuid(), "lago_subscription_id": uuid("The subscription live when it fired."),
    "current_value": number("The value the evaluation saw."),
    "previous_value": number("The value seen when the alert last fired in that period (0 before)."),
    "crossed_thresholds": array(ref("AlertThreshold"), "The levels crossed (a recurring threshold's at each of "
                                                       "its multiples).", min_items=1),
    "triggered_at": moment(),
}, "What one evaluation fired: the object of an `alert.triggered` webhook, in short.")

ALERT = closed({
    "lago_id": uuid(), "lago_organization_id": uuid(), "external_subscription_id": text(),
    "lago_wallet_id": const(None, "Wallet alerts are not meterline's."),
    "wallet_code": const(None, "Wallet alerts are not meterline's."),
    "billable_metric": {"anyOf": [ref("BillableMetric"), {"type": "null"}],
                        "description": "The metric watched by the billable_metric_* types (null for the others)."},
    "alert_type": text(enum=ALERT_TYPES), "code": text(), "name": nullable(text()),
    "direction": const("increasing", "A subscription's usage alerts fire as the value grows."),
    "previous_value": number("The value seen when the alert last fired (0 until it has)."),
    "last_processed_at": nullable(moment("When the alert last fired (null until it has).")),
    "thresholds": array(ref("AlertThreshold"), "In ascending order of value.", min_items=1),
    "created_at": moment(),
    "triggered_alerts": array(ref("TriggeredAlert"), "meterline's extension: the alert's latest 20 triggered "
                                                     "alerts, newest first.", max_items=20),
})

LIFETIME_USAGE = closed({
    "lago_id": uuid("Stable for the subscription's external_id."), "lago_subscription_id": uuid(),
    "external_subscription_id": text(),
    "external_historical_usage_amount_cents": const(0, "meterline keeps no historical usage (`not_supported`)."),
    "invoiced_usage_amount_cents": integer("The usage fees invoiced to the external_id's subscriptions (every plan "
                                           "it had).", minimum=0),
    "current_usage_amount_cents": integer("The current period's usage amount (0 unless the subscription is "
                                          "active).", minimum=0),
    "from_datetime": nullable(moment("The first start of the external_id's subscriptions.")),
    "to_datetime": moment("Now."),
    "usage_thresholds": array(closed({
        "amount_cents": integer("The level: a fixed threshold's amount, or the recurring one's first level past "
                                "the highest fixed one.", minimum=1),
        "completion_ratio": number("The current usage amount over the level, at most 1."),
        "reached_at": nullable(moment("When progressive billing reached the level in the current period.")),
    }), "Along the progressive billing thresholds that apply."),
})

WEBHOOK_ENDPOINT = closed({
    "lago_id": uuid(), "lago_organization_id": uuid(), "webhook_url": text(),
    "signature_algo": const("hmac", "meterline signs with HMAC-SHA256 only."), "name": nullable(text()),
    "event_types": const(None, "Every endpoint receives every webhook type."), "created_at": moment(),
    "hmac_key": text("Deviation: each endpoint has its own key (Lago keeps one per organization), used for "
                     "`X-Lago-Signature`."),
})

TEST_CLOCK = closed({
    "lago_id": uuid(), "name": text(), "frozen_time": moment("Its customers' now."),
    "status": text("`advancing` while what it was advanced over runs, then `ready`.", enum=("ready", "advancing")),
    "customers_count": integer("Its live customers.", minimum=0), "created_at": moment(), "updated_at": moment(),
}, "A test clock (a meterline addition, after Stripe's): the customers on it live on its frozen_time.")

OBJECT_SCHEMAS: dict[str, Schema] = {
    "BillableMetric": BILLABLE_METRIC, "ChargeProperties": CHARGE_PROPERTIES, "Charge": CHARGE, "Plan": PLAN,
    "Customer": CUSTOMER, "Subscription": SUBSCRIPTION, "SubscriptionExtended": SUBSCRIPTION_EXTENDED,
    "Fee": FEE, "BillingPeriod": BILLING_PERIOD, "Invoice": INVOICE, "InvoiceExtended": INVOICE_EXTENDED,
    "Coupon": COUPON, "AppliedCoupon": APPLIED_COUPON, "Credit": CREDIT,
    "Tax": TAX, "FeeAppliedTax": FEE_APPLIED_TAX, "InvoiceAppliedTax": INVOICE_APPLIED_TAX,
    "CreditNoteAppliedTax": CREDIT_NOTE_APPLIED_TAX,
    "CustomerUsage": CUSTOMER_USAGE, "CreditNote": CREDIT_NOTE, "WebhookEndpoint": WEBHOOK_ENDPOINT,
    "UsageThreshold": USAGE_THRESHOLD, "ApplicableUsageThreshold": APPLICABLE_USAGE_THRESHOLD,
    "AppliedUsageThreshold": APPLIED_USAGE_THRESHOLD,
    "AlertThreshold": ALERT_THRESHOLD, "TriggeredAlert": TRIGGERED_ALERT, "Alert": ALERT,
    "LifetimeUsage": LIFETIME_USAGE, "TestClock": TEST_CLOCK,
}
