"""What fuzzing the OpenAPI documents found (tests/e2e/test_fuzz.py), each kept as a regression test.

U+0000 in a query value or a path reached PostgreSQL, which cannot hold it in text: 500 (the ingest even
answered 503, as if the archive were down). A page number past bigint's range overflowed the offset.
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
