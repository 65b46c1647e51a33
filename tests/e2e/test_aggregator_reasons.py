"""The aggregator over HTTP: weighted_sum_agg in current usage, and the period_closed rejections
(an invoiced period, a terminated subscription), against the running processes."""

from __future__ import annotations

import time
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal

import httpx
import psycopg

from tests.builders import customer_body
from tests.conftest import Services
from tests.e2e.test_aggregator_faults import archived, rejected_messages, send, usage_of

STORAGE = {"name": "Storage", "code": "storage_gb", "aggregation_type": "weighted_sum_agg", "field_name": "gb"}
CALLS = {"name": "API calls", "code": "api_calls", "aggregation_type": "sum_agg", "field_name": "calls"}


def seed(client: httpx.Client, unique: str) -> tuple[str, str]:
    for metric in (CALLS, STORAGE):
        assert client.post("/billable_metrics", json={"billable_metric": metric}).status_code == 200
    plan = {"name": "Storage", "code": "storage", "interval": "monthly", "amount_cents": 0,
            "amount_currency": "USD", "charges": [
                {"billable_metric_code": "api_calls", "charge_model": "standard", "properties": {"amount": "0.05"}},
                {"billable_metric_code": "storage_gb", "charge_model": "standard", "properties": {"amount": "1"}},
            ]}
    assert client.post("/plans", json={"plan": plan}).status_code == 200
    customer_id, subscription_id = f"cust-{unique}", f"sub-{unique}"
    assert client.post("/customers", json=customer_body(customer_id)).status_code == 200
    body = {"subscription": {"external_customer_id": customer_id, "plan_code": "storage",
                             "external_id": subscription_id}}
    assert client.post("/subscriptions", json=body).status_code == 200
    return customer_id, subscription_id


def line(usage: dict, code: str) -> dict:
    return next(item for item in usage["charges_usage"] if item["billable_metric"]["code"] == code)


def parse(text: str) -> int:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1_000_000)


def test_weighted_sum_is_the_time_weighted_value_over_the_period(
        client: httpx.Client, ingest: httpx.Client, unique: str) -> None:
    customer_id, subscription_id = seed(client, unique)
    period = usage_of(client, customer_id, subscription_id)
    start_us, end_us = parse(period["from_datetime"]), parse(period["to_datetime"]) + 1000
    now = int(time.time())
    changes = [(now - 60, "10"), (now - 30, "2.5"), (now - 10, "-4")]  # GB added or removed, in any order
    events = [{"transaction_id": f"gb-{n}", "code": "storage_gb", "external_subscription_id": subscription_id,
               "timestamp": moment, "properties": {"gb": value}} for n, (moment, value) in enumerate(changes)]
    send(ingest, list(reversed(events)) + events[:1])  # out of order, and one repeated

    integral = sum(Decimal(value) * (end_us - moment * 1_000_000) for moment, value in changes)
    expected = (integral / (end_us - start_us)).quantize(Decimal("0.000001"), ROUND_HALF_EVEN)
    deadline = time.monotonic() + 60
    found = line(usage_of(client, customer_id, subscription_id), "storage_gb")
    while found["events_count"] < 3 and time.monotonic() < deadline:
        time.sleep(0.2)
        found = line(usage_of(client, customer_id, subscription_id), "storage_gb")
    time.sleep(1.5)
    found = line(usage_of(client, customer_id, subscription_id), "storage_gb")
    assert found["events_count"] == 3
    assert Decimal(found["units"]) == expected
    assert found["amount_cents"] == int((expected * 100).quantize(Decimal(1), ROUND_HALF_EVEN))


def test_events_of_an_invoiced_period_and_after_termination_are_period_closed(
        client: httpx.Client, ingest: httpx.Client, unique: str, services: Services) -> None:
    customer_id, subscription_id = seed(client, unique)
    now = int(time.time())
    send(ingest, [{"transaction_id": "open", "code": "api_calls", "external_subscription_id": subscription_id,
                   "timestamp": now, "properties": {"calls": 3}}])
    deadline = time.monotonic() + 60
    while line(usage_of(client, customer_id, subscription_id), "api_calls")["units"] != "3.0":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    period_key = datetime.fromisoformat(usage_of(client, customer_id, subscription_id)["from_datetime"]
                                        .replace("Z", "+00:00")).strftime("%Y%m%dT%H%M%SZ")
    with psycopg.connect(services.database_url) as conn:
        subscription_row = conn.execute("SELECT id, organization_id FROM subscriptions WHERE external_id = %s",
                                        (subscription_id,)).fetchone()
        assert subscription_row is not None
        conn.execute("INSERT INTO closed_periods (subscription_id, period_key) VALUES (%s, %s)",
                     (subscription_row[0], period_key))
    time.sleep(1.0)  # the aggregator's cached view is read again once the close is announced
    send(ingest, [{"transaction_id": "late", "code": "api_calls", "external_subscription_id": subscription_id,
                   "timestamp": now, "properties": {"calls": 4}}])

    assert client.delete(f"/subscriptions/{subscription_id}").status_code == 200
    time.sleep(1.0)
    send(ingest, [{"transaction_id": "after-end", "code": "api_calls", "external_subscription_id": subscription_id,
                   "timestamp": int(time.time()) + 5, "properties": {"calls": 5}}])

    organization_id = str(subscription_row[1])
    deadline = time.monotonic() + 60
    found = rejected_messages(services, organization_id)
    while len(found) < 2 and time.monotonic() < deadline:
        time.sleep(0.5)
        found = rejected_messages(services, organization_id)
    assert sorted((m["reason"], m["event"]["transaction_id"]) for m in found) == [
        ("period_closed", "after-end"), ("period_closed", "late")]
    assert archived(services, subscription_id) == (1, 1)
