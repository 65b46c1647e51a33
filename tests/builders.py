"""Test data builders: the Segment catalog bodies as a client sends them, and an HTTP client per org."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx

from meterline.example import MTU_METRIC, team_plan


def metric_body(**overrides: Any) -> dict[str, Any]:
    return {"billable_metric": {**MTU_METRIC, **overrides}}


def plan_body(code: str = "segment_team", **overrides: Any) -> dict[str, Any]:
    return {"plan": {**team_plan(code), **overrides}}


def customer_body(external_id: str, **overrides: Any) -> dict[str, Any]:
    return {"customer": {"external_id": external_id, "name": "Acme Inc", "currency": "USD",
                         "timezone": "UTC", **overrides}}


def subscription_body(customer_id: str, external_id: str, plan_code: str = "segment_team",
                      **overrides: Any) -> dict[str, Any]:
    return {"subscription": {"external_customer_id": customer_id, "plan_code": plan_code,
                             "external_id": external_id, **overrides}}


def mtu_event(subscription_id: str, transaction_id: str, user: str, **overrides: Any) -> dict[str, Any]:
    return {"transaction_id": transaction_id, "code": MTU_METRIC["code"],
            "external_subscription_id": subscription_id, "timestamp": int(time.time()),
            "properties": {"user_id": user}, **overrides}


def api(base_url: str, key: str) -> httpx.Client:
    return httpx.Client(base_url=f"{base_url}/api/v1", timeout=30, headers={"Authorization": f"Bearer {key}"})


def poll_usage(client: httpx.Client, customer_id: str, subscription_id: str, until_units: int,
               timeout_s: float = 60) -> dict[str, Any]:
    """Poll current usage until the first charge reaches `until_units`, then once more to see it settle."""
    deadline = time.monotonic() + timeout_s
    last: dict[str, Any] = {}
    while time.monotonic() < deadline:
        response = client.get(f"/customers/{customer_id}/current_usage",
                              params={"external_subscription_id": subscription_id})
        assert response.status_code == 200, response.text
        last = response.json()["customer_usage"]
        if float(last["charges_usage"][0]["units"]) >= until_units:
            time.sleep(1.0)  # anything still in flight (a double count) would land now
            return client.get(f"/customers/{customer_id}/current_usage",
                              params={"external_subscription_id": subscription_id}).json()["customer_usage"]
        time.sleep(0.1)
    raise AssertionError(f"usage never reached {until_units} units: {last}")


def wait_for(condition: Callable[[], object], timeout_s: float, what: str) -> None:
    """Poll `condition` until it holds; fail the test naming `what` when it does not in time."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")
