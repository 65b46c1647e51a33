"""Once an invoice is final: its payment status and metadata (`PUT /invoices/{lago_id}`), voiding it, and the
biller marking it overdue once its due date passed unpaid, each with its webhook, sent once."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest
from lago_python_client.client import Client
from lago_python_client.exceptions import LagoApiError
from lago_python_client.models.invoice import Invoice, InvoiceMetadata, InvoiceMetadataList

from tests.conftest import Stack
from tests.e2e.invoice_support import bill, billed_last_month, customer, invoices_of, marked_overdue, plan, subscribe
from tests.e2e.webhook_support import Receiver


def final_invoice(client: httpx.Client, unique: str, net_payment_term: int = 3650, name: str = "c") -> dict[str, Any]:
    """A finalized April invoice of 900 cents, unpaid (never overdue with the default payment term)."""
    if client.get("/plans/basic").status_code != 200:
        plan(client, "basic", amount=900, advance=False)
    customer(client, f"{name}-{unique}", net_payment_term=net_payment_term)
    subscribe(client, f"{name}-{unique}", f"s-{name}-{unique}", "basic", "2026-04-01T00:00:00Z")
    bill("2026-05-01T00:00:00Z", unique)
    (invoice,) = invoices_of(client, f"{name}-{unique}")
    assert (invoice["status"], invoice["payment_status"], invoice["total_amount_cents"]) == (
        "finalized", "pending", 900)
    return invoice


def put(client: httpx.Client, lago_id: str, body: Any) -> httpx.Response:
    return client.put(f"/invoices/{lago_id}", json=body)


def webhooks(receiver: Receiver, webhook_type: str, count: int) -> list[dict[str, Any]]:
    """Exactly `count` webhooks of this type, once nothing more arrived for a second and a half."""
    found = receiver.wait_for_type(webhook_type, count)
    time.sleep(1.5)
    assert receiver.payloads(webhook_type) == found
    return found


def test_a_payment_status_is_recorded_once_announced_and_a_paid_invoice_is_not_due(
        client: httpx.Client, receiver: Receiver, unique: str) -> None:
    invoice = final_invoice(client, unique)
    response = put(client, invoice["lago_id"], {"invoice": {"payment_status": "failed"}})
    assert response.status_code == 200, response.text
    assert response.json()["invoice"]["payment_status"] == "failed"
    # a webhook carries the invoice as it is when sent (as Lago's): this one, sent before the next change
    (failed,) = receiver.wait_for_type("invoice.payment_status_updated", 1)
    assert (failed["object_type"], failed["invoice"]["lago_id"], failed["invoice"]["payment_status"]) == (
        "invoice", invoice["lago_id"], "failed")
    assert put(client, invoice["lago_id"], {"invoice": {"payment_status": "failed"}}).status_code == 200  # unchanged
    paid = put(client, invoice["lago_id"], {"invoice": {"payment_status": "succeeded"}}).json()["invoice"]
    assert (paid["payment_status"], paid["total_due_amount_cents"], paid["total_paid_amount_cents"]) == (
        "succeeded", 0, 900)

    updates = webhooks(receiver, "invoice.payment_status_updated", 2)  # failed, then succeeded: not the repeat
    assert [u["invoice"]["payment_status"] for u in updates] == ["failed", "succeeded"]
    assert client.get(f"/invoices/{invoice['lago_id']}").json()["invoice"]["payment_status"] == "succeeded"


def test_metadata_replaces_the_invoices_items(client: httpx.Client, unique: str) -> None:
    invoice = final_invoice(client, unique)
    first = put(client, invoice["lago_id"], {"invoice": {"metadata": [
        {"key": "po", "value": "PO-1"}, {"key": "ref", "value": "wire 7"}]}}).json()["invoice"]["metadata"]
    assert [(m["key"], m["value"]) for m in first] == [("po", "PO-1"), ("ref", "wire 7")]
    po = next(m for m in first if m["key"] == "po")
    # the po item updated by its id (its key too), ref left out: deleted; a new one added
    second = put(client, invoice["lago_id"], {"invoice": {"metadata": [
        {"id": po["lago_id"], "key": "order", "value": "PO-2"}, {"key": "note", "value": "net 30"}]}}
                 ).json()["invoice"]["metadata"]
    assert sorted((m["key"], m["value"]) for m in second) == [("note", "net 30"), ("order", "PO-2")]
    assert next(m for m in second if m["key"] == "order")["lago_id"] == po["lago_id"]
    listed = client.get("/invoices", params={"external_customer_id": f"c-{unique}"}).json()["invoices"]
    assert sorted(m["key"] for m in listed[0]["metadata"]) == ["note", "order"]
    assert put(client, invoice["lago_id"], {"invoice": {"metadata": []}}).json()["invoice"]["metadata"] == []


def test_invalid_updates_are_refused_with_lagos_codes(client: httpx.Client, unique: str) -> None:
    invoice = final_invoice(client, unique)
    lago_id = invoice["lago_id"]

    def refused(body: Any) -> dict[str, Any]:
        response = put(client, lago_id, body)
        assert response.status_code == 422, response.text
        details: dict[str, Any] = response.json()["error_details"]
        return details

    assert refused({"invoice": {"payment_status": "paid"}}) == {"payment_status": ["value_is_invalid"]}
    assert refused({"invoice": {"payment_status": 1}}) == {"payment_status": ["invalid_format"]}
    assert refused({"invoice": {"metadata": [{"key": str(n), "value": "v"} for n in range(6)]}}) == {
        "metadata": ["invalid_count"]}
    assert refused({"invoice": {"metadata": {"key": "a", "value": "b"}}}) == {"metadata": ["invalid_format"]}
    assert refused({"invoice": {"metadata": [{"key": "k" * 21, "value": "v"}]}}) == {
        "metadata.key": ["value_is_too_long"]}
    assert refused({"invoice": {"metadata": [{"key": "k", "value": "v" * 141}]}}) == {
        "metadata.value": ["value_is_too_long"]}
    assert refused({"invoice": {"metadata": [{"key": "k"}]}}) == {"metadata.value": ["value_is_mandatory"]}
    assert refused({"invoice": {"metadata": [{"key": "k", "value": "1"}, {"key": "k", "value": "2"}]}}) == {
        "metadata.key": ["value_already_exist"]}
    assert put(client, lago_id, {"payment_status": "succeeded"}).status_code == 400  # no `invoice` root
    malformed = client.put(f"/invoices/{lago_id}", content=b'{"invoice": ',
                           headers={"Content-Type": "application/json"})
    assert malformed.status_code == 400
    assert put(client, "00000000-0000-4000-8000-000000000000", {"invoice": {"payment_status": "succeeded"}}
               ).json()["code"] == "invoice_not_found"
    wrong_key = client.put(f"/invoices/{lago_id}", json={"invoice": {"payment_status": "succeeded"}},
                           headers={"Authorization": "Bearer not-a-key"})
    assert wrong_key.status_code == 401
    again = client.get(f"/invoices/{lago_id}").json()["invoice"]
    assert (again["payment_status"], again["metadata"]) == ("pending", [])  # nothing refused was written


def test_a_draft_takes_neither_a_payment_status_nor_metadata(client: httpx.Client, unique: str) -> None:
    plan(client, "basic", amount=900, advance=False)
    customer(client, f"c-{unique}", grace=90)  # a grace period still running: the draft stays a draft
    billed_last_month(client, unique, f"c-{unique}", f"s-{unique}", "basic")
    (draft,) = invoices_of(client, f"c-{unique}")
    assert draft["status"] == "draft"
    changed = put(client, draft["lago_id"], {"invoice": {"payment_status": "succeeded"}})
    assert (changed.status_code, changed.json()["code"]) == (405, "payment_status_update_on_draft_invoice")
    tagged = put(client, draft["lago_id"], {"invoice": {"metadata": [{"key": "po", "value": "1"}]}})
    assert (tagged.status_code, tagged.json()["code"]) == (405, "metadata_on_draft_invoice")
    assert put(client, draft["lago_id"], {"invoice": {"payment_status": "pending"}}).status_code == 200  # unchanged
    voided = client.post(f"/invoices/{draft['lago_id']}/void")
    assert (voided.status_code, voided.json()["code"]) == (405, "not_voidable")


def test_a_final_unpaid_invoice_is_voided_once_and_a_paid_one_never(client: httpx.Client, receiver: Receiver,
                                                                    unique: str) -> None:
    invoice = final_invoice(client, unique)
    response = client.post(f"/invoices/{invoice['lago_id']}/void")
    assert response.status_code == 200, response.text
    voided = response.json()["invoice"]
    assert (voided["status"], voided["total_due_amount_cents"], voided["payment_overdue"]) == ("voided", 0, False)
    assert voided["voided_at"] is not None
    again = client.post(f"/invoices/{invoice['lago_id']}/void")
    assert (again.status_code, again.json()["code"]) == (405, "not_voidable")
    paying = put(client, invoice["lago_id"], {"invoice": {"payment_status": "succeeded"}})
    assert (paying.status_code, paying.json()["code"]) == (405, "payment_status_update_on_voided_invoice")
    (announced,) = webhooks(receiver, "invoice.voided", 1)
    assert (announced["invoice"]["lago_id"], announced["invoice"]["status"]) == (invoice["lago_id"], "voided")
    listed = client.get("/invoices", params={"external_customer_id": f"c-{unique}", "statuses[]": "voided"})
    assert [i["lago_id"] for i in listed.json()["invoices"]] == [invoice["lago_id"]]
    # the period stays billed: billing again makes no second April invoice
    assert bill("2026-05-01T00:00:00Z", unique)["invoices"] == 0

    paid = final_invoice(client, unique, name="d")
    assert put(client, paid["lago_id"], {"invoice": {"payment_status": "succeeded"}}).status_code == 200
    refused = client.post(f"/invoices/{paid['lago_id']}/void")
    assert (refused.status_code, refused.json()["code"]) == (405, "not_voidable")
    options = client.post(f"/invoices/{invoice['lago_id']}/void", json={"generate_credit_note": True,
                                                                         "refund_amount": 100})
    assert options.status_code == 422
    assert options.json()["error_details"] == {"generate_credit_note": ["not_supported"],
                                               "refund_amount": ["not_supported"]}


def test_the_biller_marks_an_unpaid_invoice_overdue_once_and_a_payment_ends_it(
        client: httpx.Client, receiver: Receiver, unique: str) -> None:
    invoice = final_invoice(client, unique, net_payment_term=0)  # due May 1: long past
    not_due = final_invoice(client, unique, net_payment_term=3650, name="d")  # due in 2036
    overdue = marked_overdue(client, invoice["lago_id"])
    assert (overdue["payment_due_date"], overdue["payment_status"]) == ("2026-05-01", "pending")
    # the round that marked one saw the other too
    assert client.get(f"/invoices/{not_due['lago_id']}").json()["invoice"]["payment_overdue"] is False
    (announced,) = webhooks(receiver, "invoice.payment_overdue", 1)
    assert (announced["invoice"]["lago_id"], announced["invoice"]["payment_overdue"]) == (invoice["lago_id"], True)
    failed = put(client, invoice["lago_id"], {"invoice": {"payment_status": "failed"}}).json()["invoice"]
    assert failed["payment_overdue"] is True  # still unpaid
    paid = put(client, invoice["lago_id"], {"invoice": {"payment_status": "succeeded"}}).json()["invoice"]
    assert paid["payment_overdue"] is False
    time.sleep(1.5)
    kinds = [json.loads(body)["webhook_type"] for _, body, _ in receiver.received]
    assert kinds.count("invoice.payment_overdue") == 1


def test_lagos_python_client_updates_and_voids_invoices(client: httpx.Client, stack: Stack, org_key: str,
                                                       unique: str) -> None:
    first, second = final_invoice(client, unique), final_invoice(client, unique, name="d")
    lago = Client(api_key=org_key, api_url=f"{stack.api_url}/")  # it appends "api/v1/" itself
    paid = Invoice(payment_status="succeeded", metadata=InvoiceMetadataList(__root__=[
        InvoiceMetadata(id=None, key="payment_ref", value="wire 2026-07-03")]))
    updated = lago.invoices.update(paid, first["lago_id"])  # type: ignore[misc]  # the client's mixin typing
    assert updated.payment_status == "succeeded" and updated.metadata is not None
    assert [(m.key, m.value) for m in updated.metadata.__root__] == [("payment_ref", "wire 2026-07-03")]
    voided = lago.invoices.void(second["lago_id"])
    assert (voided.status, voided.lago_id) == ("voided", second["lago_id"])
    with pytest.raises(LagoApiError) as refused:
        lago.invoices.void(first["lago_id"])  # paid
    assert refused.value.status_code == 405
