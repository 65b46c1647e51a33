"""The OpenAPI documents the API and the ingest serve: valid OpenAPI 3.1, and exactly the routes each app serves."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from openapi_spec_validator import OpenAPIV31SpecValidator
from starlette.applications import Starlette
from starlette.routing import Route

from core.settings import load_settings
from tests.conftest import Stack

METHODS = {"get", "put", "post", "delete", "patch", "options", "head", "trace"}
# Starlette answers HEAD on every GET route by itself (the GET's headers, no body): not an operation of its own.
NOT_OPERATIONS = {"HEAD"}


def served_operations(app: Starlette) -> set[tuple[str, str]]:
    found = set()
    for route in app.routes:
        assert isinstance(route, Route), f"a route of another kind: {route!r}"
        path = re.sub(r"\{(\w+):\w+\}", r"{\1}", route.path)  # {transaction_id:path} -> {transaction_id}
        found |= {(method, path) for method in route.methods or () if method not in NOT_OPERATIONS}
    return found


def documented_operations(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {(method.upper(), path) for path, item in document["paths"].items() for method in item
            if method in METHODS}


def fetch(base_url: str) -> dict[str, Any]:
    response = httpx.get(f"{base_url}/api/v1/openapi.json", timeout=10)  # no API key: the document is public
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    return response.json()


def api_app() -> Starlette:
    from ingest.routes import EVENT_ROUTES
    from rater.app import create_app

    return create_app(load_settings(), EVENT_ROUTES)  # as `meterline api` builds it


def ingest_app() -> Starlette:
    from ingest.app import create_app

    return create_app(load_settings())


@pytest.mark.parametrize(("url_of", "build"), [(lambda s: s.api_url, api_app), (lambda s: s.ingest_url, ingest_app)],
                         ids=["api", "ingest"])
def test_the_served_document_is_openapi_3_1_with_every_route_and_nothing_else(stack: Stack, url_of: Any,
                                                                              build: Any) -> None:
    document = fetch(url_of(stack))
    assert document["openapi"] == "3.1.0"
    OpenAPIV31SpecValidator(document).validate()
    served, documented = served_operations(build()), documented_operations(document)
    assert served - documented == set(), "served but not documented"
    assert documented - served == set(), "documented but not served"


def test_the_api_documents_the_event_routes_as_the_ingest_does(stack: Stack) -> None:
    api, ingest = fetch(stack.api_url), fetch(stack.ingest_url)
    for path in ("/api/v1/events", "/api/v1/events/batch", "/api/v1/events/{transaction_id}"):
        assert api["paths"][path] == ingest["paths"][path]
    for name in ("EventInput", "Event", "ErrorValidation", "ErrorNotFound"):
        assert api["components"]["schemas"][name] == ingest["components"]["schemas"][name]


def test_fields_meterline_refuses_are_documented_as_refused(stack: Stack) -> None:
    document = fetch(stack.api_url)
    schemas = document["components"]["schemas"]
    customer = document["paths"]["/api/v1/customers"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    fields = customer["properties"]["customer"]["properties"]
    assert fields["billing_entity_code"]["enum"] == [None]
    assert fields["billing_entity_code"]["description"].startswith("Refused with `not_supported`")
    assert fields["account_type"]["enum"] == ["customer", None]
    assert schemas["BillableMetric"]["properties"]["expression"] == {
        "type": "string", "const": "", "description": "Expressions are refused (`not_supported`): always empty."}
