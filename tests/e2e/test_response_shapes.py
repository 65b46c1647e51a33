"""A field Lago types as non-nullable is never null in meterline's answers, so typed clients parse them:
text meterline has no value for is "", any other such field is left out (and the OpenAPI document says so)."""

from __future__ import annotations

import httpx

from tests.conftest import Stack
from tests.e2e.invoice_support import (
    bill,
    customer,
    invoices_of,
    mtu_events,
    mtu_metric,
    per_unit,
    plan,
    send,
    subscribe,
    wait_archived,
)


def test_catalog_objects_answer_lago_defaults_instead_of_null(client: httpx.Client) -> None:
    metric = client.post("/billable_metrics", json={"billable_metric": {
        "name": "Calls", "code": "calls", "aggregation_type": "count_agg"}}).json()["billable_metric"]
    assert metric["expression"] == ""
    created = client.post("/plans", json={"plan": {"name": "P", "code": "p", "interval": "monthly",
                                                   "amount_cents": 100, "amount_currency": "USD"}}).json()["plan"]
    for body in (created, client.get("/plans/p").json()["plan"], client.get("/plans").json()["plans"][0]):
        assert (body["description"], body["invoice_display_name"]) == ("", "")
        assert "minimum_commitment" not in body
    described = client.put("/plans/p", json={"plan": {"description": "Team", "invoice_display_name": "Team plan"}})
    assert (described.json()["plan"]["description"], described.json()["plan"]["invoice_display_name"]) == (
        "Team", "Team plan")
    acme = client.post("/customers", json={"customer": {"external_id": "acme"}}).json()["customer"]
    assert (acme["billing_entity_code"], acme["billing_configuration"]) == ("", {"invoice_grace_period": 0})
    assert acme["invoice_grace_period"] is None  # not set: the top-level field says so
    subscription = client.post("/subscriptions", json={"subscription": {
        "external_customer_id": "acme", "plan_code": "p", "external_id": "s1"}}).json()["subscription"]
    listed = client.get("/subscriptions").json()["subscriptions"][0]
    for body in (subscription, listed):
        assert (body["billing_entity_code"], body["payment_method"], body["consolidate_invoice"]) == ("", {}, True)
    assert subscription["plan"]["description"] == "Team"


def test_a_draft_invoice_has_no_null_number_url_or_dispute_date(client: httpx.Client, stack: Stack,
                                                                unique: str) -> None:
    mtu_metric(client)
    plan(client, "std", amount=1000, advance=False, charges=[per_unit("mtu", "2")])
    customer(client, f"c-{unique}", grace=36500)  # stays a draft: the grace runs past any real now
    subscribe(client, f"c-{unique}", f"s-{unique}", "std", "2026-06-01T00:00:00Z")
    june = mtu_events(f"s-{unique}", "a", range(2), "2026-06-10T00:00:00Z")
    send(client, june)
    wait_archived(client, [june[-1]["transaction_id"]])
    bill("2026-07-01T01:00:00Z", unique)
    (listed,) = invoices_of(client, f"c-{unique}")
    draft = client.get(f"/invoices/{listed['lago_id']}").json()["invoice"]
    for body in (listed, draft):
        assert body["status"] == "draft"
        assert "sequential_id" not in body and "payment_dispute_lost_at" not in body
        assert (body["file_url"], body["customer"]["billing_entity_code"]) == ("", "")
    assert [fee["amount_cents"] for fee in draft["fees"]] == [1000, 400]
    assert all("pricing_unit_details" not in fee for fee in draft["fees"])
    final = client.put(f"/invoices/{listed['lago_id']}/finalize").json()["invoice"]
    assert (final["status"], final["sequential_id"], final["file_url"]) == ("finalized", 1, "")
