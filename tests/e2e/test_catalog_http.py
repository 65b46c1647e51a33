"""The catalog API over raw HTTP: what Lago's client cannot send (nulls, missing root keys, bad bodies),
exact error bodies, every serializer field, and pending subscriptions starting on time."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.builders import customer_body, metric_body, plan_body, subscription_body

BAD_PAGE = {"status": 400,
            "error": "BadRequest: page must be between 1 and 2147483647 and per_page between 1 and 1000"}
BAD_PAGE_NUMBER = {"status": 400, "error": "BadRequest: page and per_page must be integers"}

GRADUATED_OK = [
    {"from_value": 0, "to_value": 10, "per_unit_amount": "1", "flat_amount": "0"},
    {"from_value": 11, "to_value": None, "per_unit_amount": "0.5", "flat_amount": "0"},
]

METRIC_KEYS = {"lago_id", "name", "code", "description", "aggregation_type", "weighted_interval", "recurring",
               "rounding_function", "rounding_precision", "created_at", "field_name", "expression", "filters"}
# minimum_commitment is left out: Lago types it non-nullable, and meterline refuses commitments
PLAN_KEYS = {"lago_id", "name", "invoice_display_name", "created_at", "code", "interval", "description",
             "amount_cents", "amount_currency", "trial_period", "pay_in_advance", "bill_charges_monthly",
             "bill_fixed_charges_monthly", "charges", "fixed_charges", "taxes",
             "usage_thresholds", "entitlements", "metadata"}
CHARGE_KEYS = {"lago_id", "lago_billable_metric_id", "billable_metric_code", "code", "invoice_display_name",
               "created_at", "charge_model", "pay_in_advance", "invoiceable", "regroup_paid_fees", "prorated",
               "min_amount_cents", "properties", "filters", "taxes", "applied_pricing_unit",
               "accepts_target_wallet", "lago_parent_id"}
CUSTOMER_KEYS = {"lago_id", "sequential_id", "slug", "external_id", "name", "email", "currency", "timezone",
                 "applicable_timezone", "invoice_grace_period", "account_type", "customer_type", "created_at",
                 "updated_at", "finalize_zero_amount_invoice", "skip_invoice_custom_sections",
                 "billing_configuration", "shipping_address", "metadata", "integration_customers",
                 "address_line1", "address_line2", "city", "country", "legal_name", "legal_number", "logo_url",
                 "firstname", "lastname", "phone", "state", "tax_identification_number", "url", "zipcode",
                 "net_payment_term", "billing_entity_code", "external_salesforce_id", "taxes",
                 "applicable_invoice_custom_sections",
                 "error_details", "test_clock_id"}  # test_clock_id: a meterline addition (test clocks)
SUBSCRIPTION_KEYS = {"lago_id", "external_id", "lago_customer_id", "external_customer_id", "billing_entity_code",
                     "name", "plan_code", "plan_amount_cents", "plan_amount_currency", "status", "billing_time",
                     "subscription_at", "started_at", "trial_ended_at", "ending_at", "terminated_at",
                     "canceled_at", "created_at", "previous_plan_code", "next_plan_code", "downgrade_plan_date",
                     "current_billing_period_started_at", "current_billing_period_ending_at",
                     "on_termination_credit_note", "on_termination_invoice", "progressive_billing_disabled",
                     "applied_invoice_custom_sections",
                     "payment_method", "consolidate_invoice", "cancellation_reason", "activated_at",
                     "activation_rules", "purchase_order_number", "test_clock_id"}


def ok(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    return response.json()


def invalid(response: httpx.Response, details: dict[str, list[str]]) -> None:
    assert response.status_code == 422, response.text
    assert response.json() == {"status": 422, "error": "Unprocessable Entity", "code": "validation_errors",
                               "error_details": details}


def missing(response: httpx.Response, code: str) -> None:
    assert response.status_code == 404, response.text
    assert response.json() == {"status": 404, "error": "Not Found", "code": code}


def seed_catalog(client: httpx.Client) -> None:
    ok(client.post("/billable_metrics", json=metric_body()))
    ok(client.post("/plans", json=plan_body()))


# --- 400: bodies that are not Lago inputs ---------------------------------------------------------

@pytest.mark.parametrize(("method", "path", "root"), [
    ("POST", "/billable_metrics", "billable_metric"), ("PUT", "/billable_metrics/x", "billable_metric"),
    ("POST", "/plans", "plan"), ("PUT", "/plans/x", "plan"), ("POST", "/customers", "customer"),
    ("POST", "/subscriptions", "subscription"), ("PUT", "/subscriptions/x", "subscription"),
])
@pytest.mark.parametrize("body", [{}, {"other": {}}, "ROOT_NULL"])
def test_missing_root_key_is_400(client: httpx.Client, method: str, path: str, root: str, body: Any) -> None:
    payload = {root: None} if body == "ROOT_NULL" else body
    response = client.request(method, path, json=payload)
    assert response.status_code == 400
    assert response.json() == {"status": 400, "error": f"BadRequest: param is missing or the value is empty: {root}"}


@pytest.mark.parametrize("path", ["/billable_metrics", "/plans", "/customers", "/subscriptions"])
def test_unparseable_json_is_400(client: httpx.Client, path: str) -> None:
    response = client.post(path, content=b'{"oops": ', headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert response.json()["error"].startswith("BadRequest: the body is not valid JSON")


def test_root_that_is_not_an_object_is_400(client: httpx.Client) -> None:
    response = client.post("/customers", json={"customer": ["acme"]})
    assert response.status_code == 400
    assert response.json() == {"status": 400, "error": "BadRequest: the root value must be an object"}


# --- 404: unknown codes ---------------------------------------------------------------------------

@pytest.mark.parametrize(("method", "path", "code"), [
    ("GET", "/billable_metrics/nope", "billable_metric_not_found"),
    ("DELETE", "/billable_metrics/nope", "billable_metric_not_found"),
    ("GET", "/plans/nope", "plan_not_found"), ("DELETE", "/plans/nope", "plan_not_found"),
    ("GET", "/customers/nope", "customer_not_found"), ("DELETE", "/customers/nope", "customer_not_found"),
    ("GET", "/subscriptions/nope", "subscription_not_found"),
    ("DELETE", "/subscriptions/nope", "subscription_not_found"),
])
def test_unknown_code_is_404(client: httpx.Client, method: str, path: str, code: str) -> None:
    missing(client.request(method, path), code)


def test_unknown_code_in_put_is_404(client: httpx.Client) -> None:
    missing(client.put("/billable_metrics/nope", json={"billable_metric": {"name": "x"}}),
            "billable_metric_not_found")
    missing(client.put("/plans/nope", json={"plan": {"name": "x"}}), "plan_not_found")
    missing(client.put("/subscriptions/nope", json={"subscription": {"name": "x"}}), "subscription_not_found")


def test_references_to_unknown_objects_are_404(client: httpx.Client) -> None:
    seed_catalog(client)
    charge = {"charge_model": "standard", "properties": {"amount": "1"}}
    missing(client.post("/plans", json=plan_body("p2", charges=[{**charge, "billable_metric_code": "nope"}])),
            "billable_metric_not_found")
    missing(client.post("/plans", json=plan_body("p3", charges=[
        {**charge, "billable_metric_id": "00000000-0000-0000-0000-000000000000"}])), "billable_metric_not_found")
    missing(client.post("/subscriptions", json=subscription_body("acme", "s1", plan_code="nope")),
            "plan_not_found")
    # nothing was created by the failed requests
    missing(client.get("/plans/p2"), "plan_not_found")
    missing(client.get("/customers/acme"), "customer_not_found")


# --- 422: invalid bodies --------------------------------------------------------------------------

def test_invalid_metrics(client: httpx.Client) -> None:
    invalid(client.post("/billable_metrics", json={"billable_metric": {}}), {
        "name": ["value_is_mandatory"], "code": ["value_is_mandatory"], "aggregation_type": ["value_is_mandatory"]})
    invalid(client.post("/billable_metrics", json={"billable_metric": {
        "name": "n", "code": "c", "aggregation_type": "median_agg"}}), {"aggregation_type": ["value_is_invalid"]})
    invalid(client.post("/billable_metrics", json={"billable_metric": {
        "name": "n", "code": "c", "aggregation_type": "sum_agg"}}), {"field_name": ["value_is_mandatory"]})
    invalid(client.post("/billable_metrics", json={"billable_metric": {
        "name": "n", "code": "c", "aggregation_type": "count_agg", "recurring": "yes"}}),
        {"recurring": ["invalid_format"]})
    invalid(client.post("/billable_metrics", json={"billable_metric": {
        "name": "n", "code": "c", "aggregation_type": "count_agg", "expression": "event.properties.a * 2"}}),
        {"expression": ["not_supported"]})
    ok(client.post("/billable_metrics", json=metric_body()))
    invalid(client.post("/billable_metrics", json=metric_body()), {"code": ["value_already_exist"]})
    ok(client.post("/billable_metrics", json={"billable_metric": {
        "name": "Calls", "code": "calls", "aggregation_type": "count_agg"}}))
    # a count becoming a sum needs a field; null is "not given", so the stored (empty) field is checked
    invalid(client.put("/billable_metrics/calls", json={"billable_metric": {
        "aggregation_type": "sum_agg", "field_name": None}}), {"field_name": ["value_is_mandatory"]})


def test_invalid_plans(client: httpx.Client) -> None:
    ok(client.post("/billable_metrics", json=metric_body()))
    invalid(client.post("/plans", json={"plan": {}}), {
        "name": ["value_is_mandatory"], "code": ["value_is_mandatory"], "interval": ["value_is_mandatory"],
        "amount_cents": ["value_is_mandatory"], "amount_currency": ["value_is_mandatory"]})
    invalid(client.post("/plans", json=plan_body(interval="daily", amount_cents="ten", amount_currency="dollars")),
            {"interval": ["value_is_invalid"], "amount_cents": ["invalid_format"],
             "amount_currency": ["value_is_too_long"]})
    invalid(client.post("/plans", json=plan_body("big", amount_cents=10**15 + 1, trial_period=36_501, charges=[
        {"billable_metric_code": "monthly_tracked_users", "charge_model": "standard",
         "properties": {"amount": "1"}, "min_amount_cents": 10**15 + 1}])),
            {"amount_cents": ["value_is_invalid"], "trial_period": ["value_is_invalid"],
             "charges.0.min_amount_cents": ["value_is_invalid"]})

    def graduated(ranges: list[dict[str, Any]]) -> dict[str, Any]:
        return plan_body("g", charges=[{"billable_metric_code": "monthly_tracked_users",
                                        "charge_model": "graduated", "properties": {"graduated_ranges": ranges}}])

    gap = [GRADUATED_OK[0], {**GRADUATED_OK[1], "from_value": 13}]
    last_bounded = [GRADUATED_OK[0], {**GRADUATED_OK[1], "to_value": 100}]
    for ranges in (gap, last_bounded, [], [{**GRADUATED_OK[0], "to_value": None, "from_value": 5}]):
        invalid(client.post("/plans", json=graduated(ranges)), {"graduated_ranges": ["invalid_graduated_ranges"]})
    ok(client.post("/plans", json=graduated(GRADUATED_OK)))

    charge = {"billable_metric_code": "monthly_tracked_users"}
    invalid(client.post("/plans", json=plan_body("v", charges=[
        {**charge, "charge_model": "volume", "properties": {"volume_ranges": []}},
        {**charge, "charge_model": "package", "properties": {"amount": "1", "package_size": 0}},
        {**charge, "charge_model": "percentage", "properties": {"rate": "abc"}},
        {**charge, "charge_model": "standard", "properties": {"amount": "-1"}},
        {**charge, "charge_model": "dynamic"},
        {"charge_model": "standard", "properties": {"amount": "1"}},
    ])), {"volume_ranges": ["invalid_volume_ranges"], "package_size": ["invalid_package_size"],
          "rate": ["invalid_rate"], "amount": ["invalid_amount"], "charges.4.charge_model": ["value_is_invalid"],
          "charges.5.billable_metric_id": ["value_is_mandatory"]})
    invalid(client.post("/plans", json=plan_body("g")), {"code": ["value_already_exist"]})


def test_invalid_customers_and_subscriptions(client: httpx.Client) -> None:
    invalid(client.post("/customers", json={"customer": {"name": "x"}}), {"external_id": ["value_is_mandatory"]})
    invalid(client.post("/customers", json=customer_body("acme", timezone="Mars/Olympus", currency="usd")),
            {"timezone": ["invalid_timezone"], "currency": ["value_is_invalid"]})
    invalid(client.post("/customers", json=customer_body("acme", billing_configuration={
        "invoice_grace_period": "soon"})), {"billing_configuration.invoice_grace_period": ["invalid_format"]})
    # a day count no biller can add to a date (it would stop every billing run, not one request)
    invalid(client.post("/customers", json=customer_body("acme", invoice_grace_period=36_501)),
            {"invoice_grace_period": ["value_is_invalid"]})
    seed_catalog(client)
    invalid(client.post("/subscriptions", json={"subscription": {}}), {
        "external_customer_id": ["value_is_mandatory"], "plan_code": ["value_is_mandatory"],
        "external_id": ["value_is_mandatory"]})
    invalid(client.post("/subscriptions", json=subscription_body("acme", "s1", billing_time="weekly",
                                                                 subscription_at="next monday")),
            {"billing_time": ["value_is_invalid"], "subscription_at": ["invalid_format"]})
    invalid(client.post("/subscriptions", json=subscription_body("acme", "s1", plan_overrides={"amount_cents": 1})),
            {"plan_overrides.amount_cents": ["not_supported"]})
    first = ok(client.post("/subscriptions", json=subscription_body("acme", "s1")))["subscription"]
    # the same external_id and plan: that subscription, unchanged (as Lago answers)
    assert ok(client.post("/subscriptions", json=subscription_body("acme", "s1")))["subscription"]["lago_id"] == \
        first["lago_id"]
    ok(client.post("/customers", json=customer_body("other")))
    invalid(client.post("/subscriptions", json=subscription_body("other", "s1")),  # another customer's
            {"external_id": ["value_already_exist"]})
    invalid(client.get("/subscriptions", params={"status[]": "sleeping"}), {"status": ["value_is_invalid"]})
    # one currency per customer: set by the first subscription when the customer had none
    ok(client.post("/customers", json=customer_body("euro", currency="EUR")))
    invalid(client.post("/subscriptions", json=subscription_body("euro", "s-eur")),
            {"currency": ["currencies_does_not_match"]})
    ok(client.post("/subscriptions", json=subscription_body("no-currency-yet", "s-usd")))
    assert ok(client.get("/customers/no-currency-yet"))["customer"]["currency"] == "USD"


def test_metric_used_by_a_plan_cannot_be_deleted(client: httpx.Client) -> None:
    seed_catalog(client)
    invalid(client.delete("/billable_metrics/monthly_tracked_users"), {"billable_metric": ["used_by_plans"]})
    ok(client.get("/billable_metrics/monthly_tracked_users"))
    ok(client.delete("/plans/segment_team"))
    assert ok(client.delete("/billable_metrics/monthly_tracked_users"))["billable_metric"]["code"] == \
        "monthly_tracked_users"
    missing(client.get("/billable_metrics/monthly_tracked_users"), "billable_metric_not_found")


def test_subscribed_metric_keeps_what_its_usage_was_counted_with(client: httpx.Client) -> None:
    seed_catalog(client)
    ok(client.post("/subscriptions", json=subscription_body("acme", "s1")))
    invalid(client.put("/billable_metrics/monthly_tracked_users", json={"billable_metric": {
        "field_name": "account_id", "aggregation_type": "count_agg"}}),
        {"field_name": ["not_editable_while_subscribed"], "aggregation_type": ["not_editable_while_subscribed"]})
    renamed = ok(client.put("/billable_metrics/monthly_tracked_users", json={"billable_metric": {
        "name": "MTU", "description": "Monthly tracked users", "field_name": "user_id",
        "code": "monthly_tracked_users"}}))["billable_metric"]  # unchanged values are fine
    assert (renamed["name"], renamed["description"], renamed["field_name"]) == (
        "MTU", "Monthly tracked users", "user_id")
    invalid(client.put("/plans/segment_team", json={"plan": {"interval": "yearly"}}),
            {"interval": ["not_editable_while_subscribed"]})


# --- null means not given; upserts change only the keys sent --------------------------------------

def test_customer_upsert_changes_only_the_keys_sent(client: httpx.Client) -> None:
    first = ok(client.post("/customers", json={"customer": {
        "external_id": "acme", "name": "Acme", "email": "a@acme.test", "currency": "EUR",
        "timezone": "Europe/Paris", "city": "Lyon", "invoice_grace_period": 5}}))["customer"]
    subset = ok(client.post("/customers", json={"customer": {"external_id": "acme", "email": "b@acme.test",
                                                             "zipcode": "69001"}}))["customer"]
    assert subset["lago_id"] == first["lago_id"]
    assert (subset["name"], subset["email"], subset["currency"], subset["timezone"], subset["city"],
            subset["zipcode"], subset["invoice_grace_period"]) == (
        "Acme", "b@acme.test", "EUR", "Europe/Paris", "Lyon", "69001", 5)
    # an official client sends every attribute, the unset ones as null: they change nothing
    nulls = {key: None for key in CUSTOMER_KEYS - {"external_id"}}
    same = ok(client.post("/customers", json={"customer": {**nulls, "external_id": "acme"}}))["customer"]
    assert {k: v for k, v in same.items() if k != "updated_at"} == \
        {k: v for k, v in subset.items() if k != "updated_at"}
    assert ok(client.get("/customers", params={"search_term": "acm"}))["meta"]["total_count"] == 1


def test_null_means_not_given_on_update(client: httpx.Client) -> None:
    seed_catalog(client)
    before = ok(client.get("/plans/segment_team"))["plan"]
    nulls = {key: None for key in PLAN_KEYS}
    after = ok(client.put("/plans/segment_team", json={"plan": {**nulls, "description": "Team"}}))["plan"]
    assert after == {**before, "description": "Team"}
    metric = ok(client.get("/billable_metrics/monthly_tracked_users"))["billable_metric"]
    unchanged = ok(client.put("/billable_metrics/monthly_tracked_users", json={"billable_metric": {
        key: None for key in METRIC_KEYS}}))["billable_metric"]
    assert unchanged == metric


def test_plan_and_metric_creation_defaults_with_nulls(client: httpx.Client) -> None:
    metric = ok(client.post("/billable_metrics", json={"billable_metric": {
        **{key: None for key in METRIC_KEYS}, "name": "Calls", "code": "calls",
        "aggregation_type": "count_agg"}}))["billable_metric"]
    assert (metric["recurring"], metric["field_name"], metric["filters"]) == (False, None, [])
    plan = ok(client.post("/plans", json={"plan": {
        **{key: None for key in PLAN_KEYS}, "name": "P", "code": "p", "interval": "weekly", "amount_cents": 0,
        "amount_currency": "USD"}}))["plan"]
    assert (plan["pay_in_advance"], plan["trial_period"], plan["charges"]) == (False, 0.0, [])


# --- every serializer field is present ------------------------------------------------------------

def test_objects_have_every_lago_field(client: httpx.Client) -> None:
    seed_catalog(client)
    ok(client.post("/customers", json=customer_body("acme")))
    subscription = ok(client.post("/subscriptions", json=subscription_body("acme", "s1")))["subscription"]
    metric = ok(client.get("/billable_metrics/monthly_tracked_users"))["billable_metric"]
    plan = ok(client.get("/plans/segment_team"))["plan"]
    customer = ok(client.get("/customers/acme"))["customer"]
    assert set(metric) == METRIC_KEYS
    assert set(plan) == PLAN_KEYS and plan["charges"] and all(set(c) == CHARGE_KEYS for c in plan["charges"])
    assert set(customer) == CUSTOMER_KEYS
    # create and get answer the extended subscription (with its plan); lists the plain one, with its thresholds
    assert set(subscription) == SUBSCRIPTION_KEYS | {"plan", "applicable_usage_thresholds"}
    assert set(subscription["plan"]) == PLAN_KEYS
    assert set(ok(client.get("/subscriptions/s1"))["subscription"]) == set(subscription)
    listed = ok(client.get("/subscriptions"))["subscriptions"][0]
    assert set(listed) == SUBSCRIPTION_KEYS | {"applicable_usage_thresholds"}
    for listing, key in (("/billable_metrics", "billable_metrics"), ("/plans", "plans"), ("/customers", "customers")):
        assert ok(client.get(listing))["meta"] == {"current_page": 1, "next_page": None, "prev_page": None,
                                                   "total_pages": 1, "total_count": 1}, key


def test_empty_lists_and_bad_pages(client: httpx.Client) -> None:
    for path in ("/billable_metrics", "/plans", "/customers", "/subscriptions"):
        body = ok(client.get(path))
        assert body["meta"] == {"current_page": 0, "next_page": None, "prev_page": None, "total_pages": 0,
                                "total_count": 0}
        pages, integers = client.get(path, params={"page": 0}), client.get(path, params={"per_page": "many"})
        assert (pages.status_code, pages.json()) == (400, BAD_PAGE)
        assert (integers.status_code, integers.json()) == (400, BAD_PAGE_NUMBER)


def test_billing_period_in_the_customers_timezone(client: httpx.Client) -> None:
    seed_catalog(client)
    ok(client.post("/customers", json=customer_body("tokyo", timezone="Asia/Tokyo")))
    started = "2026-01-15T03:00:00Z"  # noon in Tokyo
    sub = ok(client.post("/subscriptions", json=subscription_body("tokyo", "s-tokyo", subscription_at=started,
                                                                  billing_time="anniversary")))["subscription"]
    assert sub["status"] == "active" and sub["started_at"] == "2026-01-15T03:00:00.000Z"
    start = datetime.fromisoformat(sub["current_billing_period_started_at"].replace("Z", "+00:00"))
    end = datetime.fromisoformat(sub["current_billing_period_ending_at"].replace("Z", "+00:00"))
    # anniversary periods run from the 15th to the 14th, midnight to midnight in Tokyo (UTC+9)
    assert start.astimezone(UTC).hour == 15 and start.astimezone(UTC).day == 14
    assert end.strftime("%H:%M:%S.%f")[:-3] == "14:59:59.999" and end.day == 14
    assert start <= datetime.now(UTC) <= end


# --- subscription lifecycle -----------------------------------------------------------------------

def test_pending_subscription_becomes_active_on_time(client: httpx.Client) -> None:
    seed_catalog(client)
    starts = datetime.now(UTC) + timedelta(seconds=2)
    created = ok(client.post("/subscriptions", json=subscription_body(
        "acme", "later", subscription_at=starts.isoformat())))["subscription"]
    assert created["status"] == "pending" and created["started_at"] is None
    assert created["current_billing_period_started_at"] is None
    missing(client.get("/subscriptions/later"), "subscription_not_found")  # not active yet
    assert ok(client.get("/subscriptions/later", params={"status": "pending"}))["subscription"]["status"] == "pending"
    time.sleep(max(0.0, (starts - datetime.now(UTC)).total_seconds()) + 0.2)
    active = ok(client.get("/subscriptions/later"))["subscription"]
    assert active["status"] == "active" and active["started_at"] == created["subscription_at"]
    assert active["current_billing_period_started_at"] is not None
    assert [s["external_id"] for s in ok(client.get("/subscriptions"))["subscriptions"]] == ["later"]


def test_terminate_and_delete_cascade(client: httpx.Client) -> None:
    seed_catalog(client)
    for n in range(3):
        ok(client.post("/subscriptions", json=subscription_body(f"c{n % 2}", f"s{n}")))
    terminated = ok(client.delete("/subscriptions/s0"))["subscription"]
    assert terminated["status"] == "terminated" and terminated["terminated_at"] is not None
    missing(client.delete("/subscriptions/s0"), "subscription_not_found")  # only once
    # deleting a customer terminates its subscriptions (s0 was c0's and s2 too)
    ok(client.delete("/customers/c0"))
    gone = ok(client.get("/subscriptions/s2", params={"status": "terminated"}))["subscription"]
    assert gone["status"] == "terminated"
    # deleting a plan terminates the rest
    ok(client.delete("/plans/segment_team"))
    assert ok(client.get("/subscriptions"))["meta"]["total_count"] == 0
    statuses = ok(client.get("/subscriptions", params=[("status[]", "terminated")]))["subscriptions"]
    assert sorted(s["external_id"] for s in statuses) == ["s0", "s1", "s2"]
    # the codes are free again
    ok(client.post("/plans", json=plan_body()))
    assert ok(client.post("/customers", json=customer_body("c0")))["customer"]["lago_id"] != terminated[
        "lago_customer_id"]
    # the new c0 is the one current usage is about, not the deleted one
    ok(client.post("/subscriptions", json=subscription_body("c0", "s3")))
    usage = ok(client.get("/customers/c0/current_usage", params={"external_subscription_id": "s3"}))
    assert usage["customer_usage"]["charges_usage"][0]["units"] == "0.0"
    old = client.get("/customers/c0/current_usage", params={"external_subscription_id": "s0"})
    assert old.status_code == 405 and old.json()["code"] == "no_active_subscription"


def test_subscription_ends_at_its_ending_at(client: httpx.Client) -> None:
    seed_catalog(client)
    ends = datetime.now(UTC) + timedelta(seconds=2)
    created = ok(client.post("/subscriptions", json=subscription_body(
        "acme", "ending", ending_at=ends.isoformat())))["subscription"]
    assert created["status"] == "active" and created["ending_at"] is not None
    invalid(client.put("/subscriptions/ending", json={"subscription": {"ending_at": "2020-01-01T00:00:00Z"}}),
            {"ending_at": ["value_is_invalid"]})
    invalid(client.post("/subscriptions", json=subscription_body(
        "acme", "never", subscription_at="2030-01-02T00:00:00Z", ending_at="2030-01-01T00:00:00Z")),
        {"ending_at": ["value_is_invalid"]})
    # the API's once-a-second check terminates it, whether or not anyone reads it
    deadline = time.monotonic() + 10
    while (terminated := client.get("/subscriptions/ending", params={"status": "terminated"})).status_code != 200:
        assert time.monotonic() < deadline, "the subscription did not end"
        time.sleep(0.1)
    body = terminated.json()["subscription"]
    assert body["status"] == "terminated" and body["terminated_at"] == created["ending_at"]
    assert (datetime.fromisoformat(body["terminated_at"].replace("Z", "+00:00")) - ends) < timedelta(milliseconds=1)
