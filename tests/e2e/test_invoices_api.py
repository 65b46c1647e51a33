"""The invoice API: drafts during the grace period (refresh, finalize), filters, pagination, errors."""

from __future__ import annotations

import time
import uuid

import httpx

from tests.builders import api
from tests.conftest import Stack
from tests.e2e.invoice_support import (
    bill,
    customer,
    fee_lines,
    invoices_of,
    mtu_events,
    mtu_metric,
    per_unit,
    plan,
    send,
    subscribe,
    wait_archived,
)


def seed(client: httpx.Client, unique: str, grace: int | None = None) -> None:
    mtu_metric(client)
    plan(client, "std", amount=1000, advance=False, charges=[per_unit("mtu", "2")])
    customer(client, f"c-{unique}", grace=grace)
    subscribe(client, f"c-{unique}", f"s-{unique}", "std", "2026-06-01T00:00:00Z")


def test_draft_during_grace_counts_late_events_on_refresh_then_finalizes_and_closes_the_period(
        client: httpx.Client, unique: str) -> None:
    seed(client, unique, grace=36500)  # the grace runs past any real now, so the biller loop leaves it a draft
    june = mtu_events(f"s-{unique}", "a", range(2), "2026-06-10T00:00:00Z")
    send(client, june)
    wait_archived(client, [june[-1]["transaction_id"]])
    bill("2026-07-01T01:00:00Z", unique)
    (draft,) = invoices_of(client, f"c-{unique}")
    assert (draft["status"], draft["payment_status"]) == ("draft", "pending")
    assert "sequential_id" not in draft  # numbered once final (Lago types it non-nullable: left out, never null)
    assert draft["number"].endswith("-DRAFT")
    assert draft["total_amount_cents"] == 1000 + 400

    late = mtu_events(f"s-{unique}", "late", range(2, 5), "2026-06-30T23:00:00Z")  # accepted: June is open
    send(client, late)
    wait_archived(client, [late[-1]["transaction_id"]])
    assert client.get(f"/invoices/{draft['lago_id']}").json()["invoice"]["total_amount_cents"] == 1400
    refreshed = client.put(f"/invoices/{draft['lago_id']}/refresh")
    assert refreshed.status_code == 200, refreshed.text
    assert fee_lines(refreshed.json()["invoice"]) == [("subscription", "std", "1.0", 1000),
                                                       ("charge", "mtu", "5.0", 1000)]
    assert refreshed.json()["invoice"]["status"] == "draft"

    final = client.put(f"/invoices/{draft['lago_id']}/finalize")
    assert final.status_code == 200, final.text
    body = final.json()["invoice"]
    assert (body["status"], body["sequential_id"], body["total_amount_cents"]) == ("finalized", 1, 2000)
    assert body["number"].endswith("-001")
    again = client.put(f"/invoices/{draft['lago_id']}/finalize")  # finalizing twice changes nothing
    assert (again.status_code, again.json()["invoice"]["number"]) == (200, body["number"])
    assert client.put(f"/invoices/{draft['lago_id']}/refresh").json()["invoice"]["total_amount_cents"] == 2000

    too_late = mtu_events(f"s-{unique}", "too-late", range(9, 10), "2026-06-30T23:30:00Z")
    barrier = mtu_events(f"s-{unique}", "barrier", range(9, 10), "2026-07-02T00:00:00Z")
    time.sleep(1.0)  # the aggregator's catalog cache sees the closed period
    send(client, too_late + barrier)
    wait_archived(client, [barrier[0]["transaction_id"]])
    assert client.get(f"/events/{too_late[0]['transaction_id']}").status_code == 404


def test_a_draft_is_finalized_by_the_biller_when_its_grace_ends(client: httpx.Client, unique: str) -> None:
    # grace periods that end after the real now, so that the biller loop (billing as of now) leaves them
    seed(client, unique, grace=400)
    bill("2026-07-01T00:00:00Z", unique)
    assert [i["status"] for i in invoices_of(client, f"c-{unique}")] == ["draft"]
    bill("2027-08-04T23:59:00Z", unique)  # July 1st + 400 days = August 5th, 2027
    july = invoices_of(client, f"c-{unique}")[0]
    assert (july["issuing_date"], july["status"]) == ("2026-07-01", "draft")
    bill("2027-08-05T00:00:00Z", unique)
    july = invoices_of(client, f"c-{unique}")[0]
    assert (july["status"], july["sequential_id"], july["total_amount_cents"]) == ("finalized", 1, 1000)


