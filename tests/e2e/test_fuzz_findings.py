"""What fuzzing the OpenAPI documents (tests/e2e/test_fuzz.py), and holding them to the handlers, found;
each kept as a regression test.

U+0000 in a query value or a path reached PostgreSQL, which cannot hold it in text: 500 (the ingest even
answered 503, as if the archive were down). A page number past bigint's range overflowed the offset. An
object whose identifier holds "/" was stored but could never be read, changed or deleted by id. A
subscription_at whose UTC falls outside datetime's years was a 500, and a currency of non-ASCII capitals
was stored where every answer documents three letters A to Z.
"""

from __future__ import annotations

import httpx
import pytest

from tests.builders import api
from tests.conftest import Stack

NUL_QUERIES = [
    ("/customers", {"search_term": "a\x00"}, "search_term"),
    ("/customers", {"currencies[]": "\x00"}, "currencies[]"),
    ("/subscriptions", {"external_customer_id": "u\x00"}, "external_customer_id"),
    ("/subscriptions", {"plan_code": "\x00"}, "plan_code"),
    ("/billable_metrics", {"aggregation_types[]": "\x00"}, "aggregation_types[]"),
    ("/invoices", {"external_customer_id": "\x00"}, "external_customer_id"),
    ("/customers/acme/current_usage", {"external_subscription_id": "s\x00"}, "external_subscription_id"),
    ("/plans", {"per_page": "\x00"}, "per_page"),
]


@pytest.mark.parametrize(("path", "params", "field"), NUL_QUERIES, ids=[f"{p} {f}" for p, _, f in NUL_QUERIES])
def test_a_nul_in_a_query_value_is_refused_naming_the_parameter(client: httpx.Client, path: str,
                                                                  params: dict[str, str], field: str) -> None:
    response = client.get(path, params=params)
    assert (response.status_code, response.json()) == (422, {
        "status": 422, "error": "Unprocessable Entity", "code": "validation_errors",
        "error_details": {field: ["value_is_invalid"]}})


NUL_PATHS = [
    ("GET", "/customers/a%00b", "customer"),
    ("DELETE", "/customers/%00", "customer"),
    ("GET", "/customers/%00/current_usage?external_subscription_id=s", "customer"),
    ("GET", "/plans/%00", "plan"),
    ("PUT", "/plans/%00", "plan"),
    ("GET", "/billable_metrics/%00", "billable_metric"),
    ("GET", "/subscriptions/%00?status=pending", "subscription"),
    ("DELETE", "/subscriptions/%00", "subscription"),
    ("GET", "/events/%00", "event"),
]


@pytest.mark.parametrize(("method", "path", "resource"), NUL_PATHS, ids=[f"{m} {p}" for m, p, _ in NUL_PATHS])
def test_a_nul_in_a_path_names_no_object(client: httpx.Client, method: str, path: str, resource: str) -> None:
    response = client.request(method, path, json={"plan": {"name": "x"}} if method == "PUT" else None)
    assert (response.status_code, response.json()) == (404, {
        "status": 404, "error": "Not Found", "code": f"{resource}_not_found"})


def test_the_ingest_answers_a_nul_transaction_id_404_not_503(stack: Stack, org_key: str) -> None:
    with api(stack.ingest_url, org_key) as ingest:
        response = ingest.get("/events/tx%00")
    assert (response.status_code, response.json()) == (404, {
        "status": 404, "error": "Not Found", "code": "event_not_found"})


def test_a_page_past_the_largest_is_refused_not_overflowed(client: httpx.Client) -> None:
    for path in ("/customers", "/plans", "/invoices", "/webhook_endpoints"):
        response = client.get(path, params={"page": 2**31})
        assert (response.status_code, response.json()) == (400, {
            "status": 400,
            "error": "BadRequest: page must be between 1 and 2147483647 and per_page between 1 and 1000"}), path
    last = client.get("/customers", params={"page": 2**31 - 1})
    assert (last.status_code, last.json()["customers"], last.json()["meta"]["current_page"]) == (200, [], 0)


