"""The request bodies the API reads, as its handlers validate them (`rater.inputs.Input` and each
handler's readers). Unknown keys are ignored, as Lago does; `null` means not given. A Lago field
meterline does not have accepts only "not given" (null; false, [] and {} too) and is otherwise refused
with 422 `not_supported`.
"""

from __future__ import annotations

from core.domain.aggregation import AGGREGATION_TYPES
from core.domain.periods import BILLING_TIMES, INTERVALS
from core.domain.thresholds import ALERT_TYPES
from core.openapi.schema import (
    CURRENCY,
    Schema,
    array,
    input_text,
    integer,
    not_supported,
    nullable,
    open_object,
    text,
)
from rater.api.alerts import MAX_BATCH, MAX_DECIMALS, MAX_THRESHOLDS
from rater.api.customers import ADDRESS_FIELDS, TEXT_ATTRIBUTES, UNSUPPORTED, UNSUPPORTED_BILLING
from rater.api.invoices import VOID_OPTIONS
from rater.api.metrics import WEIGHTED_INTERVALS
from rater.api.plans import _UNSUPPORTED_LISTS, _UNSUPPORTED_PROPERTIES, CHARGE_MODELS
from rater.api.usage_thresholds import MAX_USAGE_THRESHOLDS, PLAN_OVERRIDES
from rater.billing.assemble import PAYMENT_STATUSES
from rater.billing.payments import MAX_METADATA
from rater.inputs import EARLIEST_MOMENT, LATEST_MOMENT, MAX_AMOUNT_CENTS, MAX_DAYS

_FLAG = {"type": ["boolean", "null"]}
_MOMENT = nullable(text(f"ISO 8601 (without an offset: UTC), from {EARLIEST_MOMENT.date()} to before "
                        f"{LATEST_MOMENT.date()} in UTC (`value_is_invalid` otherwise).", max_length=64,
                        fmt="date-time"))


def _choice(options: tuple[str, ...], description: str | None = None, required: bool = False) -> Schema:
    schema = text(description, enum=options)
    return schema if required else nullable(schema)


def metric_input(creating: bool) -> Schema:
    return open_object({
        "name": input_text(required=creating), "code": input_text(required=creating, identifier=True),
        "description": input_text(max_length=10_000),
        "aggregation_type": _choice(AGGREGATION_TYPES, required=creating),
        "field_name": input_text("Required unless the aggregation is `count_agg`."),
        "recurring": not_supported("metrics whose usage carries over from period to period (Lago's own "
                                   "`not_compatible_with_aggregation_type` for count, max and latest).",
                                   (False, None)),
        "weighted_interval": _choice(WEIGHTED_INTERVALS, "For `weighted_sum_agg` (the default)."),
        "expression": not_supported("computed event values."),
        "rounding_function": not_supported("rounding of aggregated units."),
        "rounding_precision": not_supported("rounding of aggregated units."),
        "filters": not_supported("metric filters.", (None,)),
    }, "While a subscribed plan charges for the metric, only its name and description can change "
       "(`not_editable_while_subscribed`).", required=("name", "code", "aggregation_type") if creating else ())


CHARGE_INPUT_PROPERTIES = {
    "type": ["object", "null"],
    "description": "What the charge model reads (other keys are dropped): `standard` amount; `graduated` "
                   "graduated_ranges; `volume` volume_ranges; `package` amount, package_size (whole, at least 1), "
                   "free_units (whole); `percentage` rate, fixed_amount. Amounts are non-negative decimals "
                   "(strings or numbers); ranges are contiguous from 0 or 1, whole bounds, the last to_value null "
                   "(`invalid_graduated_ranges`, `invalid_volume_ranges`, `invalid_amount`, ...). No U+0000.",
    "properties": {name: not_supported("Lago's grouping and per-event refinements of a charge.")
                   for name in _UNSUPPORTED_PROPERTIES},
}


TAX_CODES = nullable(array(input_text(required=True), "Codes of the organization's taxes: the whole new set (an "
                                                      "empty list removes them; an unknown code is 404 "
                                                      "`tax_not_found`)."))

