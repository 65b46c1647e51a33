"""Catalog changes reach the running aggregator without a restart (its cached views are read again when a
change is announced, aggregator/catalog.py).

A new subscription is usable at once (nothing was cached for it); a new charge on a subscribed plan
within a second; a pending subscription from its start, before the API wrote its activation.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from tests.builders import customer_body, metric_body, mtu_event, plan_body, subscription_body

CALLS = {"name": "API calls", "code": "api_calls", "aggregation_type": "count_agg"}


def ok(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    return response.json()


def line_of(client: httpx.Client, customer: str, subscription: str, metric_code: str) -> dict[str, Any] | None:
    response = client.get(f"/customers/{customer}/current_usage", params={"external_subscription_id": subscription})
    if response.status_code == 405:  # a pending subscription until the API's activation (≤ 1 s)
        assert response.json()["code"] == "no_active_subscription"
        return None
    usage = ok(response)["customer_usage"]
    return next((line for line in usage["charges_usage"] if line["billable_metric"]["code"] == metric_code), None)


def wait_for_count(client: httpx.Client, customer: str, subscription: str, metric_code: str, events: int,
                   timeout_s: float = 30) -> float:
    """Seconds until the charge counts `events` events; then checks the count stays there."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        line = line_of(client, customer, subscription, metric_code)
        if line is not None and line["events_count"] >= events:
            elapsed = time.monotonic() - started
            time.sleep(1.0)
            settled = line_of(client, customer, subscription, metric_code)
            assert settled is not None and settled["events_count"] == events
            return elapsed
        time.sleep(0.05)
    raise AssertionError(f"{metric_code} never counted {events} events: {line}")


def send(ingest: httpx.Client, events: list[dict[str, Any]]) -> None:
    response = ingest.post("/events/batch", json={"events": events})
    assert response.status_code == 200, response.text


def test_events_right_after_a_new_subscription_count(client: httpx.Client, ingest: httpx.Client) -> None:
    ok(client.post("/billable_metrics", json=metric_body()))
    ok(client.post("/plans", json=plan_body()))
    ok(client.post("/customers", json=customer_body("acme")))
    ok(client.post("/subscriptions", json=subscription_body("acme", "fresh")))
    send(ingest, [mtu_event("fresh", f"tx-{n}", f"user-{n}") for n in range(25)])
    wait_for_count(client, "acme", "fresh", "monthly_tracked_users", 25)


def test_events_of_a_metric_added_to_a_running_plan_count(client: httpx.Client, ingest: httpx.Client) -> None:
    ok(client.post("/billable_metrics", json=metric_body()))
    plan = ok(client.post("/plans", json=plan_body()))["plan"]
    ok(client.post("/subscriptions", json=subscription_body("acme", "running")))
    # the subscription is known to the aggregator with the plan's first charge only
    send(ingest, [mtu_event("running", "tx-mtu", "user-1")])
    wait_for_count(client, "acme", "running", "monthly_tracked_users", 1)

    ok(client.post("/billable_metrics", json={"billable_metric": CALLS}))
    charges = [{"id": c["lago_id"], "charge_model": c["charge_model"], "properties": c["properties"]}
               for c in plan["charges"]]
    ok(client.put("/plans/segment_team", json={"plan": {"charges": [
        *charges, {"billable_metric_code": "api_calls", "charge_model": "standard", "properties": {"amount": "0.01"}},
    ]}}))
    # the aggregator may hold the plan's previous charges for its cache's 0.5 s: the promise is
    # "within a second", so events sent a second after the change must count, without a restart
    time.sleep(1.0)
    now = int(time.time())
    send(ingest, [{"transaction_id": f"call-{n}", "code": "api_calls", "external_subscription_id": "running",
                   "timestamp": now} for n in range(40)])
    wait_for_count(client, "acme", "running", "api_calls", 40)
    line = line_of(client, "acme", "running", "api_calls")
    assert line is not None and line["units"] == "40.0" and line["amount_cents"] == 40


def test_pending_subscription_counts_events_from_its_start(client: httpx.Client, ingest: httpx.Client) -> None:
    ok(client.post("/billable_metrics", json=metric_body()))
    ok(client.post("/plans", json=plan_body()))
    starts = datetime.now(UTC) + timedelta(seconds=1.5)
    created = ok(client.post("/subscriptions", json=subscription_body(
        "acme", "soon", subscription_at=starts.isoformat())))["subscription"]
    assert created["status"] == "pending"
    time.sleep(max(0.0, (starts - datetime.now(UTC)).total_seconds()) + 0.1)
    # sent as soon as it starts, whether or not the activation was written yet
    send(ingest, [mtu_event("soon", f"tx-{n}", f"user-{n}", timestamp=int(time.time()) + 1) for n in range(7)])
    wait_for_count(client, "acme", "soon", "monthly_tracked_users", 7)
    assert ok(client.get("/subscriptions/soon"))["subscription"]["status"] == "active"
