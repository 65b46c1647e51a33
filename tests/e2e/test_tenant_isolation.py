"""Two organizations on one deployment: each sees only its own catalog, usage and events.

Another organization's object is always a 404 with the resource's code (never a 403, which would
tell that it exists), lists never show it, and the same codes can be used by both.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from meterline.orgs import ensure_organization
from tests.builders import api, customer_body, metric_body, mtu_event, plan_body, poll_usage, subscription_body
from tests.conftest import Services, Stack


@pytest.fixture
def other(stack: Stack, services: Services, unique: str) -> Iterator[httpx.Client]:
    """A second organization's client."""
    _, key = ensure_organization(services.sqlalchemy_url, f"test-other-{unique}")
    assert key is not None
    with api(stack.api_url, key) as http:
        yield http


def missing(response: httpx.Response, code: str) -> None:
    assert response.status_code == 404, response.text
    assert response.json() == {"status": 404, "error": "Not Found", "code": code}


def seed(client: httpx.Client) -> dict[str, dict]:
    objects = {
        "billable_metric": client.post("/billable_metrics", json=metric_body()).json()["billable_metric"],
        "plan": client.post("/plans", json=plan_body()).json()["plan"],
        "customer": client.post("/customers", json=customer_body("acme")).json()["customer"],
    }
    response = client.post("/subscriptions", json=subscription_body("acme", "sub-acme"))
    assert response.status_code == 200, response.text
    objects["subscription"] = response.json()["subscription"]
    return objects


RESOURCES = [
    ("/billable_metrics/monthly_tracked_users", "billable_metric", {"name": "stolen"}),
    ("/plans/segment_team", "plan", {"name": "stolen"}),
    ("/customers/acme", "customer", None),
    ("/subscriptions/sub-acme", "subscription", {"name": "stolen"}),
]


@pytest.mark.parametrize(("path", "root", "update"), RESOURCES)
def test_another_organizations_object_is_404_for_every_method(
        client: httpx.Client, other: httpx.Client, path: str, root: str, update: dict | None) -> None:
    mine = seed(client)
    code = f"{root}_not_found"
    missing(other.get(path), code)
    for status in ("active", "pending", "terminated"):
        if root == "subscription":
            missing(other.get(path, params={"status": status}), code)
    if update is not None:
        missing(other.put(path, json={root: update}), code)
    missing(other.delete(path), code)
    # and nothing happened to it
    after = client.get(path)
    assert after.status_code == 200
    assert after.json()[root]["lago_id"] == mine[root]["lago_id"]
    assert after.json()[root].get("name") == mine[root].get("name")
    assert after.json()[root].get("status", "active") == "active"


def test_lists_show_only_the_callers_objects(client: httpx.Client, other: httpx.Client) -> None:
    seed(client)
    for path, key in (("/billable_metrics", "billable_metrics"), ("/plans", "plans"), ("/customers", "customers"),
                      ("/subscriptions", "subscriptions")):
        body = other.get(path, params=[("status[]", s) for s in ("active", "pending", "terminated")]
                         if key == "subscriptions" else None).json()
        assert body[key] == [] and body["meta"]["total_count"] == 0, path
        assert client.get(path).json()["meta"]["total_count"] == 1, path
    assert other.get("/subscriptions", params={"external_customer_id": "acme"}).json()["subscriptions"] == []
    assert other.get("/subscriptions", params={"plan_code": "segment_team"}).json()["subscriptions"] == []


def test_references_across_organizations_are_404(client: httpx.Client, other: httpx.Client) -> None:
    mine = seed(client)
    # the other organization cannot subscribe to my plan, nor charge for my metric by id or code
    missing(other.post("/subscriptions", json=subscription_body("acme", "sub-x")), "plan_not_found")
    charge = {"charge_model": "standard", "properties": {"amount": "1"}}
    missing(other.post("/plans", json=plan_body("p", charges=[
        {**charge, "billable_metric_id": mine["billable_metric"]["lago_id"]}])), "billable_metric_not_found")
    missing(other.post("/plans", json=plan_body("p", charges=[
        {**charge, "billable_metric_code": "monthly_tracked_users"}])), "billable_metric_not_found")
    # my usage is not theirs
    missing(other.get("/customers/acme/current_usage", params={"external_subscription_id": "sub-acme"}),
            "customer_not_found")


def test_both_organizations_use_the_same_codes_independently(client: httpx.Client, other: httpx.Client) -> None:
    mine = seed(client)
    theirs = seed(other)
    for root in ("billable_metric", "plan", "customer", "subscription"):
        assert theirs[root]["lago_id"] != mine[root]["lago_id"], root
    # the other organization's subscription belongs to its own customer "acme", not to mine
    assert theirs["subscription"]["lago_customer_id"] == theirs["customer"]["lago_id"]
    # deleting theirs leaves mine alone
    assert other.delete("/subscriptions/sub-acme").json()["subscription"]["status"] == "terminated"
    assert other.delete("/customers/acme").status_code == 200
    assert client.get("/subscriptions/sub-acme").json()["subscription"]["status"] == "active"
    assert client.get("/customers/acme").status_code == 200


def test_events_count_only_in_their_organization(client: httpx.Client, other: httpx.Client, stack: Stack,
                                                 org_key: str) -> None:
    """Same subscription id and transaction ids in both organizations: each counts its own events."""
    seed(client)
    seed(other)
    other_key = other.headers["authorization"].split(" ", 1)[1]
    with api(stack.ingest_url, org_key) as mine_in, api(stack.ingest_url, other_key) as theirs_in:
        for http, users in ((mine_in, 3), (theirs_in, 5)):
            events = [mtu_event("sub-acme", f"tx-{n}", f"user-{n}") for n in range(users)]
            assert http.post("/events/batch", json={"events": events}).status_code == 200
    assert poll_usage(client, "acme", "sub-acme", until_units=3)["charges_usage"][0]["units"] == "3.0"
    assert poll_usage(other, "acme", "sub-acme", until_units=5)["charges_usage"][0]["units"] == "5.0"
    # an archived event is visible to its organization only
    deadline = time.monotonic() + 10
    while other.get("/events/tx-4").status_code != 200:
        assert time.monotonic() < deadline, "the event was never archived"
        time.sleep(0.1)
    response = client.get("/events/tx-4")
    assert response.status_code == 404 and response.json()["code"] == "event_not_found"