CHARGE_INPUT = open_object({
    "id": input_text("An existing charge of the plan to update (PUT); a charge without one is added.",
                     max_length=64),
    "billable_metric_id": input_text("The metric charged for (its id or its code is required).", max_length=64),
    "billable_metric_code": input_text(),
    "charge_model": _choice(CHARGE_MODELS, required=True),
    "properties": CHARGE_INPUT_PROPERTIES,
    "invoice_display_name": input_text(),
    "min_amount_cents": nullable(integer("A period's charge below it is trued up to it by a separate fee.",
                                         minimum=0, maximum=MAX_AMOUNT_CENTS)),
    "pay_in_advance": not_supported("charges billed per event in advance (or Lago's "
                                    "`invalid_aggregation_type_or_charge_model`).", (False, None)),
    "invoiceable": {"enum": [True, None], "description": "false is refused (Lago's "
                                                         "`must_be_true_unless_pay_in_advance`)."},
    "prorated": not_supported("prorated charges (or Lago's `invalid_billable_metric_or_charge_model`).",
                              (False, None)),
    "regroup_paid_fees": not_supported("fees regrouped on payment."),
    "filters": not_supported("charge filters."),
    "tax_codes": TAX_CODES,
    "applied_pricing_unit": not_supported("pricing units."),
    "accepts_target_wallet": not_supported("wallet targets.", (False, None)),
    "code": not_supported("charge codes."),
}, required=("charge_model",))


USAGE_THRESHOLD_INPUT = open_object({
    "amount_cents": integer("The period's usage amount that triggers a progressive billing invoice "
                            "(`usage_thresholds: missing_amount_cents` when missing).", minimum=1,
                            maximum=MAX_AMOUNT_CENTS),
    "threshold_display_name": input_text(),
    "recurring": {**_FLAG, "description": "At most one (`multiple_recurring_thresholds`): every further "
                                          "`amount_cents` past the highest fixed threshold triggers one again."},
}, required=("amount_cents",))

USAGE_THRESHOLDS = nullable(array(
    USAGE_THRESHOLD_INPUT, f"Progressive billing thresholds: the new list (an empty one removes them). At most "
                           f"{MAX_USAGE_THRESHOLDS} (`too_many_thresholds`); an amount once per `recurring` value "
                           f"(`duplicated_values`).", max_items=MAX_USAGE_THRESHOLDS))


def plan_input(creating: bool) -> Schema:
    return open_object({
        "name": input_text(required=creating), "code": input_text(required=creating, identifier=True),
        "invoice_display_name": input_text(), "description": input_text(max_length=10_000),
        "interval": _choice(INTERVALS, "Cannot change while the plan is subscribed.", required=creating),
        "amount_cents": integer(minimum=0, maximum=MAX_AMOUNT_CENTS) if creating else
        nullable(integer(minimum=0, maximum=MAX_AMOUNT_CENTS)),
        "amount_currency": text(pattern=CURRENCY) if creating else nullable(text(pattern=CURRENCY)),
        "pay_in_advance": _FLAG,
        "bill_charges_monthly": {**_FLAG, "description": "A yearly plan invoices its usage monthly; ignored "
                                                         "(stored null) for other intervals."},
        "trial_period": nullable(integer("Whole days.", minimum=0, maximum=MAX_DAYS)),
        "charges": nullable(array(CHARGE_INPUT, "On PUT, the plan's new list of charges: existing ones left "
                                                "out are removed.")),
        "usage_thresholds": USAGE_THRESHOLDS,
        "tax_codes": TAX_CODES,
        **{name: not_supported("Lago plan features meterline does not bill.") for name in _UNSUPPORTED_LISTS},
        "minimum_commitment": not_supported("minimum commitments."),
    }, required=("name", "code", "interval", "amount_cents", "amount_currency") if creating else ())


BILLING_CONFIGURATION = nullable(open_object({
    "invoice_grace_period": nullable(integer("Days a draft waits before it is finalized.", minimum=0,
                                             maximum=MAX_DAYS)),
    **{name: not_supported("payment providers and document settings.") for name in UNSUPPORTED_BILLING},
}))

