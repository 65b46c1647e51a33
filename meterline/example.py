"""The Segment example, end to end over HTTP: catalog, events with repeats, then current usage.

It only speaks the public API, exactly as a user's own code would.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx

MTU_METRIC = {
    "name": "Monthly Tracked Users",
    "code": "monthly_tracked_users",
    "description": "Distinct user_id values seen in the billing period",
    "aggregation_type": "unique_count_agg",
    "field_name": "user_id",
    "recurring": False,
}


def team_plan(code: str = "segment_team") -> dict[str, Any]:
    return {
        "name": "Team",
        "code": code,
        "interval": "monthly",
        "amount_cents": 12000,
        "amount_currency": "USD",
        "pay_in_advance": True,
        "trial_period": 14,
        "charges": [
            {
                "billable_metric_code": MTU_METRIC["code"],
                "charge_model": "graduated",
                "properties": {
                    "graduated_ranges": [
                        {"from_value": 0, "to_value": 10000, "per_unit_amount": "0", "flat_amount": "0"},
                        {"from_value": 10001, "to_value": 25000, "per_unit_amount": "0.012", "flat_amount": "0"},
                        {"from_value": 25001, "to_value": 100000, "per_unit_amount": "0.011", "flat_amount": "0"},
                        {"from_value": 100001, "to_value": None, "per_unit_amount": "0.010", "flat_amount": "0"},
                    ]
                },
            }
        ],
    }


class Client:
    def __init__(self, base_url: str, api_key: str):
        self.http = httpx.Client(base_url=f"{base_url}/api/v1", timeout=30,
                                 headers={"Authorization": f"Bearer {api_key}"})

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = self.http.post(path, json=body)
        if response.status_code != 200:
            raise RuntimeError(f"POST {path} -> {response.status_code}: {response.text}")
        return response.json()

    def get(self, path: str, **params: str) -> httpx.Response:
        return self.http.get(path, params=params)


def mtu_events(subscription_id: str, users: int, repeats_every: int, run: str) -> list[dict[str, Any]]:
    """One event per user, plus a re-sent copy (same transaction_id) of every `repeats_every`-th one,
    and a second event (new transaction_id) for every 3rd user: repeats must not change the MTU count."""
    now = int(time.time())
    events = []
    for user in range(users):
        base = {"code": MTU_METRIC["code"], "external_subscription_id": subscription_id, "timestamp": now,
                "properties": {"user_id": f"user_{user}"}}
        events.append({**base, "transaction_id": f"{run}-{user}"})
        if user % repeats_every == 0:
            events.append({**base, "transaction_id": f"{run}-{user}"})
        if user % 3 == 0:
            events.append({**base, "transaction_id": f"{run}-{user}-page"})
    return events


def send(client: Client, events: list[dict[str, Any]], batch: int = 100) -> None:
    for start in range(0, len(events), batch):
        client.post("/events/batch", {"events": events[start:start + batch]})


def wait_for_units(client: Client, customer_id: str, subscription_id: str, units: int,
                   timeout_s: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    usage: dict[str, Any] = {}
    while time.monotonic() < deadline:
        response = client.get(f"/customers/{customer_id}/current_usage", external_subscription_id=subscription_id)
        if response.status_code == 200:
            usage = response.json()["customer_usage"]
            if usage["charges_usage"] and float(usage["charges_usage"][0]["units"]) >= units:
                return usage
        time.sleep(0.2)
    raise TimeoutError(f"current usage did not reach {units} units within {timeout_s:.0f}s: {usage}")


def run(base_url: str, api_key: str, users: int = 3000, say: Callable[[str], None] = print) -> dict[str, Any]:
    client = Client(base_url, api_key)
    suffix = uuid.uuid4().hex[:8]
    metric = client.get(f"/billable_metrics/{MTU_METRIC['code']}")
    if metric.status_code == 404:
        client.post("/billable_metrics", {"billable_metric": MTU_METRIC})
    plan_code = "segment_team"
    if client.get(f"/plans/{plan_code}").status_code == 404:
        client.post("/plans", {"plan": team_plan(plan_code)})
    customer_id = f"acme_{suffix}"
    subscription_id = f"sub_acme_{suffix}"
    client.post("/customers", {"customer": {"external_id": customer_id, "name": "Acme Inc", "currency": "USD",
                                            "timezone": "America/New_York"}})
    client.post("/subscriptions", {"subscription": {"external_customer_id": customer_id, "plan_code": plan_code,
                                                    "external_id": subscription_id, "name": "Acme on Team"}})
    say(f"created customer {customer_id} on plan {plan_code} (subscription {subscription_id})")
    events = mtu_events(subscription_id, users, repeats_every=5, run=suffix)
    began = time.monotonic()
    send(client, events)
    say(f"sent {len(events)} events for {users} distinct users in {time.monotonic() - began:.1f}s")
    return wait_for_units(client, customer_id, subscription_id, users)
