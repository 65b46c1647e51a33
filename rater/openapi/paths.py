"""The API's operations: one entry per route and method the API serves (a test holds the two together)."""

from __future__ import annotations

from typing import Any

from core.domain.aggregation import AGGREGATION_TYPES
from core.domain.lifecycle import STATUSES
from core.openapi.document import (
    OPENAPI_PATH,
    document,
    json_content,
    operation,
    path_parameter,
    query_parameter,
    self_path,
)
from core.openapi.events import EVENT_PATHS, EVENT_SCHEMAS
from core.openapi.ops import ops_paths
from core.openapi.schema import Schema, answer, array, closed, integer, nullable, number, page_of, ref, text, wrapped
from rater.api.common import DEFAULT_PER_PAGE, MAX_PAGE, MAX_PER_PAGE
from rater.billing.assemble import VISIBLE_STATUSES
from rater.openapi import inputs
from rater.openapi.objects import OBJECT_SCHEMAS

DESCRIPTION = """meterline's API: the part of Lago's v1 API it serves (billable metrics, plans, customers,
subscriptions and their alerts, current and lifetime usage, invoices, credit notes, taxes, coupons, webhook
endpoints, events),
wire-compatible with Lago's clients,
plus its own operations routes. Where meterline differs from Lago the schemas say so: a Lago feature it
does not bill is refused with 422 `{"<field>": ["not_supported"]}`, never stored and ignored, and a field
Lago types as non-nullable is never null (text meterline has no value for is "", anything else is left
out). Every answer carries an `X-Request-Id` header (the request's own when it sent one)."""


PAGINATION_META = closed({
    "current_page": integer("0 when there is nothing to list.", minimum=0),
    "next_page": nullable(integer(minimum=2)),
    "prev_page": nullable(integer(minimum=1)),
    "total_pages": integer(minimum=0),
    "total_count": integer(minimum=0),
})
PAGE_PARAMETERS = [
    query_parameter("page", integer(minimum=1, maximum=MAX_PAGE), "Page number, from 1 (400 otherwise)."),
    query_parameter("per_page", integer(minimum=1, maximum=MAX_PER_PAGE),
                    f"Objects per page (default {DEFAULT_PER_PAGE}; 400 outside 1 to {MAX_PER_PAGE})."),
]


# The examples make Segment's Team plan (meterline's example: MTUs priced in graduated tiers), in this order.
EXAMPLES: dict[str, dict[str, Any]] = {
    "billable_metric": {"name": "Monthly tracked users", "code": "monthly_tracked_users",
                        "aggregation_type": "unique_count_agg", "field_name": "user_id"},
    "plan": {"name": "Team", "code": "segment_team", "interval": "monthly", "amount_cents": 12000,
             "amount_currency": "USD", "pay_in_advance": True, "trial_period": 14, "charges": [{
                 "billable_metric_code": "monthly_tracked_users", "charge_model": "graduated",
                 "properties": {"graduated_ranges": [
                     {"from_value": 0, "to_value": 10000, "per_unit_amount": "0", "flat_amount": "0"},
                     {"from_value": 10001, "to_value": None, "per_unit_amount": "0.012", "flat_amount": "0"}]}}]},
    "customer": {"external_id": "acme", "name": "Acme Inc", "currency": "USD", "timezone": "America/New_York"},
    "subscription": {"external_customer_id": "acme", "plan_code": "segment_team", "external_id": "sub-acme"},
    "tax": {"name": "VAT", "code": "vat_20", "rate": "20.0", "description": "Standard VAT"},
    "coupon": {"name": "Welcome", "code": "welcome_10", "coupon_type": "fixed_amount", "amount_cents": 1000,
               "amount_currency": "USD", "frequency": "once", "expiration": "no_expiration"},
}
UPDATE_EXAMPLES: dict[str, dict[str, Any]] = {
    "billable_metric": {"description": "Distinct user_id values in the period"},
    "plan": {"description": "Segment's Team plan"},
    "subscription": {"name": "Acme on Team"},
    "tax": {"description": "Standard VAT (20%)"},
    "coupon": {"description": "$10 off the first invoice"},
}
_KEYS = {"billable_metric": "code", "plan": "code", "customer": "external_id", "subscription": "external_id",
         "tax": "code", "coupon": "code"}


