"""Webhooks: endpoints registered per organization receive invoice.created for a final invoice and
invoice.drafted for a draft (as Lago: no invoice.finalized), HMAC-signed, retried with backoff from the
outbox when the receiver fails."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from meterline.orgs import ensure_organization
from tests.builders import api
from tests.conftest import Services, Stack
from tests.e2e.invoice_support import bill, billed_last_month, customer, invoices_of, plan, subscribe
from tests.e2e.webhook_support import Receiver


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver(failures=1)
    yield found
    found.server.shutdown()


def test_invoice_webhooks_are_signed_delivered_and_retried(client: httpx.Client, receiver: Receiver,
                                                          services: Services, unique: str) -> None:
    response = client.post("/webhook_endpoints", json={"webhook_endpoint": {"webhook_url": receiver.url}})
    assert response.status_code == 200, response.text
    endpoint = response.json()["webhook_endpoint"]
    assert (endpoint["webhook_url"], endpoint["signature_algo"]) == (receiver.url, "hmac")
    plan(client, "basic", amount=900, advance=False)
    customer(client, f"c-{unique}", net_payment_term=3650)  # never overdue: no invoice.payment_overdue
    subscribe(client, f"c-{unique}", f"s-{unique}", "basic", "2026-04-01T00:00:00Z")
    bill("2026-05-01T00:00:00Z", unique)
    (invoice,) = invoices_of(client, f"c-{unique}")

    receiver.wait_for(2)  # subscription.started and invoice.created, by the biller loop `make up` started
    first_headers, _, first_status = receiver.received[0]
    assert first_status == 500
    unique_key = first_headers["X-Lago-Unique-Key"]
    retried = [h for h, _, _status in receiver.received[1:] if h["X-Lago-Unique-Key"] == unique_key]
    assert len(retried) == 1  # the failed delivery came again, with the same unique key
    delivered = {}
    for headers, body, status in receiver.received:
        expected = base64.b64encode(hmac.new(endpoint["hmac_key"].encode(), body, hashlib.sha256).digest()).decode()
        assert headers["X-Lago-Signature"] == expected
        assert headers["X-Lago-Signature-Algorithm"] == "hmac"
        if status == 200:
            payload = json.loads(body)
            delivered[payload["webhook_type"]] = payload
    assert sorted(delivered) == ["invoice.created", "subscription.started"]
    organization_id, _ = ensure_organization(services.sqlalchemy_url, f"test-{unique}")
    started = delivered.pop("subscription.started")
    assert (started["object_type"], started["organization_id"]) == ("subscription", organization_id)
    assert (started["subscription"]["external_id"], started["subscription"]["plan"]["code"]) == (
        f"s-{unique}", "basic")
    for payload in delivered.values():
        assert payload["object_type"] == "invoice"
        assert payload["organization_id"] == organization_id
        assert payload["invoice"]["lago_id"] == invoice["lago_id"]
        assert payload["invoice"]["total_amount_cents"] == 900
        assert payload["invoice"]["fees"][0]["amount_cents"] == 900
    time.sleep(1.5)
    assert len(receiver.received) == 3  # nothing is sent twice once it succeeded


def test_a_draft_is_announced_as_drafted_and_created_only_once_final(client: httpx.Client, unique: str) -> None:
    receiver = Receiver(failures=0)
    try:
        assert client.post("/webhook_endpoints", json={"webhook_endpoint": {"webhook_url": receiver.url}}
                           ).status_code == 200
        plan(client, "basic", amount=900, advance=False)
        # a grace period still running now: the biller loop that `make up` started leaves the draft alone
        customer(client, f"c-{unique}", grace=90, net_payment_term=3650)
        billed_last_month(client, unique, f"c-{unique}", f"s-{unique}", "basic")
        (invoice,) = invoices_of(client, f"c-{unique}")
        assert invoice["status"] == "draft"
        receiver.wait_for(2)
        time.sleep(1.5)  # anything else queued with the draft would be delivered by now
        kinds = sorted(json.loads(body)["webhook_type"] for _, body, _ in receiver.received)
        assert kinds == ["invoice.drafted", "subscription.started"]

        finalized = client.put(f"/invoices/{invoice['lago_id']}/finalize")
        assert finalized.status_code == 200 and finalized.json()["invoice"]["status"] == "finalized"
        receiver.wait_for(3)
        time.sleep(1.5)
        bodies = [b for b in (json.loads(body) for _, body, _ in receiver.received)
                  if b["object_type"] == "invoice"]
        assert [b["webhook_type"] for b in bodies] == ["invoice.drafted", "invoice.created"]
        final = {b["webhook_type"]: b["invoice"] for b in bodies}
        assert final["invoice.drafted"]["status"] == "draft"
        assert final["invoice.created"]["status"] == "finalized"
        assert final["invoice.created"]["lago_id"] == invoice["lago_id"]
    finally:
        receiver.server.shutdown()


def test_webhook_endpoint_validation_listing_and_deletion(client: httpx.Client, unique: str) -> None:
    def create(body: dict[str, Any]) -> httpx.Response:
        return client.post("/webhook_endpoints", json={"webhook_endpoint": body})

    assert create({"webhook_url": "ftp://example.com/x"}).json()["error_details"] == {"webhook_url": ["invalid_format"]}
    assert create({}).json()["error_details"] == {"webhook_url": ["value_is_mandatory"]}
    jwt = create({"webhook_url": "https://example.com/a", "signature_algo": "jwt"})
    assert (jwt.status_code, jwt.json()["error_details"]) == (422, {"signature_algo": ["value_is_invalid"]})
    no_root = client.post("/webhook_endpoints", json={"nope": {}})
    assert (no_root.status_code, no_root.json()) == (
        400, {"status": 400, "error": "BadRequest: param is missing or the value is empty: webhook_endpoint"})
    made = create({"webhook_url": f"https://example.com/{unique}", "name": "prod"})
    assert made.status_code == 200
    duplicate = create({"webhook_url": f"https://example.com/{unique}"})
    assert (duplicate.status_code, duplicate.json()["error_details"]) == (422, {"webhook_url": ["value_already_exist"]})
    lago_id = made.json()["webhook_endpoint"]["lago_id"]
    listed = client.get("/webhook_endpoints").json()
    assert [e["lago_id"] for e in listed["webhook_endpoints"]] == [lago_id]
    assert client.get(f"/webhook_endpoints/{lago_id}").json()["webhook_endpoint"]["name"] == "prod"
    assert client.delete(f"/webhook_endpoints/{lago_id}").status_code == 200
    gone = client.get(f"/webhook_endpoints/{lago_id}")
    assert (gone.status_code, gone.json()["code"]) == (404, "webhook_endpoint_not_found")
    assert client.delete("/webhook_endpoints/not-a-uuid").status_code == 404


def test_an_endpoint_slow_to_answer_holds_back_only_the_webhooks_about_its_own_objects(
        client: httpx.Client, stack: Stack, services: Services, unique: str) -> None:
    slow, quick = Receiver(failures=0, delay_s=6.0), Receiver(failures=0)
    try:
        _, key = ensure_organization(services.sqlalchemy_url, f"slow-{unique}")
        assert key is not None
        with api(stack.api_url, key) as other:
            assert other.post("/webhook_endpoints", json={"webhook_endpoint": {
                "webhook_url": slow.url}}).status_code == 200
            plan(other, "basic", amount=900, advance=False)
            customer(other, f"c-{unique}")
            for n in range(3):  # three objects: three webhooks the slow endpoint takes 6 s each to answer
                subscribe(other, f"c-{unique}", f"slow-{n}-{unique}", "basic", "2026-04-01T00:00:00Z")
        assert client.post("/webhook_endpoints", json={"webhook_endpoint": {
            "webhook_url": quick.url}}).status_code == 200
        deadline = time.monotonic() + 10
        while slow.arrived < 3:  # all three in flight, unanswered
            assert time.monotonic() < deadline, slow.arrived
            time.sleep(0.05)
        plan(client, "basic", amount=900, advance=False)
        customer(client, f"c-{unique}")
        queued = time.monotonic()
        subscribe(client, f"c-{unique}", f"s-{unique}", "basic", "2026-04-01T00:00:00Z")
        (started,) = quick.wait_for_type("subscription.started", 1, timeout_s=5)
        assert time.monotonic() - queued < 5  # not behind the slow endpoint's 6 s answers
        assert started["subscription"]["external_id"] == f"s-{unique}"
        assert slow.received == []  # still waiting for their answers
    finally:
        slow.server.shutdown()
        quick.server.shutdown()
