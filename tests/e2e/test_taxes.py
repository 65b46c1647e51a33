"""Taxes through the API: `/taxes`, `tax_codes` on customers, plans and charges, taxed invoices to the cent
(the contract's Team customer with 30,000 MTUs and a 20% VAT), and taxed current usage."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import httpx
import pytest
from lago_python_client.client import Client
from lago_python_client.exceptions import LagoApiError
from lago_python_client.models import Customer, Tax

from meterline.example import team_plan
from tests.builders import metric_body
from tests.conftest import Stack
from tests.e2e.invoice_support import (
    bill,
    billed_last_month,
    create,
    customer,
    invoices_of,
    mtu_events,
    plan,
    send,
    subscribe,
    wait_archived,
)
from tests.e2e.test_plan_changes import cents, days_in_month, previous_month

CODE = "monthly_tracked_users"


def tax(client: httpx.Client, code: str, rate: Any, **more: Any) -> dict[str, Any]:
    return create(client, "/taxes", "tax", {"name": code.upper(), "code": code, "rate": rate, **more})


def errors(response: httpx.Response) -> dict[str, list[str]]:
    assert response.status_code == 422, response.text
    details: dict[str, list[str]] = response.json()["error_details"]
    return details


def test_taxes_are_created_changed_listed_and_deleted_with_lagos_errors(client: httpx.Client) -> None:
    vat = tax(client, "vat", "20.0", description="Standard VAT")
    assert {k: vat[k] for k in ("name", "code", "rate", "description", "applied_to_organization")} == {
        "name": "VAT", "code": "vat", "rate": 20, "description": "Standard VAT", "applied_to_organization": False}
    assert errors(client.post("/taxes", json={"tax": {"name": "Again", "code": "vat", "rate": 5}})) == {
        "code": ["value_already_exist"]}
    assert errors(client.post("/taxes", json={"tax": {"code": "x"}})) == {
        "name": ["value_is_mandatory"], "rate": ["value_is_mandatory"]}
    for rate, code in (("abc", "invalid_format"), (True, "invalid_format"), (150, "value_is_out_of_range"),
                       ("-1", "value_is_out_of_range"), ("20.123456", "value_is_out_of_range"),
                       ("NaN", "invalid_format")):
        assert errors(client.post("/taxes", json={"tax": {"name": "T", "code": "t", "rate": rate}})) == {
            "rate": [code]}, rate
    assert client.get("/taxes/nope").json()["code"] == "tax_not_found"
    assert client.put("/taxes/nope", json={"tax": {"rate": 1}}).status_code == 404

    changed = client.put("/taxes/vat", json={"tax": {"rate": 19.6, "applied_to_organization": True}})
    assert changed.status_code == 200, changed.text
    assert (changed.json()["tax"]["rate"], changed.json()["tax"]["applied_to_organization"]) == (19.6, True)
    tax(client, "gst", 5)
    listed = client.get("/taxes").json()
    assert [t["code"] for t in listed["taxes"]] == ["gst", "vat"] and listed["meta"]["total_count"] == 2

    deleted = client.delete("/taxes/vat")
    assert deleted.status_code == 200 and deleted.json()["tax"]["code"] == "vat"
    assert client.get("/taxes/vat").status_code == 404
    assert tax(client, "vat", 20)["lago_id"] != vat["lago_id"]  # a deleted tax's code can be used again


def test_tax_codes_of_customers_plans_and_charges_replace_the_set_and_an_unknown_code_changes_nothing(
        client: httpx.Client, unique: str) -> None:
    tax(client, "vat", 20)
    tax(client, "reduced", 10)
    unknown = client.post("/customers", json={"customer": {"external_id": f"c-{unique}", "tax_codes": ["nope"]}})
    assert (unknown.status_code, unknown.json()["code"]) == (404, "tax_not_found")
    assert client.get(f"/customers/c-{unique}").status_code == 404  # rolled back with the tax codes
    assert errors(client.post("/customers", json={"customer": {"external_id": f"c-{unique}", "tax_codes": "vat"}})
                  ) == {"tax_codes": ["invalid_format"]}

    made = create(client, "/customers", "customer", {"external_id": f"c-{unique}", "tax_codes": ["vat", "reduced"]})
    assert [t["code"] for t in made["taxes"]] == ["reduced", "vat"]
    kept = create(client, "/customers", "customer", {"external_id": f"c-{unique}", "name": "Acme"})
    assert [t["code"] for t in kept["taxes"]] == ["reduced", "vat"]  # not given: unchanged
    cleared = create(client, "/customers", "customer", {"external_id": f"c-{unique}", "tax_codes": []})
    assert cleared["taxes"] == []

    assert client.post("/billable_metrics", json=metric_body()).status_code == 200
    body = {**team_plan("team"), "tax_codes": ["reduced"]}
    body["charges"] = [{**body["charges"][0], "tax_codes": ["vat"]}]
    made_plan = create(client, "/plans", "plan", body)
    assert [t["code"] for t in made_plan["taxes"]] == ["reduced"]
    assert [t["code"] for t in made_plan["charges"][0]["taxes"]] == ["vat"]
    bad = client.put("/plans/team", json={"plan": {"charges": [{**body["charges"][0], "tax_codes": ["nope"]}]}})
    assert (bad.status_code, bad.json()["code"]) == (404, "tax_not_found")
    assert [t["code"] for t in client.get("/plans/team").json()["plan"]["charges"][0]["taxes"]] == ["vat"]

    assert client.delete("/taxes/vat").status_code == 200  # a deleted tax is detached from everything
    assert client.get("/plans/team").json()["plan"]["charges"][0]["taxes"] == []


def _team_customer(client: httpx.Client, customer_id: str, subscription_id: str, plan_code: str,
                   tax_codes: list[str] | None = None) -> list[str]:
    body: dict[str, Any] = {"external_id": customer_id, "name": "Acme", "currency": "USD", "timezone": "UTC"}
    if tax_codes is not None:
        body["tax_codes"] = tax_codes
    create(client, "/customers", "customer", body)
    subscribe(client, customer_id, subscription_id, plan_code, "2026-06-01T00:00:00Z")
    events = mtu_events(subscription_id, subscription_id, range(30_000), "2026-06-20T10:00:00Z", CODE)
    send(client, events)
    return [events[-1]["transaction_id"]]


def test_the_team_invoice_with_30000_mtus_is_taxed_by_the_most_specific_taxes_to_the_cent(
        client: httpx.Client, unique: str) -> None:
    assert client.post("/billable_metrics", json=metric_body()).status_code == 200
    tax(client, "vat", 20, applied_to_organization=True)  # the organization's default
    tax(client, "reduced", 10)
    tax(client, "super_reduced", 5)
    create(client, "/plans", "plan", {**team_plan("team"), "trial_period": 0})
    taxed = {**team_plan("team_taxed"), "trial_period": 0, "tax_codes": ["reduced"]}
    taxed["charges"] = [{**taxed["charges"][0], "tax_codes": ["super_reduced"]}]
    create(client, "/plans", "plan", taxed)
    last = _team_customer(client, f"a-{unique}", f"sa-{unique}", "team")  # the organization's VAT
    last += _team_customer(client, f"b-{unique}", f"sb-{unique}", "team_taxed")  # plan 10%, charge 5%
    last += _team_customer(client, f"c-{unique}", f"sc-{unique}", "team", ["reduced"])  # the customer's 10%
    wait_archived(client, last)
    bill("2026-07-01T00:30:00Z", unique)

    (july_a,), (july_b,), (july_c,) = (invoices_of(client, f"{c}-{unique}") for c in "abc")
    # July 1: July's fee 12,000 + June's 30,000 MTUs (15,000 x 1.2 + 5,000 x 1.1 cents = 23,500) = 35,500
    assert [(f["item"]["type"], f["amount_cents"], f["taxes_amount_cents"], f["taxes_rate"]) for f in july_a["fees"]
            ] == [("subscription", 12_000, 2_400, 20.0), ("charge", 23_500, 4_700, 20.0)]
    assert {k: july_a[k] for k in ("fees_amount_cents", "sub_total_excluding_taxes_amount_cents",
                                   "taxes_amount_cents", "sub_total_including_taxes_amount_cents",
                                   "total_amount_cents", "taxes_rate")} == {
        "fees_amount_cents": 35_500, "sub_total_excluding_taxes_amount_cents": 35_500, "taxes_amount_cents": 7_100,
        "sub_total_including_taxes_amount_cents": 42_600, "total_amount_cents": 42_600, "taxes_rate": 20.0}
    (applied,) = july_a["applied_taxes"]
    assert (applied["tax_code"], applied["tax_rate"], applied["amount_cents"], applied["fees_amount_cents"]) == (
        "vat", 20, 7_100, 35_500)
    assert july_a["fees"][1]["applied_taxes"][0]["amount_cents"] == 4_700
    # the plan's 10% on its fee (1,200), the charge's 5% on the usage (1,175): 2,375
    assert [(f["taxes_amount_cents"], f["taxes_rate"]) for f in july_b["fees"]] == [(1_200, 10.0), (1_175, 5.0)]
    assert [(t["tax_code"], t["amount_cents"], t["fees_amount_cents"]) for t in july_b["applied_taxes"]] == [
        ("reduced", 1_200, 12_000), ("super_reduced", 1_175, 23_500)]
    assert (july_b["taxes_amount_cents"], july_b["total_amount_cents"]) == (2_375, 37_875)
    # 12,000 x 10% + 23,500 x 5% over 35,500: 6.69014% on the whole
    assert july_b["taxes_rate"] == 6.69014
    # the customer's 10% on both fees, above the organization's default
    assert (july_c["taxes_amount_cents"], july_c["total_amount_cents"]) == (3_550, 39_050)


def test_current_usage_is_taxed_unless_apply_taxes_is_false(client: httpx.Client, unique: str) -> None:
    assert client.post("/billable_metrics", json=metric_body()).status_code == 200
    tax(client, "vat", 20, applied_to_organization=True)
    create(client, "/plans", "plan", {**team_plan("team"), "trial_period": 0})
    create(client, "/customers", "customer", {"external_id": f"c-{unique}", "currency": "USD"})
    create(client, "/subscriptions", "subscription", {"external_customer_id": f"c-{unique}", "plan_code": "team",
                                                       "external_id": f"s-{unique}"})
    events = [{"transaction_id": f"t-{n}", "code": CODE, "external_subscription_id": f"s-{unique}",
               "properties": {"user_id": f"u-{n}"}} for n in range(10_125)]
    send(client, events)
    wait_archived(client, [events[-1]["transaction_id"]])
    params = {"external_subscription_id": f"s-{unique}"}
    usage = client.get(f"/customers/c-{unique}/current_usage", params=params).json()["customer_usage"]
    # 125 MTUs past the free 10,000 at 1.2 cents: 150, and 20% of it
    assert (usage["amount_cents"], usage["taxes_amount_cents"], usage["total_amount_cents"]) == (150, 30, 180)
    untaxed = client.get(f"/customers/c-{unique}/current_usage", params={**params, "apply_taxes": "false"})
    assert (untaxed.json()["customer_usage"]["taxes_amount_cents"],
            untaxed.json()["customer_usage"]["total_amount_cents"]) == (0, 150)
    assert client.get(f"/customers/c-{unique}/current_usage", params={**params, "apply_taxes": "maybe"}
                      ).status_code == 400


def test_lagos_python_client_creates_finds_updates_and_deletes_taxes_and_sets_a_customers(
        stack: Stack, org_key: str, unique: str) -> None:
    lago = Client(api_key=org_key, api_url=f"{stack.api_url}/")
    created = lago.taxes.create(Tax(name="VAT", code="vat", rate=20.0, description="Standard VAT"))
    assert (created.code, created.rate, created.applied_to_organization) == ("vat", 20.0, False)
    updated = lago.taxes.update(Tax(rate=19.6, applied_to_organization=True), "vat")
    assert (updated.rate, updated.applied_to_organization) == (19.6, True)
    assert lago.taxes.find("vat").rate == 19.6
    assert [t.code for t in lago.taxes.find_all()["taxes"]] == ["vat"]
    customer = lago.customers.create(Customer(external_id=f"c-{unique}", name="Acme", tax_codes=["vat"]))
    assert [t.code for t in customer.taxes.__root__] == ["vat"]
    assert lago.taxes.destroy("vat").code == "vat"
    with pytest.raises(LagoApiError) as caught:
        lago.taxes.find("vat")
    assert (caught.value.status_code, caught.value.response["code"]) == (404, "tax_not_found")


def test_a_credit_note_credits_the_unused_fee_with_its_taxes(client: httpx.Client, unique: str) -> None:
    tax(client, "vat", 20, applied_to_organization=True)
    plan(client, "team", amount=12000, advance=True)
    customer(client, f"c-{unique}")
    now = datetime.now(UTC)
    subscribe(client, f"c-{unique}", f"s-{unique}", "team", previous_month(now).isoformat())
    bill(now.isoformat(), unique)  # this month's fee, paid in advance on the 1st: 12,000 and 20%
    paid = invoices_of(client, f"c-{unique}")[-1]
    assert (paid["fees_amount_cents"], paid["taxes_amount_cents"], paid["total_amount_cents"]) == (12_000, 2_400,
                                                                                                 14_400)
    ended = client.delete(f"/subscriptions/s-{unique}").json()["subscription"]
    ended_at = datetime.fromisoformat(ended["terminated_at"].replace("Z", "+00:00"))
    bill(datetime.now(UTC).isoformat(), unique)

    credit = cents(days_in_month(ended_at) - ended_at.day, 12000, days_in_month(ended_at))  # after that day
    notes = client.get("/credit_notes").json()["credit_notes"]
    if credit == 0:  # terminated on the last day of the month: nothing unused
        assert notes == []
        return
    (note,) = notes
    taxes = int((Decimal(credit) * Decimal("0.2")).quantize(Decimal(1), ROUND_HALF_UP))
    assert (note["sub_total_excluding_taxes_amount_cents"], note["taxes_amount_cents"], note["taxes_rate"],
            note["credit_amount_cents"], note["balance_amount_cents"], note["total_amount_cents"]) == (
        credit, taxes, 20.0, credit + taxes, credit + taxes, credit + taxes)
    assert [(t["tax_code"], t["base_amount_cents"], t["amount_cents"]) for t in note["applied_taxes"]] == [
        ("vat", credit, taxes)]
    assert note["items"][0]["amount_cents"] == credit


def test_a_draft_is_taxed_again_when_refreshed_and_a_finalized_invoice_keeps_its_taxes(
        client: httpx.Client, unique: str) -> None:
    tax(client, "vat", 20, applied_to_organization=True)
    plan(client, "team", amount=12000, advance=True)
    customer(client, f"c-{unique}", grace=36500)  # stays a draft: the grace runs past any real now
    billed_last_month(client, unique, f"c-{unique}", f"s-{unique}", "team")
    draft = invoices_of(client, f"c-{unique}")[-1]  # this month's fee, paid in advance on the 1st
    assert (draft["status"], draft["taxes_amount_cents"], draft["total_amount_cents"]) == ("draft", 2_400, 14_400)

    assert client.put("/taxes/vat", json={"tax": {"rate": 10}}).status_code == 200
    refreshed = client.put(f"/invoices/{draft['lago_id']}/refresh").json()["invoice"]
    assert (refreshed["taxes_amount_cents"], refreshed["total_amount_cents"]) == (1_200, 13_200)
    assert [(t["tax_rate"], t["amount_cents"]) for t in refreshed["applied_taxes"]] == [(10, 1_200)]
    assert refreshed["fees"][0]["taxes_amount_cents"] == 1_200
    final = client.put(f"/invoices/{draft['lago_id']}/finalize").json()["invoice"]
    assert (final["status"], final["taxes_amount_cents"], final["total_amount_cents"]) == ("finalized", 1_200, 13_200)

    assert client.put("/taxes/vat", json={"tax": {"rate": 25}}).status_code == 200
    assert client.delete("/taxes/vat").status_code == 200
    kept = client.get(f"/invoices/{draft['lago_id']}").json()["invoice"]
    assert (kept["taxes_amount_cents"], kept["total_amount_cents"], kept["applied_taxes"][0]["tax_rate"]) == (
        1_200, 13_200, 10)