def _crud(tag: str, root: str, plural: str, schema: str, key: str, resource: str, *, create: Schema,
          update: Schema | None, list_parameters: list[dict[str, Any]], writes_find: bool = False,
          delete_refused: bool = False) -> dict[str, Any]:
    """The usual five routes of a catalog object (`update` None: no PUT). `writes_find`: a write names other
    objects (404 when one is unknown); `delete_refused`: a delete can be refused (422)."""
    write_errors = (404, 422) if writes_find else (422,)
    one = answer(root, ref(schema))
    by_key = [path_parameter(key, f"The {resource}'s {key}.", EXAMPLES[root][_KEYS[root]])]
    name = "".join(part.capitalize() for part in root.split("_"))
    collection = {
        "post": operation(f"create{name}", f"Create a {resource.replace('_', ' ')}", tag, one, write_errors,
                          body=wrapped(root, create), example={root: EXAMPLES[root]}),
        "get": operation(f"list{name}s", f"List {plural}", tag, page_of(plural, ref(schema)), (400,),
                         parameters=[*PAGE_PARAMETERS, *list_parameters]),
    }
    item: dict[str, Any] = {"get": operation(f"find{name}", f"Find a {resource.replace('_', ' ')}", tag, one, (404,),
                                             parameters=by_key)}
    if update is not None:
        item["put"] = operation(f"update{name}", f"Update a {resource.replace('_', ' ')}", tag, one, (404, 422),
                                parameters=by_key, body=wrapped(root, update),
                                example={root: UPDATE_EXAMPLES[root]})
    item["delete"] = operation(f"destroy{name}", f"Delete a {resource.replace('_', ' ')}", tag, one,
                               (404, 422) if delete_refused else (404,), parameters=by_key)
    return {f"/api/v1/{plural}": collection, f"/api/v1/{plural}/{{{key}}}": item}


def _filter(name: str, schema: Schema, description: str) -> dict[str, Any]:
    return query_parameter(name, schema, description)


def _add_query(operation: dict[str, Any], parameters: list[dict[str, Any]]) -> None:
    """More query parameters for an operation built without them: a value can be refused (422)."""
    operation["parameters"] = [*operation.get("parameters", ()), *parameters]
    operation["responses"]["422"] = {"$ref": "#/components/responses/Validation"}
    operation["responses"] = dict(sorted(operation["responses"].items()))


_SUBSCRIPTION_STATUS = [_filter("status", text(enum=STATUSES), "Which status to find (default `active`; "
                                                                "`value_is_invalid` otherwise).")]


