"""The Segment Team flow over HTTP against the running processes and real Kafka, Redis, PostgreSQL."""

from __future__ import annotations

import httpx

from tests.builders import (
    customer_body,
    metric_body,
    mtu_event,
    plan_body,
    poll_usage,
    subscription_body,
)


def seed(client: httpx.Client, unique: str) -> tuple[str, str]:
    assert client.post("/billable_metrics", json=metric_body()).status_code == 200
    assert client.post("/plans", json=plan_body()).status_code == 200
    customer_id, subscription_id = f"acme-{unique}", f"sub-{unique}"
    assert client.post("/customers", json=customer_body(customer_id)).status_code == 200
    response = client.post("/subscriptions", json=subscription_body(customer_id, subscription_id))
    assert response.status_code == 200, response.text
    assert response.json()["subscription"]["status"] == "active"
    return customer_id, subscription_id


def send_batches(http: httpx.Client, events: list[dict]) -> None:
    for start in range(0, len(events), 100):
        response = http.post("/events/batch", json={"events": events[start:start + 100]})
        assert response.status_code == 200, response.text
        assert len(response.json()["events"]) == len(events[start:start + 100])


def test_2000_users_with_repeated_transactions_count_exactly_once(
        client: httpx.Client, ingest: httpx.Client, unique: str) -> None:
    customer_id, subscription_id = seed(client, unique)
    events = [mtu_event(subscription_id, f"tx-{n}", f"user-{n}") for n in range(2000)]
    # every 4th event sent again with the same transaction_id (a client retry), and 300 more
    # events of already-seen users under new transaction_ids (the same user seen twice)
    retries = [dict(e) for e in events[::4]]
    revisits = [mtu_event(subscription_id, f"tx-again-{n}", f"user-{n}") for n in range(300)]
    send_batches(ingest, events[:1000] + retries + revisits)
    for event in events[1000:1010]:  # the API on :3000 takes single events too
        response = client.post("/events", json={"event": event})
        assert response.status_code == 200, response.text
        assert response.json()["event"]["transaction_id"] == event["transaction_id"]
    send_batches(ingest, events[1010:] + retries)

    usage = poll_usage(client, customer_id, subscription_id, until_units=2000)

    line = usage["charges_usage"][0]
    assert line["units"] == "2000.0"
    assert line["events_count"] == 2000
    assert line["amount_cents"] == 0
    assert usage["amount_cents"] == 0
    assert usage["currency"] == "USD"
    assert line["billable_metric"]["code"] == "monthly_tracked_users"
    assert line["charge"]["charge_model"] == "graduated"


def test_crossing_the_included_tier_is_priced_in_exact_cents(
        client: httpx.Client, ingest: httpx.Client, unique: str) -> None:
    customer_id, subscription_id = seed(client, unique)
    events = [mtu_event(subscription_id, f"tx-{n}", f"user-{n}") for n in range(10_050)]
    send_batches(ingest, events + events[:500])

    usage = poll_usage(client, customer_id, subscription_id, until_units=10_050)

    assert usage["charges_usage"][0]["units"] == "10050.0"
    assert usage["charges_usage"][0]["amount_cents"] == 60  # 50 MTUs x $0.012
    assert usage["total_amount_cents"] == 60
