"""Fuzzing every operation of the OpenAPI documents (schemathesis) against the running API and ingest.

Each operation gets schemathesis' phases (documented examples, coverage of boundaries and wrong types,
then generated cases, valid and invalid) with a fixed seed and a bounded number of examples, so the run is
the same every time and short enough for `make test`. `make fuzz` searches longer: more examples, a new
seed each run, a time budget (METERLINE_FUZZ_EXAMPLES, METERLINE_FUZZ_SEED, METERLINE_FUZZ_SECONDS).

Checks on every answer: no 5xx, its status code and content type documented for its operation, its body
matching the documented schema. All operations share one organization, and a last test reads back every
listing and every object they stored: a stored value that breaks a later read is a bug too.
"""

from __future__ import annotations

import os
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import schemathesis
from jsonschema import Draft202012Validator
from schemathesis import Case, Config
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from core.domain.lifecycle import STATUSES
from ingest.openapi import ingest_document
from meterline.orgs import ensure_organization
from rater.openapi import api_document
from tests.builders import api as api_client
from tests.conftest import Services, Stack

SEED = int(os.environ.get("METERLINE_FUZZ_SEED", "20"))  # 20: the issue that asked for it
EXAMPLES = int(os.environ.get("METERLINE_FUZZ_EXAMPLES", "40"))
# Per operation: past it, the remaining examples of the operation are generated but not sent.
SECONDS_PER_OPERATION = float(os.environ.get("METERLINE_FUZZ_SECONDS", "0")) or None
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
ANSWERS: dict[str, Counter[int]] = {}  # status codes answered per operation, printed at the end
STARTED: dict[str, float] = {}


def fuzz_config() -> Config:
    return Config.from_dict({
        "seed": SEED,
        "generation": {"max-examples": EXAMPLES, "mode": "all", "database": "none"},
        "phases": {"stateful": {"enabled": False}},
        # a slow CI machine must not fail on Hypothesis' own pacing, only on what the API answers
        "suppress-health-check": ["too_slow", "filter_too_much"],
        "request-timeout": 30,
        "max-stream-events": 1,  # the usage stream: its first event is enough
    })


# Loaded from the code, so collecting the tests needs no running stack; the first test checks that the
# stack serves exactly these documents.
API_DOCUMENT, INGEST_DOCUMENT = api_document(), ingest_document()
api = schemathesis.openapi.from_dict(API_DOCUMENT, config=fuzz_config())
ingest = schemathesis.openapi.from_dict(INGEST_DOCUMENT, config=fuzz_config())


# Made first from the document's own examples, so that the examples' identifiers (path parameters) name
# live objects and the boundary cases built on them reach past the 404s.
SEEDED = ("/api/v1/taxes", "/api/v1/coupons", "/api/v1/billable_metrics", "/api/v1/plans", "/api/v1/customers",
          "/api/v1/applied_coupons", "/api/v1/subscriptions", "/api/v1/subscriptions/{external_id}/alerts")


def example_path(path: str) -> str:
    """`path` with each path parameter replaced by its documented example."""
    for parameter in API_DOCUMENT["paths"][path]["post"].get("parameters", ()):
        if parameter["in"] == "path":
            path = path.replace(f"{{{parameter['name']}}}", quote(parameter["example"], safe=""))
    return path


@pytest.fixture(scope="module")
def fuzz_key(services: Services, stack: Stack) -> str:
    """One organization for the whole run: what one operation stores, the others read."""
    _, key = ensure_organization(services.sqlalchemy_url, f"fuzz-{uuid.uuid4().hex[:10]}")
    assert key is not None
    with api_client(stack.api_url, key) as client:
        for path in SEEDED:
            example = API_DOCUMENT["paths"][path]["post"]["requestBody"]["content"]["application/json"]["example"]
            created = client.post(example_path(path).removeprefix("/api/v1"), json=example)
            assert created.status_code == 200, f"the documented example of POST {path}: {created.text}"
    return key


@pytest.fixture(scope="module", autouse=True)
def report() -> Iterator[None]:
    began = time.monotonic()
    yield
    print(f"\nfuzzing with seed {SEED}, at most {EXAMPLES} generated examples per operation "
          f"({time.monotonic() - began:.0f} s); requests sent per operation, by status:")
    for label, statuses in sorted(ANSWERS.items()):
        by_status = ", ".join(f"{status}: {count}" for status, count in sorted(statuses.items()))
        print(f"  {sum(statuses.values()):6d}  {label}  ({by_status})")