def catalog_paths() -> dict[str, Any]:
    paths: dict[str, Any] = {}
    paths.update(_crud("billable_metrics", "billable_metric", "billable_metrics", "BillableMetric", "code",
                       "billable_metric", create=inputs.metric_input(True), update=inputs.metric_input(False),
                       list_parameters=[
                           _filter("aggregation_types[]", array(text(enum=AGGREGATION_TYPES)), "Only these types."),
                           _filter("recurring", text(enum=("true", "false")), "Only (non-)recurring metrics."),
                       ], delete_refused=True))
    paths.update(_crud("plans", "plan", "plans", "Plan", "code", "plan", create=inputs.plan_input(True),
                       update=inputs.plan_input(False), list_parameters=[], writes_find=True))
    paths.update(_crud("taxes", "tax", "taxes", "Tax", "code", "tax", create=inputs.tax_input(True),
                       update=inputs.tax_input(False), list_parameters=[]))
    paths["/api/v1/taxes"]["get"]["operationId"] = "findAllTaxes"
    paths.update(_crud("coupons", "coupon", "coupons", "Coupon", "code", "coupon", create=inputs.coupon_input(True),
                       update=inputs.coupon_input(False), list_parameters=[], writes_find=True))
    for method in ("post", "put"):  # limited both to plans and to metrics
        found = paths["/api/v1/coupons" if method == "post" else "/api/v1/coupons/{code}"][method]["responses"]
        found["405"] = {"$ref": "#/components/responses/NotAllowed"}
        paths["/api/v1/coupons" if method == "post" else "/api/v1/coupons/{code}"][method]["responses"] = dict(
            sorted(found.items()))
    applied = answer("applied_coupon", ref("AppliedCoupon"))
    listed = page_of("applied_coupons", ref("AppliedCoupon"))
    filters = [*PAGE_PARAMETERS, _filter("status", text(enum=("active", "terminated")), "Only these (400 otherwise)."),
               _filter("coupon_code[]", array(text()), "Only these coupons'.")]
    by_customer = [path_parameter("external_customer_id", "The customer's external_id.", "acme")]
    paths["/api/v1/applied_coupons"] = {
        "post": operation("createAppliedCoupon", "Apply a coupon to a customer", "coupons", applied, (404, 422),
                          body=wrapped("applied_coupon", inputs.APPLIED_COUPON_INPUT),
                          example={"applied_coupon": {"external_customer_id": "acme", "coupon_code": "welcome_10"}}),
        "get": operation("findAllAppliedCoupons", "List applied coupons", "coupons", listed, (400,),
                         parameters=[*filters, _filter("external_customer_id", text(), "Only this customer's.")]),
    }
    paths["/api/v1/customers/{external_customer_id}/applied_coupons"] = {"get": operation(
        "findAllCustomerAppliedCoupons", "List a customer's applied coupons", "coupons", listed, (400, 404),
        parameters=[*by_customer, *filters])}
    paths["/api/v1/customers/{external_customer_id}/applied_coupons/{applied_coupon_id}"] = {"delete": operation(
        "deleteAppliedCoupon", "Terminate an applied coupon", "coupons", applied, (404,),
        parameters=[*by_customer, path_parameter("applied_coupon_id", "The applied coupon's lago_id.")])}
    paths.update(_crud("customers", "customer", "customers", "Customer", "external_id", "customer",
                       create=inputs.CUSTOMER_INPUT, update=None, writes_find=True, list_parameters=[
                           _filter("currencies[]", array(text(max_length=3)), "Only customers billed in these."),
                           _filter("account_type[]", array(text(enum=("customer", "partner"))), "Only these."),
                           _filter("search_term", text(), "Part of the external_id, name or email."),
                       ]))
    paths["/api/v1/customers"]["post"]["summary"] = "Create a customer, or update the one with this external_id"
    paths.update(_crud("subscriptions", "subscription", "subscriptions", "SubscriptionExtended", "external_id",
                       "subscription", create=inputs.SUBSCRIPTION_INPUT, update=inputs.SUBSCRIPTION_UPDATE,
                       list_parameters=[
                           _filter("status[]", array(text(enum=STATUSES)), "Statuses to list (default active)."),
                           _filter("status", array(text(enum=STATUSES)), "The same, when status[] is not given."),
                           _filter("external_customer_id", text(), "Only this customer's."),
                           _filter("plan_code", text(), "Only this plan's."),
                       ], writes_find=True))
    subscriptions = paths["/api/v1/subscriptions/{external_id}"]
    _add_query(subscriptions["get"], _SUBSCRIPTION_STATUS)
    _add_query(subscriptions["put"], _SUBSCRIPTION_STATUS)
    _add_query(subscriptions["delete"], [
        *_SUBSCRIPTION_STATUS,
        _filter("on_termination_invoice", text(enum=("generate", "skip")),
                "`generate` (the default): the arrears up to now are invoiced."),
        _filter("on_termination_credit_note", text(enum=("credit", "skip", "refund", "offset")),
                "`credit` (the default): the unused days of a fee paid in advance become a credit note. `refund` "
                "and `offset` are refused (`not_supported`)."),
    ])
    subscriptions["delete"]["responses"]["200"]["content"] = json_content(answer("subscription", ref("Subscription")))
    paths["/api/v1/subscriptions"]["get"]["responses"]["200"]["content"] = json_content(
        page_of("subscriptions", ref("Subscription")))
    return paths