def test_objects_whose_identifiers_hold_a_slash_can_be_read_changed_and_deleted(client: httpx.Client) -> None:
    """Stored, listed, but every request by id answered 404 (the router split the decoded %2F)."""
    metric = {"name": "Calls", "code": "calls/v2", "aggregation_type": "count_agg"}
    assert client.post("/billable_metrics", json={"billable_metric": metric}).status_code == 200
    plan = {"name": "Team", "code": "team/2026", "interval": "monthly", "amount_cents": 100, "amount_currency": "USD",
            "charges": [{"billable_metric_code": "calls/v2", "charge_model": "standard",
                         "properties": {"amount": "1"}}]}
    assert client.post("/plans", json={"plan": plan}).status_code == 200
    assert client.post("/subscriptions", json={"subscription": {
        "external_customer_id": "acme/eu", "plan_code": "team/2026", "external_id": "sub/1"}}).status_code == 200
    assert client.get("/billable_metrics/calls%2Fv2").json()["billable_metric"]["code"] == "calls/v2"
    renamed = client.put("/billable_metrics/calls%2Fv2", json={"billable_metric": {"name": "API calls"}})
    assert (renamed.status_code, renamed.json()["billable_metric"]["name"]) == (200, "API calls")
    assert client.put("/plans/team%2F2026", json={"plan": {"description": "Team"}}).json()["plan"]["description"] == \
        "Team"
    assert client.get("/customers/acme%2Feu").json()["customer"]["external_id"] == "acme/eu"
    usage = client.get("/customers/acme%2Feu/current_usage", params={"external_subscription_id": "sub/1"})
    assert (usage.status_code, usage.json()["customer_usage"]["amount_cents"]) == (200, 0)
    assert client.get("/subscriptions/sub%2F1").json()["subscription"]["plan_code"] == "team/2026"
    ended = client.delete("/subscriptions/sub%2F1")
    assert (ended.status_code, ended.json()["subscription"]["status"]) == (200, "terminated")
    assert client.delete("/customers/acme%2Feu").json()["customer"]["external_id"] == "acme/eu"
    assert client.delete("/plans/team%2F2026").status_code == 200
    assert client.delete("/billable_metrics/calls%2Fv2").json()["billable_metric"]["code"] == "calls/v2"
    assert client.get("/customers/acme%2Feu").json() == {"status": 404, "error": "Not Found",
                                                         "code": "customer_not_found"}


@pytest.mark.parametrize(("moment", "field"), [("0001-01-01T00:00:00+01:00", "subscription_at"),
                                               ("9999-12-31T23:59:59-01:00", "subscription_at"),
                                               ("1900-01-01T00:00:00Z", "subscription_at"),
                                               ("9999-06-01T00:00:00Z", "ending_at")])
def test_a_moment_outside_the_years_billing_can_compute_is_refused(client: httpx.Client, moment: str,
                                                                   field: str) -> None:
    plan = {"name": "P", "code": "p", "interval": "monthly", "amount_cents": 100, "amount_currency": "USD"}
    assert client.post("/plans", json={"plan": plan}).status_code == 200
    response = client.post("/subscriptions", json={"subscription": {
        "external_customer_id": "acme", "plan_code": "p", "external_id": "s1", field: moment}})
    assert (response.status_code, response.json()) == (422, {
        "status": 422, "error": "Unprocessable Entity", "code": "validation_errors",
        "error_details": {field: ["value_is_invalid"]}})
    assert client.get("/subscriptions", params={"status[]": ["active", "pending"]}).json()["subscriptions"] == []


def test_a_currency_is_three_ascii_capitals(client: httpx.Client) -> None:
    response = client.post("/customers", json={"customer": {"external_id": "acme", "currency": "ÄÖÜ"}})
    assert (response.status_code, response.json()["error_details"]) == (422, {"currency": ["value_is_invalid"]})
    assert client.get("/customers/acme").status_code == 404