def run(case: Case, service: str, base_url: str, key: str) -> None:
    label = f"{service} {case.operation.label}"
    started = STARTED.setdefault(label, time.monotonic())
    if SECONDS_PER_OPERATION is not None and time.monotonic() - started > SECONDS_PER_OPERATION:
        return
    auth = {"Authorization": f"Bearer {key}"}
    response = case.call(base_url=base_url, headers=auth)
    ANSWERS.setdefault(label, Counter())[response.status_code] += 1
    case.validate_response(response, checks=CHECKS, headers=auth)
    if case.operation.label == "POST /api/v1/webhook_endpoints" and response.status_code == 200:
        # Deleted at once: the biller would post this organization's webhooks to whatever URL was generated.
        endpoint = response.json()["webhook_endpoint"]["lago_id"]
        assert httpx.delete(f"{base_url}/api/v1/webhook_endpoints/{endpoint}", headers=auth).status_code == 200


def test_the_stack_serves_the_documents_fuzzed(stack: Stack) -> None:
    assert httpx.get(f"{stack.api_url}/api/v1/openapi.json").json() == API_DOCUMENT
    assert httpx.get(f"{stack.ingest_url}/api/v1/openapi.json").json() == INGEST_DOCUMENT


# Deletions last: the seeded objects stay live for every other operation.
@api.exclude(method="DELETE").parametrize()
def test_fuzz_the_api(case: Case, stack: Stack, fuzz_key: str) -> None:
    run(case, "api", stack.api_url, fuzz_key)


@api.include(method="DELETE").parametrize()
def test_fuzz_the_api_deletions(case: Case, stack: Stack, fuzz_key: str) -> None:
    run(case, "api", stack.api_url, fuzz_key)


@ingest.parametrize()
def test_fuzz_the_ingest(case: Case, stack: Stack, fuzz_key: str) -> None:
    run(case, "ingest", stack.ingest_url, fuzz_key)


def answer_of(path: str, response: httpx.Response) -> Any:
    """The 200 body of GET `path` (a documented path), validated against its documented schema."""
    assert response.status_code == 200, f"GET {response.request.url}: {response.status_code} {response.text}"
    schema = API_DOCUMENT["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    Draft202012Validator({**API_DOCUMENT, **schema}).validate(body := response.json())
    return body


def every(client: httpx.Client, path: str, root: str, documented: str | None = None, **params: Any
          ) -> list[dict[str, Any]]:
    """Every object of a listing (`documented`: its documented path, when `path` holds a path parameter)."""
    found: list[dict[str, Any]] = []
    page = 1
    while page:
        body = answer_of(documented or f"/api/v1/{path}",
                         client.get(f"/{path}", params={**params, "page": page, "per_page": 1000}))
        found += body[root]
        page = body["meta"]["next_page"]
    return found


def test_everything_the_fuzzing_stored_reads_back(stack: Stack, fuzz_key: str) -> None:
    with api_client(stack.api_url, fuzz_key) as client:
        one_by_one = [
            ("billable_metrics", "code", {}), ("plans", "code", {}), ("customers", "external_id", {}),
            ("webhook_endpoints", "lago_id", {}), ("invoices", "lago_id", {}), ("taxes", "code", {}),
            ("coupons", "code", {}),
        ]
        for collection, key, params in one_by_one:
            for item in every(client, collection, collection, **params):
                answer_of(f"/api/v1/{collection}/{{{key}}}", client.get(f"/{collection}/{quote(item[key], safe='')}"))
        every(client, "applied_coupons", "applied_coupons")
        for subscription in every(client, "subscriptions", "subscriptions", **{"status[]": list(STATUSES)}):
            external_id = quote(subscription['external_id'], safe='')
            answer_of("/api/v1/subscriptions/{external_id}", client.get(
                f"/subscriptions/{external_id}", params={"status": subscription["status"]}))
            answer_of("/api/v1/subscriptions/{external_id}/lifetime_usage",
                      client.get(f"/subscriptions/{external_id}/lifetime_usage"))
            if subscription["status"] in ("active", "pending"):
                for alert in every(client, f"subscriptions/{external_id}/alerts", "alerts",
                                   "/api/v1/subscriptions/{external_id}/alerts"):
                    answer_of("/api/v1/subscriptions/{external_id}/alerts/{code}", client.get(
                        f"/subscriptions/{external_id}/alerts/{quote(alert['code'], safe='')}"))