# The example makes an alert on the example subscription (sub-acme), so the alert routes reach a live one.
ALERT_EXAMPLE: dict[str, Any] = {"alert_type": "billable_metric_current_usage_units", "code": "mtu_warning",
                                 "name": "MTUs", "billable_metric_code": "monthly_tracked_users",
                                 "thresholds": [{"code": "warn", "value": 8000}, {"code": "alert", "value": "10000"},
                                                {"value": 5000, "recurring": True}]}
_SUBSCRIPTION_OF_ALERTS = [
    path_parameter("external_id", "The subscription's external_id: a live (active or pending) subscription.",
                   EXAMPLES["subscription"]["external_id"]),
    _filter("subscription_status", text(enum=STATUSES), "`active` or `pending`: the subscription is looked up with "
                                                        "this status (default: either). `terminated` and `canceled` "
                                                        "are refused (`not_supported`)."),
]


def alert_paths() -> dict[str, Any]:
    one, many = answer("alert", ref("Alert")), answer("alerts", array(ref("Alert")))
    by_code = [*_SUBSCRIPTION_OF_ALERTS, path_parameter("code", "The alert's code.", ALERT_EXAMPLE["code"])]
    return {
        "/api/v1/subscriptions/{external_id}/alerts": {
            "post": operation(
                "createSubscriptionAlert", "Create an alert, or several at once", "subscriptions",
                {"anyOf": [one, many]}, (404, 422), parameters=_SUBSCRIPTION_OF_ALERTS,
                description="`{\"alert\": {...}}` answers `{\"alert\": {...}}`; `{\"alerts\": [...]}` creates "
                            "them all or none and answers `{\"alerts\": [...]}`. 404 `billable_metric_not_found` "
                            "for an unknown metric (in a batch, 422 keyed by its index).",
                body=inputs.ALERT_CREATE, example={"alert": ALERT_EXAMPLE}),
            "get": operation("getSubscriptionAlerts", "List a subscription's alerts", "subscriptions",
                             page_of("alerts", ref("Alert")), (400, 404),
                             parameters=[*_SUBSCRIPTION_OF_ALERTS, *PAGE_PARAMETERS]),
            "delete": operation("deleteAllSubscriptionAlerts", "Delete a subscription's alerts", "subscriptions",
                                many, (404,), parameters=_SUBSCRIPTION_OF_ALERTS,
                                description="Deviation: Lago answers an empty body; meterline lists the alerts "
                                            "deleted."),
        },
        "/api/v1/subscriptions/{external_id}/alerts/{code}": {
            "get": operation("getSubscriptionAlert", "Find an alert", "subscriptions", one, (404,),
                             parameters=by_code),
            "put": operation("updateSubscriptionAlert", "Update an alert", "subscriptions", one, (404, 422),
                             parameters=by_code, body=wrapped("alert", inputs.alert_input(False)),
                             example={"alert": {"name": "Monthly tracked users"}}),
            "delete": operation("deleteSubscriptionAlert", "Delete an alert (its code can be used again)",
                                "subscriptions", one, (404,), parameters=by_code),
        },
        "/api/v1/subscriptions/{external_id}/lifetime_usage": {
            "get": operation("getSubscriptionLifetimeUsage", "The usage of a subscription since its first start",
                             "subscriptions", answer("lifetime_usage", ref("LifetimeUsage")), (404,),
                             parameters=_LIFETIME),
            "put": operation("updateSubscriptionLifetimeUsage", "Set a historical usage amount: refused",
                             "subscriptions", answer("lifetime_usage", ref("LifetimeUsage")), (404, 422),
                             parameters=_LIFETIME, body=wrapped("lifetime_usage", inputs.LIFETIME_USAGE_INPUT),
                             example={"lifetime_usage": {}},
                             description="`external_historical_usage_amount_cents` is `not_supported`; without it "
                                         "the lifetime usage is answered unchanged."),
        },
    }