def test_list_filters_and_pagination(client: httpx.Client, unique: str) -> None:
    seed(client, unique)
    customer(client, f"other-{unique}")
    subscribe(client, f"other-{unique}", f"o-{unique}", "std", "2026-06-01T00:00:00Z")
    bill("2026-09-01T00:00:00Z", unique)  # June, July, August for each customer

    def listed(**params: object) -> dict:
        response = client.get("/invoices", params=params)
        assert response.status_code == 200, response.text
        return response.json()

    everything = listed()
    assert everything["meta"]["total_count"] == 6
    mine = listed(external_customer_id=f"c-{unique}")
    assert [i["issuing_date"] for i in mine["invoices"]] == ["2026-09-01", "2026-08-01", "2026-07-01"]
    assert all(i["customer"]["external_id"] == f"c-{unique}" for i in mine["invoices"])
    window = listed(issuing_date_from="2026-08-01", issuing_date_to="2026-08-31")
    assert [i["issuing_date"] for i in window["invoices"]] == ["2026-08-01", "2026-08-01"]
    assert listed(**{"statuses[]": "draft"})["meta"]["total_count"] == 0
    assert listed(**{"statuses[]": "finalized"})["meta"]["total_count"] == 6
    page = listed(page=2, per_page=4)
    assert len(page["invoices"]) == 2
    assert page["meta"] == {"current_page": 2, "next_page": None, "prev_page": 1, "total_pages": 2,
                            "total_count": 6}
    assert listed(external_customer_id="nobody")["meta"]["current_page"] == 0


def test_errors(client: httpx.Client, stack: Stack, unique: str) -> None:
    seed(client, unique)
    bill("2026-07-01T00:00:00Z", unique)
    (invoice,) = invoices_of(client, f"c-{unique}")
    for method, path in (("GET", ""), ("PUT", "/finalize"), ("PUT", "/refresh")):
        for lago_id in (str(uuid.uuid4()), "not-a-uuid"):
            response = client.request(method, f"/invoices/{lago_id}{path}")
            assert response.status_code == 404
            assert response.json() == {"status": 404, "error": "Not Found", "code": "invoice_not_found"}
    bad_status = client.get("/invoices", params={"statuses[]": "paid"})
    assert bad_status.status_code == 422
    assert bad_status.json()["error_details"] == {"status": ["value_is_invalid"]}
    bad_date = client.get("/invoices", params={"issuing_date_from": "July"})
    assert bad_date.status_code == 400
    assert bad_date.json() == {"status": 400, "error": "BadRequest: issuing_date_from must be a date (YYYY-MM-DD)"}
    pages = client.get("/invoices", params={"per_page": 0})
    assert (pages.status_code, pages.json()) == (400, {
        "status": 400, "error": "BadRequest: page must be between 1 and 2147483647 and per_page between 1 and 1000"})
    unauthorized = httpx.get(f"{stack.api_url}/api/v1/invoices/{invoice['lago_id']}")
    assert (unauthorized.status_code, unauthorized.json()) == (401, {"status": 401, "error": "Unauthorized"})


def test_another_organization_cannot_see_or_change_an_invoice(client: httpx.Client, stack: Stack, services,
                                                               unique: str) -> None:
    from meterline.orgs import ensure_organization

    seed(client, unique)
    bill("2026-07-01T00:00:00Z", unique)
    (invoice,) = invoices_of(client, f"c-{unique}")
    _, key = ensure_organization(services.sqlalchemy_url, f"intruder-{unique}")
    assert key is not None
    with api(stack.api_url, key) as intruder:
        not_found = {"status": 404, "error": "Not Found", "code": "invoice_not_found"}
        for response in (intruder.get(f"/invoices/{invoice['lago_id']}"),
                         intruder.put(f"/invoices/{invoice['lago_id']}/finalize")):
            assert (response.status_code, response.json()) == (404, not_found)
        assert intruder.get("/invoices").json()["meta"]["total_count"] == 0


def test_lagos_python_client_reads_lists_refreshes_and_finalizes_invoices(client: httpx.Client, stack: Stack,
                                                                         org_key: str, unique: str) -> None:
    from lago_python_client.client import Client

    seed(client, unique, grace=400)
    june = mtu_events(f"s-{unique}", "a", range(3), "2026-06-10T00:00:00Z")
    send(client, june)
    wait_archived(client, [june[-1]["transaction_id"]])
    bill("2026-07-01T00:00:00Z", unique)
    lago = Client(api_key=org_key, api_url=f"{stack.api_url}/")
    listed = lago.invoices.find_all({"external_customer_id": f"c-{unique}"})
    (summary,) = listed["invoices"]
    assert (summary.status, summary.total_amount_cents, summary.currency) == ("draft", 1600, "USD")
    invoice = lago.invoices.find(summary.lago_id)
    assert [(f.item.type, f.amount_cents) for f in invoice.fees.__root__] == [("subscription", 1000), ("charge", 600)]
    assert invoice.billing_periods.__root__[0].invoicing_reason == "subscription_periodic"
    assert invoice.customer.external_id == f"c-{unique}"
    assert lago.invoices.refresh(summary.lago_id).total_amount_cents == 1600
    final = lago.invoices.finalize(summary.lago_id)
    assert (final.status, final.sequential_id) == ("finalized", 1)