CUSTOMER_INPUT = open_object({
    "external_id": input_text("A customer is created, or the live one with this id changed (only the keys given).",
                              required=True, identifier=True),
    "name": input_text(), "email": input_text(),
    "currency": nullable(text(pattern=CURRENCY)),
    "timezone": nullable(text("An IANA timezone (`invalid_timezone` otherwise).", max_length=64)),
    "invoice_grace_period": nullable(integer(minimum=0, maximum=MAX_DAYS)),
    "net_payment_term": nullable(integer("Days from an invoice's issuing date to its payment due date.",
                                         minimum=0, maximum=MAX_DAYS)),
    "billing_configuration": BILLING_CONFIGURATION,
    **{name: input_text() for name in TEXT_ATTRIBUTES},
    "account_type": {"enum": ["customer", None], "description": "`partner` (self-billing) is refused "
                                                                "(`not_supported`)."},
    "customer_type": _choice(("company", "individual")),
    "shipping_address": nullable(open_object({name: input_text() for name in ADDRESS_FIELDS})),
    "finalize_zero_amount_invoice": _choice(("inherit", "finalize", "skip"),
                                            "`skip`: a $0 invoice is closed instead of finalized."),
    "tax_codes": TAX_CODES,
    "test_clock_id": nullable(text("The test clock it lives on (a meterline addition): set when it is created or "
                                   "before its first subscription (422 `customer_has_history` after); 404 "
                                   "`test_clock_not_found`.", fmt="uuid")),
    **{name: not_supported("Lago customer features meterline does not have.") for name in UNSUPPORTED},
}, required=("external_id",))

PLAN_OVERRIDES_INPUT = nullable(open_object({
    "usage_thresholds": {**USAGE_THRESHOLDS, "description": "The subscription's own progressive billing thresholds, "
                                                            "which replace its plan's (an empty list: its plan's "
                                                            "apply)."},
    **{name: not_supported("a per-subscription plan: meterline bills the plan as it is.") for name in PLAN_OVERRIDES},
}, "Only `usage_thresholds` is taken."))
PROGRESSIVE = {
    "plan_overrides": PLAN_OVERRIDES_INPUT,
    "usage_thresholds": {**USAGE_THRESHOLDS, "description": "The same as `plan_overrides.usage_thresholds` (where "
                                                            "Lago's newer API takes them); not both "
                                                            "(`value_is_invalid`)."},
    "progressive_billing_disabled": {**_FLAG, "description": "No progressive billing invoice for this subscription."},
}

SUBSCRIPTION_INPUT = open_object({
    "external_customer_id": input_text("An unknown customer is created.", required=True, identifier=True),
    "plan_code": input_text("With the external_id of the customer's live subscription and another plan: a plan "
                            "change (an upgrade at once, a downgrade at the period's end).",
                            required=True, identifier=True),
    "external_id": input_text("A terminated subscription's external_id can be used again.",
                              required=True, identifier=True),
    "name": input_text(), "billing_time": _choice(BILLING_TIMES),
    "subscription_at": {**_MOMENT, "description": "In the future: the subscription is pending until then."},
    "ending_at": {**_MOMENT, "description": "After subscription_at."},
    **PROGRESSIVE,
}, "With a plan change, the progressive billing fields are the new subscription's (without them it has its new "
   "plan's thresholds, and the current one's `progressive_billing_disabled`).",
    required=("external_customer_id", "plan_code", "external_id"))

SUBSCRIPTION_UPDATE = open_object({
    "plan_code": input_text("Another plan: a plan change, as `POST /subscriptions` makes it.", identifier=True),
    "name": input_text(), "ending_at": {**_MOMENT, "description": "In the future."},
    "subscription_at": {**_MOMENT, "description": "Changed only while the subscription is pending."},
    **PROGRESSIVE,
}, "With a plan change, the progressive billing fields are the new subscription's.")