_LIFETIME = [path_parameter("external_id", "The subscription's external_id (its active subscription, else its "
                                           "newest; 404 `lifetime_usage_not_found`).",
                            EXAMPLES["subscription"]["external_id"])]


def _usage_parameters() -> list[dict[str, Any]]:
    return [path_parameter("external_id", "The customer's external_id.", "acme"),
            query_parameter("external_subscription_id", text(), "The subscription (400 when missing).",
                            required=True, example="sub-acme"),
            query_parameter("apply_taxes", text(enum=("true", "false")),
                            "Tax the usage fees (default true; 400 otherwise).")]


def _sse_event(name: str, data: Schema) -> Schema:
    return {"type": "object", "required": ["event", "data"], "properties": {
        "event": {"const": name},
        "data": {"type": "string", "contentMediaType": "application/json", "contentSchema": data}}}


# Each event of the stream (a `: keepalive` comment every 15 s of quiet besides).
USAGE_EVENT: Schema = {"oneOf": [
    _sse_event("customer_usage", answer("customer_usage", ref("CustomerUsage"))),
    _sse_event("error", {"anyOf": [ref("ErrorNotFound"), ref("ErrorNotAllowed"), ref("ErrorUnavailable")]}),
]}


def billing_paths() -> dict[str, Any]:
    invoice = answer("invoice", ref("InvoiceExtended"))
    by_id = [path_parameter("lago_id", "The invoice's lago_id.")]
    return {
        "/api/v1/customers/{external_id}/current_usage": {"get": operation(
            "findCustomerCurrentUsage", "The current period's usage and amount, live", "customers",
            answer("customer_usage", ref("CustomerUsage")), (400, 404, 405), parameters=_usage_parameters())},
        "/api/v1/customers/{external_id}/current_usage/stream": {"get": operation(
            "streamCustomerCurrentUsage", "The current usage as Server-Sent Events, sent again whenever it changes",
            "customers", None, (400, 404, 405), parameters=_usage_parameters(),
            description="Events `customer_usage` (data: `{\"customer_usage\": CustomerUsage}`); a subscription "
                        "that stops being active ends the stream with an `error` event.",
            ok_content={"text/event-stream": {"schema": USAGE_EVENT}})},
        "/api/v1/invoices": {"get": operation(
            "listInvoices", "List invoices", "invoices", page_of("invoices", ref("Invoice")), (400, 422),
            parameters=[*PAGE_PARAMETERS,
                        _filter("external_customer_id", text(), "Only this customer's."),
                        _filter("statuses[]", array(text(enum=VISIBLE_STATUSES)), "Only these statuses."),
                        _filter("status", array(text(enum=VISIBLE_STATUSES)), "The same, when statuses[] is not "
                                                                                "given."),
                        _filter("issuing_date_from", text(fmt="date"), "YYYY-MM-DD (400 otherwise)."),
                        _filter("issuing_date_to", text(fmt="date"), "YYYY-MM-DD (400 otherwise).")])},
        "/api/v1/invoices/{lago_id}": {
            "get": operation("findInvoice", "Find an invoice", "invoices", invoice, (404,), parameters=by_id),
            "put": operation(
                "updateInvoice", "Record an invoice's payment status and replace its metadata", "invoices", invoice,
                (400, 404, 405, 422), parameters=by_id, body=wrapped("invoice", inputs.INVOICE_UPDATE_INPUT),
                description="`invoice.payment_status_updated` is sent when the payment status changed.",
                example={"invoice": {"payment_status": "succeeded",
                                     "metadata": [{"key": "payment_ref", "value": "wire 2026-07-03"}]}})},
        "/api/v1/invoices/{lago_id}/void": {"post": operation(
            "voidInvoice", "Void a final invoice not paid", "invoices", invoice, (400, 404, 405, 422),
            parameters=by_id, body=inputs.INVOICE_VOID_INPUT, body_required=False,
            description="405 `not_voidable` for a draft, a paid or a voided invoice. Nothing is due on it any more; "
                        "the periods it billed stay billed. `invoice.voided` is sent.")},
        "/api/v1/invoices/{lago_id}/finalize": {"put": operation(
            "finalizeInvoice", "Finalize a draft now (a final invoice is answered unchanged)", "invoices", invoice,
            (404,), parameters=by_id)},
        "/api/v1/invoices/{lago_id}/refresh": {"put": operation(
            "refreshInvoice", "Recount a draft's usage (a final invoice is answered unchanged)", "invoices",
            invoice, (404,), parameters=by_id)},
        "/api/v1/invoices/{lago_id}/download": {"post": operation(
            "downloadInvoice", "Make the invoice's PDF and answer the invoice with a signed link to it", "invoices",
            invoice, (404,), parameters=by_id,
            description="A final invoice's document is drawn once and never changes; a draft's (DRAFT across each "
                        "page) is kept until the draft is refreshed or finalized. `file_url` works without the API "
                        "key until it expires (METERLINE_DOCUMENT_LINK_TTL_S). `invoice.generated` is sent for "
                        "each document drawn.")},
        "/api/v1/invoices/{lago_id}/document.pdf": {"get": operation(
            "getInvoiceDocument", "The invoice's PDF, by the signed link `file_url` names", "invoices", None,
            (403, 404), public=True,
            ok_content={"application/pdf": {"schema": {"type": "string", "contentMediaType": "application/pdf"}}},
            parameters=[*by_id, query_parameter("expires", text(pattern="^[0-9]+$"), "When the link expires (Unix "
                                                                                     "seconds).", required=True),
                        query_parameter("signature", text(pattern="^[0-9a-f]{64}$"), "HMAC-SHA256 of the invoice "
                                        "and expiry with the organization's document key.", required=True)],
            description="No API key: the signature is the credential. 403 `invalid_signature` for a link altered, "
                        "expired, or naming no invoice; 404 `document_not_found` when the invoice has no "
                        "document now (a draft refreshed since its link was made).")},
    }


