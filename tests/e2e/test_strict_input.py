"""Strict input: a value of the wrong type is refused, never stored to break every later read, and a
Lago feature meterline does not have is refused with `not_supported`, never stored and ignored."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from meterline.example import MTU_METRIC
from meterline.orgs import ensure_organization
from tests.builders import customer_body, metric_body, plan_body, subscription_body
from tests.conftest import Services
from tests.e2e.invoice_support import customer, mtu_metric, plan, send, subscribe, wait_archived

# What a property-based fuzzer found to poison GET /customers for good (orjson could not write the
# stored number back: "Integer exceeds 64-bit range"), and a form feed taken as an external_id.
POISONS: list[tuple[dict[str, Any], dict[str, list[str]]]] = [
    ({"external_id": "p1", "address_line2": -1.77e295}, {"address_line2": ["invalid_format"]}),
    ({"external_id": "p2", "legal_name": {"nested": {"deep": [1, 2]}}}, {"legal_name": ["invalid_format"]}),
    ({"external_id": "p3", "shipping_address": {"city": {"x": 1}, "zipcode": 75001}},
     {"shipping_address.city": ["invalid_format"], "shipping_address.zipcode": ["invalid_format"]}),
    ({"external_id": "p4", "shipping_address": ["not", "an", "object"]}, {"shipping_address": ["invalid_format"]}),
    ({"external_id": "\f"}, {"external_id": ["value_is_invalid"]}),
    ({"external_id": "p5", "name": "nul\u0000inside"}, {"name": ["value_is_invalid"]}),
    ({"external_id": 12345}, {"external_id": ["invalid_format"]}),
]


@pytest.mark.parametrize(("body", "details"), POISONS, ids=[str(i) for i in range(len(POISONS))])
def test_a_poisoned_customer_is_refused_and_the_listing_stays_readable(
        client: httpx.Client, body: dict[str, Any], details: dict[str, list[str]]) -> None:
    response = client.post("/customers", json={"customer": body})
    assert response.status_code == 422, response.text
    assert response.json() == {"status": 422, "error": "Unprocessable Entity", "code": "validation_errors",
                               "error_details": details}
    listing = client.get("/customers")
    assert listing.status_code == 200
    assert listing.json()["customers"] == []


UNSUPPORTED: list[tuple[dict[str, Any], str]] = [
    ({"billing_entity_code": "eu"}, "billing_entity_code"),
    ({"metadata": [{"key": "po", "value": "42", "display_in_invoice": True}]}, "metadata"),
    ({"account_type": "partner"}, "account_type"),
    ({"integration_customers": [{"integration_type": "netsuite"}]}, "integration_customers"),
    ({"billing_configuration": {"payment_provider": "stripe"}}, "billing_configuration.payment_provider"),
    ({"billing_configuration": {"document_locale": "fr"}}, "billing_configuration.document_locale"),
]


@pytest.mark.parametrize(("extra", "field"), UNSUPPORTED, ids=[field for _, field in UNSUPPORTED])
def test_lago_customer_features_meterline_lacks_are_refused(client: httpx.Client, extra: dict[str, Any],
                                                            field: str) -> None:
    response = client.post("/customers", json={"customer": {"external_id": "acme", **extra}})
    assert (response.status_code, response.json()["error_details"]) == (422, {field: ["not_supported"]})
    assert client.get("/customers/acme").status_code == 404  # nothing was stored


def test_what_official_clients_send_for_unset_fields_is_accepted(client: httpx.Client) -> None:
    body = {"external_id": "acme", "net_payment_term": 0, "tax_codes": [], "metadata": None,
            "finalize_zero_amount_invoice": "inherit", "billing_entity_code": None, "integration_customers": [],
            "billing_configuration": {"invoice_grace_period": 2, "payment_provider": None, "sync": False,
                                      "document_locale": None},
            "shipping_address": {"address_line1": "1 Main St", "city": "Paris", "zipcode": "75001",
                                 "country": "FR", "state": None},
            "legal_name": "Acme SAS", "address_line2": "Bldg 2"}
    response = client.post("/customers", json={"customer": body})
    assert response.status_code == 200, response.text
    created = response.json()["customer"]
    assert created["invoice_grace_period"] == 2
    assert created["shipping_address"] == {"address_line1": "1 Main St", "city": "Paris", "zipcode": "75001",
                                           "country": "FR"}
    assert (created["legal_name"], created["address_line2"]) == ("Acme SAS", "Bldg 2")
    assert client.get("/customers").json()["customers"][0]["shipping_address"]["city"] == "Paris"


@pytest.mark.parametrize(("path", "root", "body", "field"), [
    ("/subscriptions", "subscription", {"external_customer_id": "c", "plan_code": "p", "external_id": "a\tb"},
     "external_id"),
    ("/subscriptions", "subscription", {"external_customer_id": "c\u0001", "plan_code": "p", "external_id": "s"},
     "external_customer_id"),
    ("/plans", "plan", {"name": "P", "code": "p\n", "interval": "monthly", "amount_cents": 0,
                        "amount_currency": "USD"}, "code"),
    ("/billable_metrics", "billable_metric", {"name": "M", "code": "m\u007f", "aggregation_type": "count_agg"},
     "code"),
])
def test_identifiers_hold_no_control_character(client: httpx.Client, path: str, root: str, body: dict[str, Any],
                                               field: str) -> None:
    response = client.post(path, json={root: body})
    assert response.status_code == 422, response.text
    assert response.json()["error_details"][field] == ["value_is_invalid"]


def _charge(**fields: Any) -> dict[str, Any]:
    return {"billable_metric_code": MTU_METRIC["code"], "charge_model": "standard", "properties": {"amount": "1"},
            **fields}


@pytest.mark.parametrize(("charge", "field"), [
    (_charge(pay_in_advance=True), "charges.0.pay_in_advance"),  # unique_count_agg: Lago allows it
    (_charge(code="mtu_charge"), "charges.0.code"),
    (_charge(applied_pricing_unit={"code": "credits", "conversion_rate": "0.5"}), "charges.0.applied_pricing_unit"),
    (_charge(properties={"amount": "1", "grouped_by": ["region"]}), "charges.0.grouped_by"),
    (_charge(properties={"amount": "1", "pricing_group_keys": ["region"]}), "charges.0.pricing_group_keys"),
    (_charge(charge_model="percentage", properties={"rate": "1", "free_units_per_events": 3}),
     "charges.0.free_units_per_events"),
    (_charge(charge_model="percentage", properties={"rate": "1", "free_units_per_total_aggregation": "10"}),
     "charges.0.free_units_per_total_aggregation"),
    (_charge(charge_model="percentage", properties={"rate": "1", "per_transaction_min_amount": "0.5"}),
     "charges.0.per_transaction_min_amount"),
    (_charge(charge_model="percentage", properties={"rate": "1", "per_transaction_max_amount": "9"}),
     "charges.0.per_transaction_max_amount"),
])
def test_charge_features_meterline_does_not_bill_are_refused(client: httpx.Client, charge: dict[str, Any],
                                                             field: str) -> None:
    assert client.post("/billable_metrics", json=metric_body()).status_code == 200
    response = client.post("/plans", json=plan_body("refused", charges=[charge]))
    assert (response.status_code, response.json()["error_details"]) == (422, {field: ["not_supported"]})
    assert client.get("/plans/refused").status_code == 404


LAGO_REFUSES: list[tuple[dict[str, Any], str, dict[str, list[str]]]] = [
    (_charge(invoiceable=False), "unique_count_agg", {"charges.0.invoiceable": ["must_be_true_unless_pay_in_advance"]}),
    (_charge(prorated=True), "unique_count_agg", {"charges.0.prorated": ["invalid_billable_metric_or_charge_model"]}),
    (_charge(regroup_paid_fees="invoice"), "unique_count_agg",
     {"charges.0.regroup_paid_fees": ["only_compatible_with_pay_in_advance_and_non_invoiceable"]}),
    (_charge(charge_model="volume", pay_in_advance=True,
             properties={"volume_ranges": [{"from_value": 0, "to_value": None, "per_unit_amount": "1",
                                            "flat_amount": "0"}]}),
     "unique_count_agg", {"charges.0.pay_in_advance": ["invalid_aggregation_type_or_charge_model"]}),
    (_charge(pay_in_advance=True), "max_agg",
     {"charges.0.pay_in_advance": ["invalid_aggregation_type_or_charge_model"]}),
    (_charge(pay_in_advance=True, min_amount_cents=100), "sum_agg",
     {"charges.0.pay_in_advance": ["not_supported"],
      "charges.0.min_amount_cents": ["not_compatible_with_pay_in_advance"]}),
    (_charge(pay_in_advance=True, invoiceable=False, regroup_paid_fees="invoice"), "sum_agg",  # all allowed by Lago
     {"charges.0.pay_in_advance": ["not_supported"], "charges.0.regroup_paid_fees": ["not_supported"]}),
    (_charge(charge_model="percentage", properties={"rate": "1"}), "latest_agg",
     {"charges.0.billable_metric": ["invalid_value"]}),
]


@pytest.mark.parametrize(("charge", "aggregation_type", "details"), LAGO_REFUSES,
                         ids=[str(i) for i in range(len(LAGO_REFUSES))])
def test_charge_options_lago_refuses_for_the_model_or_metric_get_lagos_codes(
        client: httpx.Client, charge: dict[str, Any], aggregation_type: str, details: dict[str, list[str]]) -> None:
    metric = metric_body(aggregation_type=aggregation_type, field_name="user_id")
    assert client.post("/billable_metrics", json=metric).status_code == 200
    response = client.post("/plans", json=plan_body("refused", charges=[charge]))
    assert (response.status_code, response.json()["error_details"]) == (422, details)
    assert client.get("/plans/refused").status_code == 404


def test_plan_metric_subscription_and_endpoint_features_meterline_lacks_are_refused(client: httpx.Client) -> None:
    def refused(response: httpx.Response, field: str, code: str = "not_supported") -> None:
        assert (response.status_code, response.json()["error_details"]) == (422, {field: [code]})

    refused(client.post("/billable_metrics", json=metric_body(recurring=True)), "recurring")
    counted = metric_body(recurring=True, aggregation_type="count_agg", field_name=None)
    refused(client.post("/billable_metrics", json=counted), "recurring", "not_compatible_with_aggregation_type")
    assert client.post("/billable_metrics", json=metric_body(recurring=False)).status_code == 200
    assert client.post("/plans", json=plan_body()).status_code == 200
    refused(client.post("/webhook_endpoints", json={"webhook_endpoint": {
        "webhook_url": "https://example.com/hooks", "event_types": ["invoice.created"]}}), "event_types")

    assert client.post("/customers", json=customer_body("acme")).status_code == 200
    assert client.post("/subscriptions", json=subscription_body("acme", "s1")).status_code == 200
    refused(client.put("/subscriptions/s1", json={"subscription": {"plan_overrides": {"amount_cents": 1}}}),
            "plan_overrides.amount_cents")
    for option in ("refund", "offset"):  # meterline records no refund
        refused(client.delete("/subscriptions/s1", params={"on_termination_credit_note": option}),
                "on_termination_credit_note")
    bogus = client.delete("/subscriptions/s1", params={"on_termination_invoice": "later"})
    assert (bogus.status_code, bogus.json()["error_details"]) == (422, {"on_termination_invoice": ["value_is_invalid"]})
    assert client.get("/subscriptions/s1").json()["subscription"]["status"] == "active"  # none of those changed it
    ended = client.delete("/subscriptions/s1", params={"on_termination_invoice": "generate",
                                                       "on_termination_credit_note": "skip"})
    assert (ended.status_code, ended.json()["subscription"]["status"]) == (200, "terminated")


def test_huge_numbers_in_stored_json_never_break_a_read(client: httpx.Client) -> None:
    """PostgreSQL writes a JSONB number without an exponent (1e300 comes back as 301 digits), which
    orjson cannot write as an integer: stored JSON is read back with orjson, as a float."""
    mtu_metric(client)
    plan(client, "big", amount=0, advance=False, charges=[
        {"billable_metric_code": "mtu", "charge_model": "standard", "properties": {"amount": 1e300, "note": "x"}}])
    assert client.get("/plans").status_code == 200
    # only what the model reads is kept, as Lago does
    assert client.get("/plans/big").json()["plan"]["charges"][0]["properties"] == {"amount": 1e300}
    customer(client, "acme")
    subscribe(client, "acme", "s-big", "big", datetime.now(UTC).isoformat())
    send(client, [{"transaction_id": "tx-big", "code": "mtu", "external_subscription_id": "s-big",
                   "properties": {"user_id": "u-1", "weight": -1.77e295, "count": 10**30}}])
    wait_archived(client, ["tx-big"])
    archived = client.get("/events/tx-big")
    assert archived.status_code == 200
    assert archived.json()["event"]["properties"] == {"user_id": "u-1", "weight": -1.77e295, "count": 1e30}


def test_customers_are_numbered_per_organization_as_lago_does(client: httpx.Client, services: Services,
                                                              unique: str) -> None:
    organization_id, _ = ensure_organization(services.sqlalchemy_url, f"test-{unique}")
    prefix = f"TES-{organization_id[-4:].upper()}"

    def numbered(external_id: str) -> tuple[int, str]:
        response = client.post("/customers", json=customer_body(external_id))
        assert response.status_code == 200, response.text
        body = response.json()["customer"]
        return body["sequential_id"], body["slug"]

    assert numbered("a") == (1, f"{prefix}-001")
    assert numbered("b") == (2, f"{prefix}-002")
    assert numbered("a") == (1, f"{prefix}-001")  # an update keeps the number
    assert client.delete("/customers/a").status_code == 200
    assert numbered("a") == (3, f"{prefix}-003")  # a deleted customer's number is not given out again
    listed = client.get("/customers").json()["customers"]
    assert sorted((c["external_id"], c["sequential_id"]) for c in listed) == [("a", 3), ("b", 2)]
    subscribed = client.post("/subscriptions", json=subscription_body("made-on-the-fly", "s1", plan_code="none"))
    assert subscribed.status_code == 404  # unknown plan: no customer is created either
    assert numbered("c") == (4, f"{prefix}-004")


@pytest.mark.parametrize(("charge", "details"), [
    (_charge(properties={"amount": "1", "note": "nul\u0000"}), {"properties": ["value_is_invalid"]}),
    (_charge(charge_model="graduated", properties={"graduated_ranges": [
        {"from_value": 0, "to_value": 10.7, "per_unit_amount": "1", "flat_amount": "0"},
        {"from_value": 11, "to_value": None, "per_unit_amount": "1", "flat_amount": "0"}]}),
     {"graduated_ranges": ["invalid_graduated_ranges"]}),
    (_charge(charge_model="package", properties={"amount": "1", "package_size": 10, "free_units": 1.5}),
     {"charges.0.free_units": ["invalid_free_units"]}),
])
def test_charge_properties_that_would_be_billed_differently_or_not_stored_are_refused(
        client: httpx.Client, charge: dict[str, Any], details: dict[str, list[str]]) -> None:
    assert client.post("/billable_metrics", json=metric_body()).status_code == 200
    response = client.post("/plans", json=plan_body("refused", charges=[charge]))
    assert (response.status_code, response.json()["error_details"]) == (422, details)


def test_charge_properties_keep_only_what_the_model_reads(client: httpx.Client) -> None:
    assert client.post("/billable_metrics", json=metric_body()).status_code == 200
    ranges = [{"from_value": 0, "to_value": 10, "per_unit_amount": "1", "flat_amount": "0", "color": "red"},
              {"from_value": 11, "to_value": None, "per_unit_amount": "0.5", "flat_amount": "2"}]
    charges = [_charge(charge_model="graduated", properties={"graduated_ranges": ranges, "amount": "9"}),
               _charge(charge_model="package", properties={"amount": "5", "package_size": 10, "free_units": 2,
                                                           "rate": "3"})]
    response = client.post("/plans", json=plan_body("kept", charges=charges))
    assert response.status_code == 200, response.text
    stored = [c["properties"] for c in response.json()["plan"]["charges"]]
    assert stored == [{"graduated_ranges": [{k: v for k, v in ranges[0].items() if k != "color"}, ranges[1]]},
                      {"amount": "5", "package_size": 10, "free_units": 2}]


def test_a_metric_change_is_held_to_the_rules_of_the_charges_using_it(client: httpx.Client) -> None:
    sums = metric_body(aggregation_type="sum_agg", field_name="gb")
    assert client.post("/billable_metrics", json=sums).status_code == 200
    code = sums["billable_metric"]["code"]
    percentage = {"billable_metric_code": code, "charge_model": "percentage", "properties": {"rate": "1"}}
    assert client.post("/plans", json=plan_body("pct", charges=[percentage])).status_code == 200
    latest = client.put(f"/billable_metrics/{code}", json={"billable_metric": {"aggregation_type": "latest_agg"}})
    assert (latest.status_code, latest.json()["error_details"]) == (422, {"aggregation_type": ["invalid_value"]})
    assert client.get(f"/billable_metrics/{code}").json()["billable_metric"]["aggregation_type"] == "sum_agg"
    counted = client.put(f"/billable_metrics/{code}", json={"billable_metric": {"aggregation_type": "max_agg"}})
    assert counted.status_code == 200
    # `recurring: true` on a stored max_agg metric: Lago's code for the stored aggregation
    recurring = client.put(f"/billable_metrics/{code}", json={"billable_metric": {"recurring": True}})
    assert (recurring.status_code, recurring.json()["error_details"]) == (
        422, {"recurring": ["not_compatible_with_aggregation_type"]})
