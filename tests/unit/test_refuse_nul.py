"""core.http.nul_error: which answer a path or query string holding U+0000 gets (no services)."""

from __future__ import annotations

import pytest

from core.http import nul_error


@pytest.mark.parametrize(("path", "code"), [
    ("/api/v1/customers/a\x00b", "customer_not_found"),
    ("/api/v1/customers/a\x00/current_usage", "customer_not_found"),
    ("/api/v1/billable_metrics/\x00", "billable_metric_not_found"),
    ("/api/v1/events/tx\x00", "event_not_found"),
    ("/health\x00", "resource_not_found"),
])
def test_a_path_holding_nul_names_no_object(path: str, code: str) -> None:
    error = nul_error(path, b"")
    assert error is not None
    assert (error.status, error.body) == (404, {"status": 404, "error": "Not Found", "code": code})


def test_a_query_value_holding_nul_is_refused_naming_each_parameter() -> None:
    error = nul_error("/api/v1/customers", b"page=1&search_term=a%00&currencies%5B%5D=%00&account_type%5B%5D=ok")
    assert error is not None
    assert (error.status, error.body["error_details"]) == (
        422, {"search_term": ["value_is_invalid"], "currencies[]": ["value_is_invalid"]})


@pytest.mark.parametrize("query", [b"", b"page=1&per_page=20", b"search_term=100%2500", b"a=%2F%20"])
def test_anything_else_passes(query: bytes) -> None:
    assert nul_error("/api/v1/customers/acme%2Feu", query) is None