def test_clock_paths() -> dict[str, Any]:
    clock = answer("test_clock", ref("TestClock"))
    by_id = [path_parameter("lago_id", "The test clock's lago_id.")]
    return {
        "/api/v1/test_clocks": {
            "post": operation("createTestClock", "Create a test clock", "test_clocks", clock, (422,),
                              body=wrapped("test_clock", inputs.TEST_CLOCK_INPUT),
                              example={"test_clock": {"name": "June rehearsal",
                                                      "frozen_time": "2026-06-01T00:00:00Z"}}),
            "get": operation("listTestClocks", "List test clocks", "test_clocks",
                             page_of("test_clocks", ref("TestClock")), (400,), parameters=PAGE_PARAMETERS)},
        "/api/v1/test_clocks/{lago_id}": {
            "get": operation("findTestClock", "Find a test clock", "test_clocks", clock, (404,), parameters=by_id),
            "delete": operation("destroyTestClock", "Delete a test clock, its customers and their subscriptions",
                                "test_clocks", clock, (404,), parameters=by_id)},
        "/api/v1/test_clocks/{lago_id}/advance": {"post": operation(
            "advanceTestClock", "Move a test clock forward and run what would have happened meanwhile",
            "test_clocks", clock, (404, 422), parameters=by_id, body=inputs.TEST_CLOCK_ADVANCE,
            example={"frozen_time": "2026-07-01T00:30:00Z"},
            description="Answered once its customers' activations, trial ends, invoices (every billing moment up "
                        "to the new time, in order), drafts finalized at their grace's end and overdue marks have "
                        "run (`status: ready`).")},
    }


