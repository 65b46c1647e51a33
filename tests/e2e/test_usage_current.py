"""Current usage over HTTP: Lago's shape, its error codes, and the live Server-Sent Events stream."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx

from tests.builders import api
from tests.conftest import Stack
from tests.e2e.invoice_support import create, customer, mtu_events, mtu_metric, per_unit, plan, send


def seed(client: httpx.Client, unique: str) -> tuple[str, str]:
    mtu_metric(client)
    create(client, "/billable_metrics", "billable_metric", {
        "name": "Storage", "code": "gb", "aggregation_type": "sum_agg", "field_name": "gb"})
    plan(client, "usage", amount=1000, advance=False, charges=[per_unit("mtu", "0.5"), per_unit("gb", "2")])
    customer(client, f"c-{unique}")
    create(client, "/subscriptions", "subscription", {
        "external_customer_id": f"c-{unique}", "plan_code": "usage", "external_id": f"s-{unique}"})
    return f"c-{unique}", f"s-{unique}"


def test_every_charge_is_listed_in_lagos_shape_even_at_zero(client: httpx.Client, unique: str) -> None:
    customer_id, subscription_id = seed(client, unique)
    response = client.get(f"/customers/{customer_id}/current_usage",
                          params={"external_subscription_id": subscription_id})
    assert response.status_code == 200, response.text
    usage = response.json()["customer_usage"]
    assert set(usage) == {"from_datetime", "to_datetime", "issuing_date", "lago_invoice_id", "currency",
                          "amount_cents", "taxes_amount_cents", "total_amount_cents", "charges_usage"}
    assert (usage["amount_cents"], usage["total_amount_cents"], usage["lago_invoice_id"]) == (0, 0, None)
    assert [(c["billable_metric"]["code"], c["units"], c["events_count"], c["amount_cents"])
            for c in usage["charges_usage"]] == [("mtu", "0.0", 0, 0), ("gb", "0.0", 0, 0)]
    line = usage["charges_usage"][1]
    assert set(line) == {"units", "total_aggregated_units", "events_count", "amount_cents", "amount_currency",
                         "pricing_unit_details", "charge", "billable_metric", "filters", "grouped_usage",
                         "presentation_breakdowns"}
    assert set(line["charge"]) == {"lago_id", "charge_model", "invoice_display_name"}
    assert set(line["billable_metric"]) == {"lago_id", "name", "code", "aggregation_type"}
    assert usage["to_datetime"].endswith("23:59:59.999Z")


def test_error_codes(client: httpx.Client, stack: Stack, unique: str) -> None:
    customer_id, subscription_id = seed(client, unique)
    for suffix in ("", "/stream"):
        path = f"/customers/{customer_id}/current_usage{suffix}"
        unknown_customer = client.get(f"/customers/nobody-{unique}/current_usage{suffix}",
                                      params={"external_subscription_id": subscription_id})
        assert unknown_customer.status_code == 404
        assert unknown_customer.json() == {"status": 404, "error": "Not Found", "code": "customer_not_found"}
        unknown_subscription = client.get(path, params={"external_subscription_id": "nope"})
        assert unknown_subscription.status_code == 405
        assert unknown_subscription.json() == {"status": 405, "error": "Method Not Allowed",
                                               "code": "no_active_subscription"}
        missing = client.get(path)
        assert missing.status_code == 400
        assert missing.json() == {
            "status": 400, "error": "BadRequest: param is missing or the value is empty: external_subscription_id"}
        anonymous = httpx.get(f"{stack.api_url}/api/v1{path}", params={"external_subscription_id": subscription_id})
        assert (anonymous.status_code, anonymous.json()) == (401, {"status": 401, "error": "Unauthorized"})
    create(client, "/subscriptions", "subscription", {  # pending: starts next year
        "external_customer_id": customer_id, "plan_code": "usage", "external_id": f"later-{unique}",
        "subscription_at": "2099-01-01T00:00:00Z"})
    pending = client.get(f"/customers/{customer_id}/current_usage",
                         params={"external_subscription_id": f"later-{unique}"})
    assert (pending.status_code, pending.json()["code"]) == (405, "no_active_subscription")
    assert client.delete(f"/subscriptions/{subscription_id}").status_code == 200
    time.sleep(1.1)  # the usage catalog cache (1 s) sees the termination
    terminated = client.get(f"/customers/{customer_id}/current_usage",
                            params={"external_subscription_id": subscription_id})
    assert (terminated.status_code, terminated.json()["code"]) == (405, "no_active_subscription")


def sse_events(response: httpx.Response) -> Iterator[tuple[str, dict[str, Any]]]:
    kind = ""
    for line in response.iter_lines():
        if line.startswith("event: "):
            kind = line[len("event: "):]
        elif line.startswith("data: "):
            yield kind, json.loads(line[len("data: "):])


def test_the_stream_pushes_the_usage_as_it_grows(client: httpx.Client, stack: Stack, org_key: str,
                                                 unique: str) -> None:
    customer_id, subscription_id = seed(client, unique)
    with api(stack.api_url, org_key) as streaming, streaming.stream(
            "GET", f"/customers/{customer_id}/current_usage/stream",
            params={"external_subscription_id": subscription_id}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = sse_events(response)
        kind, first = next(events)
        assert kind == "customer_usage"
        assert first["customer_usage"]["charges_usage"][0]["units"] == "0.0"
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        send(client, mtu_events(subscription_id, "u", range(40), now))
        seen = [first]
        began = time.monotonic()
        while seen[-1]["customer_usage"]["charges_usage"][0]["units"] != "40.0":
            assert time.monotonic() - began < 30, seen[-1]
            seen.append(next(events)[1])
        final = seen[-1]["customer_usage"]
        assert final["charges_usage"][0]["amount_cents"] == 2000
        assert final["total_amount_cents"] == 2000
        # each push differs from the one before: nothing is sent while the usage stays the same
        assert all(a != b for a, b in zip(seen, seen[1:], strict=False))