ALERT_THRESHOLD_INPUT = open_object({
    "code": input_text(),
    "value": {"anyOf": [integer(minimum=1, maximum=MAX_AMOUNT_CENTS),
                        text(pattern=f"^[0-9]{{1,16}}(\\.[0-9]{{1,{MAX_DECIMALS}}})?$")],
              "description": f"Cents for the amount types, units otherwise: a number or a decimal string above 0 "
                             f"(usage starts at 0: a threshold at 0 would never fire), at most "
                             f"{MAX_AMOUNT_CENTS} and {MAX_DECIMALS} decimals (`thresholds:value` `value_is_invalid`; "
                             f"`value_is_mandatory` when missing; `recurring_value_is_negative` for a recurring 0)."},
    "recurring": {**_FLAG, "description": "At most one recurring threshold (`thresholds:recurring`)."},
}, required=("value",))


def alert_input(creating: bool) -> Schema:
    kind = text("`invalid_type` otherwise.", enum=ALERT_TYPES) if creating else nullable(text(
        "The alert's own type, or `value_is_invalid`: a type never changes.", enum=ALERT_TYPES))
    return open_object({
        "alert_type": kind,
        "direction": nullable(text("Only `increasing` (Lago's `decreasing` alerts are `not_supported`).",
                                   enum=("increasing",))),
        "code": input_text("Unique among the subscription's live alerts (`value_already_exist`).", required=creating,
                           identifier=True),
        "name": input_text(),
        "billable_metric_code": input_text("A live metric of the organization (404 otherwise): required for the "
                                           "billable_metric_* types, refused for the others (`billable_metric`: "
                                           "`value_is_mandatory`, `value_must_be_blank`).", identifier=True),
        "thresholds": array(ALERT_THRESHOLD_INPUT, "Distinct (value, recurring) pairs (`duplicate_threshold_values`)"
                                                   f"; at most {MAX_THRESHOLDS} (`too_many_thresholds`)." +
                            ("" if creating else " The alert's new list."), min_items=1, max_items=MAX_THRESHOLDS)
        if creating else nullable(array(ALERT_THRESHOLD_INPUT, "The alert's new list.", max_items=MAX_THRESHOLDS)),
    }, "One live alert per type (per type and metric for the billable_metric_* types): `base: "
       "alert_already_exists`." if creating else None,
        required=("alert_type", "code", "thresholds") if creating else ())


ALERT_CREATE = {"type": "object", "properties": {
    "alert": alert_input(True),
    "alerts": array(alert_input(True), f"Several alerts, all or none (errors keyed by index); at most {MAX_BATCH} "
                                       f"(`too_many_alerts`). Taken when it holds something.",
                    min_items=1, max_items=MAX_BATCH),
}, "anyOf": [{"required": ["alert"]}, {"required": ["alerts"]}]}

LIFETIME_USAGE_INPUT = open_object({
    "external_historical_usage_amount_cents": not_supported("a historical usage amount.", (None,)),
})

INVOICE_METADATA_INPUT = open_object({
    "id": input_text("An item's lago_id: that item is updated (else the one with this key, else one is added).",
                     max_length=36, identifier=True),
    "key": input_text("Once per invoice (`metadata.key`: `value_already_exist`).", max_length=20, required=True),
    "value": input_text(max_length=140, required=True),
}, required=("key", "value"))

INVOICE_UPDATE_INPUT = open_object({
    "payment_status": _choice(PAYMENT_STATUSES, "405 `payment_status_update_on_draft_invoice` when it would change "
                                                "a draft's (`payment_status_update_on_voided_invoice`: a voided "
                                                "one's); `succeeded` ends `payment_overdue`."),
    "metadata": nullable(array(INVOICE_METADATA_INPUT, f"The invoice's whole metadata: the items left out are "
                                                       f"deleted. At most {MAX_METADATA} (`invalid_count`); 405 "
                                                       f"`metadata_on_draft_invoice` on a draft.",
                               max_items=MAX_METADATA)),
})