def credit_note_paths() -> dict[str, Any]:
    one = answer("credit_note", ref("CreditNote"))
    by_id = [path_parameter("lago_id", "The credit note's lago_id.")]
    return {
        "/api/v1/credit_notes": {"get": operation(
            "listCreditNotes", "List credit notes (made by plan upgrades and terminations)", "credit_notes",
            page_of("credit_notes", ref("CreditNote")), (400,),
            parameters=[*PAGE_PARAMETERS, _filter("external_customer_id", text(), "Only this customer's.")])},
        "/api/v1/credit_notes/{lago_id}": {"get": operation(
            "findCreditNote", "Find a credit note", "credit_notes", one, (404,), parameters=by_id)},
        "/api/v1/credit_notes/{lago_id}/void": {"put": operation(
            "voidCreditNote", "Void what is left of a credit note", "credit_notes", one, (404, 405),
            description="405 `no_voidable_amount` once it is consumed or voided.", parameters=by_id)},
    }


def webhook_paths() -> dict[str, Any]:
    one = answer("webhook_endpoint", ref("WebhookEndpoint"))
    by_id = [path_parameter("lago_id", "The endpoint's lago_id.")]
    return {
        "/api/v1/webhook_endpoints": {
            "post": operation("createWebhookEndpoint", "Register a webhook endpoint", "webhook_endpoints", one,
                              (422,), body=wrapped("webhook_endpoint", inputs.WEBHOOK_ENDPOINT_INPUT),
                              example={"webhook_endpoint": {"webhook_url": "https://hooks.example.com/meterline"}}),
            "get": operation("listWebhookEndpoints", "List webhook endpoints", "webhook_endpoints",
                             page_of("webhook_endpoints", ref("WebhookEndpoint")), (400,), parameters=PAGE_PARAMETERS),
        },
        "/api/v1/webhook_endpoints/{lago_id}": {
            "get": operation("findWebhookEndpoint", "Find a webhook endpoint", "webhook_endpoints", one, (404,),
                             parameters=by_id),
            "delete": operation("destroyWebhookEndpoint", "Delete a webhook endpoint", "webhook_endpoints", one,
                                (404,), parameters=by_id),
        },
    }


_COUNT = nullable(integer(minimum=0))
OPS_DATA = closed({
    "refreshed_at": nullable(number("Unix seconds of the last good sample.")),
    "error": nullable(text("Why the last refresh failed.")), "group": nullable(text()),
    "partitions": array(closed({"partition": integer(minimum=0), "committed": integer(minimum=-1),
                                "end": integer(minimum=0), "lag": integer(minimum=0), "rate_per_s": number()})),
    "total_lag": _COUNT,
    "throughput": closed({"accepted_per_s": number(), "applied_per_s": number()}),
    "events": closed({"accepted": _COUNT, "applied": integer(minimum=0), "deduplicated": integer(minimum=0)}),
    "rejected": {"type": "object", "additionalProperties": integer(minimum=0), "description": "Per reason."},
    "last_invoice_run": closed({"at": _COUNT, "invoices": _COUNT, "runs": integer(minimum=0)}),
    "alerts": closed({"evaluated": integer(minimum=0), "fired": integer(minimum=0),
                      "lag": nullable(integer("Messages of touched subscriptions the alerts workers have not "
                                              "evaluated yet.", minimum=0)),
                      "recent": array({"type": "object"}, "The last alerts and progressive billing thresholds "
                                                          "fired, newest first.")}),
})


def ops_page_paths() -> dict[str, Any]:
    return {
        "/ops": {"get": operation("getOpsPage", "The ops page (self-contained HTML)", "operations", None,
                                  public=True, ok_content={"text/html": {"schema": text()}})},
        "/ops/data": {"get": operation("getOpsData", "The ops page's data: lag, throughput, rejections, billing",
                                       "operations", OPS_DATA, public=True)},
    }


def api_document() -> dict[str, Any]:
    paths = {**EVENT_PATHS, **catalog_paths(), **alert_paths(), **billing_paths(), **credit_note_paths(),
             **test_clock_paths(), **webhook_paths(),
             **ops_paths("api"),
             **ops_page_paths(), OPENAPI_PATH: self_path("Api")}
    return document("meterline API", DESCRIPTION, paths,
                    {**EVENT_SCHEMAS, **OBJECT_SCHEMAS, "PaginationMeta": PAGINATION_META})