INVOICE_VOID_INPUT = open_object({name: not_supported("a credit note or a refund issued with the void.", (None,))
                                  for name in VOID_OPTIONS})

WEBHOOK_ENDPOINT_INPUT = open_object({
    "webhook_url": input_text("An http or https URL with a host.", max_length=2048, required=True),
    "name": input_text(),
    "signature_algo": {"enum": ["hmac", None], "description": "`jwt` is `value_is_invalid`: meterline signs with "
                                                              "HMAC only."},
    "event_types": not_supported("an endpoint receives every webhook type."),
}, required=("webhook_url",))


def tax_input(creating: bool) -> Schema:
    rate = {"anyOf": [{"type": "number", "minimum": 0, "maximum": 100},
                      text(pattern="^\\s*[0-9]+(\\.[0-9]{1,5})?\\s*$")],
            "description": "A percentage from 0 to 100, at most 5 decimals (`value_is_out_of_range`)."}
    return open_object({
        "name": input_text(required=creating), "code": input_text(required=creating, identifier=True),
        "rate": rate if creating else {**rate, "anyOf": [*rate["anyOf"], {"type": "null"}]},
        "description": input_text(max_length=10_000),
        "applied_to_organization": _FLAG,
    }, required=("name", "code", "rate") if creating else ())


_PERCENTAGE = {"anyOf": [{"type": "number", "exclusiveMinimum": 0, "maximum": 100},
                         text(pattern="^\\s*[0-9]+(\\.[0-9]{1,5})?\\s*$"), {"type": "null"}],
               "description": "More than 0, at most 100, 5 decimals at most (`value_is_out_of_range`)."}


def coupon_input(creating: bool) -> Schema:
    return open_object({
        "name": input_text(required=creating), "code": input_text(required=creating, identifier=True),
        "description": input_text(max_length=10_000),
        "coupon_type": _choice(("fixed_amount", "percentage"), required=creating),
        "amount_cents": nullable(integer("A fixed amount's (required).", minimum=1, maximum=MAX_AMOUNT_CENTS)),
        "amount_currency": nullable(text("A fixed amount's (required).", pattern=CURRENCY)),
        "percentage_rate": _PERCENTAGE,
        "frequency": _choice(("once", "recurring", "forever"), required=creating),
        "frequency_duration": nullable(integer("Invoices a `recurring` coupon reduces (required).", minimum=1)),
        "reusable": _FLAG,
        "expiration": _choice(("no_expiration", "time_limit"), required=creating),
        "expiration_at": nullable(text("ISO 8601; with `time_limit` (required), from today on (`invalid_date`).")),
        "applies_to": nullable(open_object({
            "plan_codes": nullable(array(input_text(required=True))),
            "billable_metric_codes": nullable(array(input_text(required=True))),
        }, "Plans or metrics, not both (405 `only_one_limitation_type_per_coupon_allowed`); once applied, not "
           "changeable (`not_editable_once_applied`).")),
    }, required=("name", "code", "coupon_type", "frequency", "expiration") if creating else ())


APPLIED_COUPON_INPUT = open_object({
    "external_customer_id": input_text(required=True, identifier=True),
    "coupon_code": input_text(required=True, identifier=True),
    "amount_cents": nullable(integer(minimum=1, maximum=MAX_AMOUNT_CENTS)),
    "amount_currency": nullable(text(pattern=CURRENCY)),
    "percentage_rate": _PERCENTAGE,
    "frequency": _choice(("once", "recurring", "forever")),
    "frequency_duration": nullable(integer(minimum=1)),
}, required=("external_customer_id", "coupon_code"))

TEST_CLOCK_INPUT = open_object({
    "name": input_text(required=True),
    "frozen_time": text("ISO 8601 (without an offset: UTC), from 2000: its customers' now.", fmt="date-time"),
}, required=("name", "frozen_time"))

TEST_CLOCK_ADVANCE = open_object({
    "frozen_time": text("ISO 8601, after the clock's frozen_time (422 `must_be_after_current_frozen_time`).",
                        fmt="date-time"),
}, required=("frozen_time",))
