"""Coupons through the API: `/coupons`, `/applied_coupons` with Lago's errors, Lago's Python client, and the
contract's Team invoice reduced by a $10 coupon before its 20% VAT, to the cent."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import httpx
from lago_python_client.client import Client
from lago_python_client.models import AppliedCoupon, Coupon, Customer

from tests.conftest import Stack
from tests.e2e.invoice_support import (
    WELCOME,
    bill,
    billed_last_month,
    create,
    customer,
    invoices_of,
    plan,
    subscribe,
    team_coupon_vat_invoice,
)
from tests.e2e.test_plan_changes import cents, days_in_month, previous_month


def refused(response: httpx.Response, status: int) -> Any:
    assert response.status_code == status, response.text
    body = response.json()
    return body.get("error_details", body.get("code"))


def test_coupons_and_applied_coupons_with_lagos_errors(client: httpx.Client, unique: str) -> None:
    made = create(client, "/coupons", "coupon", WELCOME)
    assert {k: made[k] for k in ("code", "coupon_type", "amount_cents", "frequency", "reusable", "limited_plans",
                                 "percentage_rate")} == {
        "code": "welcome", "coupon_type": "fixed_amount", "amount_cents": 1000, "frequency": "once",
        "reusable": True, "limited_plans": False, "percentage_rate": None}
    assert refused(client.post("/coupons", json={"coupon": WELCOME}), 422) == {"code": ["value_already_exist"]}
    assert refused(client.post("/coupons", json={"coupon": {**WELCOME, "code": "x", "amount_cents": None}}), 422
                   ) == {"amount_cents": ["value_is_mandatory"]}
    assert refused(client.post("/coupons", json={"coupon": {**WELCOME, "code": "x", "frequency": "recurring"}}),
                   422) == {"frequency_duration": ["value_is_mandatory"]}
    percentage = {"name": "Pct", "code": "x", "coupon_type": "percentage", "frequency": "once",
                  "expiration": "no_expiration"}
    assert refused(client.post("/coupons", json={"coupon": {**percentage, "percentage_rate": "120"}}), 422) == {
        "percentage_rate": ["value_is_out_of_range"]}
    assert refused(client.post("/coupons", json={"coupon": {
        **WELCOME, "code": "x", "expiration": "time_limit", "expiration_at": "2020-01-01T00:00:00Z"}}), 422) == {
        "expiration_at": ["invalid_date"]}
    assert refused(client.post("/coupons", json={"coupon": {
        **WELCOME, "code": "x", "applies_to": {"plan_codes": ["p"], "billable_metric_codes": ["m"]}}}), 405) == \
        "only_one_limitation_type_per_coupon_allowed"
    assert refused(client.post("/coupons", json={"coupon": {**WELCOME, "code": "x", "applies_to": {
        "plan_codes": ["nope"]}}}), 404) == "plans_not_found"
    assert client.get("/coupons/x").status_code == 404  # nothing was stored

    create(client, "/customers", "customer", {"external_id": f"c-{unique}", "currency": "USD"})
    create(client, "/customers", "customer", {"external_id": f"eur-{unique}", "currency": "EUR"})
    once = {**WELCOME, "code": "once", "reusable": False}
    create(client, "/coupons", "coupon", once)
    apply = {"external_customer_id": f"c-{unique}", "coupon_code": "once"}
    applied = create(client, "/applied_coupons", "applied_coupon", apply)
    assert (applied["status"], applied["amount_cents"], applied["amount_cents_remaining"]) == ("active", 1000, 1000)
    assert refused(client.post("/applied_coupons", json={"applied_coupon": apply}), 422) == {
        "coupon": ["coupon_is_not_reusable"]}
    assert refused(client.post("/applied_coupons", json={"applied_coupon": {**apply, "external_customer_id": "no"}}),
                   404) == "customer_not_found"
    assert refused(client.post("/applied_coupons", json={"applied_coupon": {**apply, "coupon_code": "no"}}),
                   404) == "coupon_not_found"
    assert refused(client.post("/applied_coupons", json={"applied_coupon": {
        "external_customer_id": f"eur-{unique}", "coupon_code": "welcome"}}), 422) == {
        "currency": ["currencies_does_not_match"]}
    assert refused(client.put("/coupons/once", json={"coupon": {"amount_cents": 5}}), 422) == {
        "amount_cents": ["not_editable_once_applied"]}
    renamed = client.put("/coupons/once", json={"coupon": {"name": "Once only"}})
    assert renamed.status_code == 200 and renamed.json()["coupon"]["name"] == "Once only"

    listed = client.get("/applied_coupons", params={"external_customer_id": f"c-{unique}", "status": "active"})
    assert [a["coupon_code"] for a in listed.json()["applied_coupons"]] == ["once"]
    assert client.get("/applied_coupons", params={"status": "maybe"}).status_code == 400
    ended = client.delete(f"/customers/c-{unique}/applied_coupons/{applied['lago_id']}")
    assert (ended.status_code, ended.json()["applied_coupon"]["status"]) == (200, "terminated")
    assert client.delete(f"/customers/c-{unique}/applied_coupons/not-an-id").status_code == 404
    assert client.get(f"/customers/c-{unique}/applied_coupons", params={"status": "active"}).json()[
        "applied_coupons"] == []

    create(client, "/applied_coupons", "applied_coupon", {"external_customer_id": f"c-{unique}",
                                                          "coupon_code": "welcome"})
    assert client.delete("/coupons/welcome").status_code == 200  # its applied coupons end with it
    mine = client.get(f"/customers/c-{unique}/applied_coupons").json()["applied_coupons"]
    assert [(a["coupon_code"], a["status"]) for a in mine] == [("welcome", "terminated"), ("once", "terminated")]


def test_a_coupon_update_or_application_that_does_not_fit_is_refused_not_dropped(client: httpx.Client,
                                                                                 unique: str) -> None:
    create(client, "/coupons", "coupon", WELCOME)
    assert refused(client.put("/coupons/welcome", json={"coupon": {"coupon_type": "percentage"}}), 422) == {
        "percentage_rate": ["value_is_mandatory"]}
    assert refused(client.put("/coupons/welcome", json={"coupon": {"frequency": "recurring"}}), 422) == {
        "frequency_duration": ["value_is_mandatory"]}
    assert refused(client.put("/coupons/welcome", json={"coupon": {"expiration_at": "2999-01-01T00:00:00Z"}}),
                   422) == {"expiration_at": ["value_is_invalid"]}  # a coupon without a time limit
    assert refused(client.post("/coupons", json={"coupon": {**WELCOME, "code": "x", "percentage_rate": "5"}}),
                   422) == {"percentage_rate": ["value_is_invalid"]}
    assert refused(client.post("/coupons", json={"coupon": {**WELCOME, "code": "x", "applies_to": {
        "plan_codes": ["a\u0000b"]}}}), 422) == {"applies_to.plan_codes": ["value_is_invalid"]}
    changed = client.put("/coupons/welcome", json={"coupon": {"coupon_type": "percentage", "percentage_rate": 12.5}})
    assert (changed.json()["coupon"]["percentage_rate"], changed.json()["coupon"]["amount_cents"]) == ("12.5", None)
    create(client, "/customers", "customer", {"external_id": f"a/{unique}", "currency": "USD"})
    apply = {"external_customer_id": f"a/{unique}", "coupon_code": "welcome"}
    assert refused(client.post("/applied_coupons", json={"applied_coupon": {**apply, "amount_cents": 5}}), 422) == {
        "amount_cents": ["value_is_invalid"]}
    assert refused(client.post("/applied_coupons", json={"applied_coupon": {**apply, "frequency_duration": 2}}),
                   422) == {"frequency_duration": ["value_is_invalid"]}
    applied = create(client, "/applied_coupons", "applied_coupon", {**apply, "frequency": "", "amount_currency": ""})
    assert (applied["frequency"], applied["percentage_rate"]) == ("once", "12.5")  # "" is not given
    listed = client.get(f"/customers/a%2F{unique}/applied_coupons")  # an external_id holding "/"
    assert [a["lago_id"] for a in listed.json()["applied_coupons"]] == [applied["lago_id"]]
    ended = client.delete(f"/customers/a%2F{unique}/applied_coupons/{applied['lago_id']}")
    assert ended.json()["applied_coupon"]["status"] == "terminated"


def test_the_team_invoice_takes_a_10_dollar_coupon_before_its_vat_to_the_cent(client: httpx.Client,
                                                                                unique: str) -> None:
    july = team_coupon_vat_invoice(client, unique)
    # 12,000 + 23,500 = 35,500; the coupon 1,000 before taxes: 34,500; 20%: 6,900
    assert {k: july[k] for k in ("fees_amount_cents", "coupons_amount_cents", "sub_total_excluding_taxes_amount_cents",
                                 "taxes_amount_cents", "sub_total_including_taxes_amount_cents",
                                 "total_amount_cents")} == {
        "fees_amount_cents": 35_500, "coupons_amount_cents": 1_000, "sub_total_excluding_taxes_amount_cents": 34_500,
        "taxes_amount_cents": 6_900, "sub_total_including_taxes_amount_cents": 41_400, "total_amount_cents": 41_400}
    (credit,) = july["credits"]
    assert (credit["amount_cents"], credit["before_taxes"], credit["item"]["type"], credit["item"]["code"]) == (
        1_000, True, "coupon", "welcome")
    # spread over the fees pro rata before their taxes
    assert [(f["precise_coupons_amount_cents"], f["taxes_amount_cents"]) for f in july["fees"]] == [
        ("338.02817", 2_332), ("661.97183", 4_568)]
    (used,) = client.get(f"/customers/c-{unique}/applied_coupons").json()["applied_coupons"]
    assert (used["status"], used["amount_cents_remaining"]) == ("terminated", 0)


def test_lagos_python_client_creates_coupons_and_applies_them(stack: Stack, org_key: str, unique: str) -> None:
    lago = Client(api_key=org_key, api_url=f"{stack.api_url}/")
    made = lago.coupons.create(Coupon(name="Ten percent", code="ten", coupon_type="percentage", percentage_rate=10.0,
                                      frequency="recurring", frequency_duration=3, expiration="no_expiration"))
    assert (made.code, float(made.percentage_rate), made.frequency_duration) == ("ten", 10.0, 3)
    lago.customers.create(Customer(external_id=f"c-{unique}", currency="USD"))
    applied = lago.applied_coupons.create(AppliedCoupon(external_customer_id=f"c-{unique}", coupon_code="ten"))
    assert (applied.coupon_code, applied.status, applied.frequency_duration_remaining) == ("ten", "active", 3)
    assert lago.coupons.find("ten").code == "ten"


def test_a_credit_note_credits_what_was_paid_for_the_fee_after_its_coupon(client: httpx.Client, unique: str) -> None:
    plan(client, "team", amount=12000, advance=True)
    create(client, "/coupons", "coupon", WELCOME)
    customer(client, f"c-{unique}")
    create(client, "/applied_coupons", "applied_coupon", {"external_customer_id": f"c-{unique}",
                                                          "coupon_code": "welcome"})
    now = datetime.now(UTC)
    subscribe(client, f"c-{unique}", f"s-{unique}", "team", previous_month(now).isoformat())
    bill(now.isoformat(), unique)  # this month's fee in advance, less the $10
    paid = invoices_of(client, f"c-{unique}")[-1]
    assert (paid["fees_amount_cents"], paid["coupons_amount_cents"], paid["total_amount_cents"]) == (
        12_000, 1_000, 11_000)
    ended = client.delete(f"/subscriptions/s-{unique}").json()["subscription"]
    ended_at = datetime.fromisoformat(ended["terminated_at"].replace("Z", "+00:00"))
    bill(datetime.now(UTC).isoformat(), unique)
    unused = cents(days_in_month(ended_at) - ended_at.day, 12000, days_in_month(ended_at))
    notes = client.get("/credit_notes").json()["credit_notes"]
    if unused == 0:  # terminated on the last day of the month: nothing unused
        assert notes == []
        return
    (note,) = notes
    # 11,000 of the 12,000 were paid: the unused part of that
    assert note["credit_amount_cents"] == int((Decimal(unused) * 11_000 / 12_000).quantize(Decimal(1), ROUND_HALF_UP))


def test_a_fixed_coupon_is_carried_over_across_invoices_billed_in_one_run(client: httpx.Client, unique: str) -> None:
    plan(client, "basic", amount=10_000, advance=False)
    create(client, "/coupons", "coupon", {**WELCOME, "amount_cents": 15_000})
    customer(client, f"c-{unique}")
    create(client, "/applied_coupons", "applied_coupon", {"external_customer_id": f"c-{unique}",
                                                          "coupon_code": "welcome"})
    now = datetime.now(UTC)
    subscribe(client, f"c-{unique}", f"s-{unique}", "basic", previous_month(previous_month(now)).isoformat())
    bill(now.isoformat(), unique)  # two billing days at once, each 10,000 in arrears
    first, second = invoices_of(client, f"c-{unique}")
    assert [(i["coupons_amount_cents"], i["total_amount_cents"], i["payment_status"]) for i in (first, second)] == [
        (10_000, 0, "succeeded"), (5_000, 5_000, "pending")]
    (used,) = client.get(f"/customers/c-{unique}/applied_coupons").json()["applied_coupons"]
    assert (used["status"], used["amount_cents_remaining"]) == ("terminated", 0)


def test_a_draft_takes_its_coupons_when_it_is_finalized(client: httpx.Client, unique: str) -> None:
    plan(client, "team", amount=12_000, advance=True)
    create(client, "/coupons", "coupon", {**WELCOME, "coupon_type": "percentage", "amount_cents": None,
                                          "amount_currency": None, "percentage_rate": "25",
                                          "frequency": "recurring", "frequency_duration": 2})
    customer(client, f"c-{unique}", grace=36500)  # stays a draft: the grace runs past any real now
    create(client, "/applied_coupons", "applied_coupon", {"external_customer_id": f"c-{unique}",
                                                          "coupon_code": "welcome"})
    billed_last_month(client, unique, f"c-{unique}", f"s-{unique}", "team")
    draft = invoices_of(client, f"c-{unique}")[-1]
    assert (draft["status"], draft["coupons_amount_cents"], draft["credits"]) == ("draft", 0, [])
    final = client.put(f"/invoices/{draft['lago_id']}/finalize").json()["invoice"]
    assert (final["status"], final["coupons_amount_cents"], final["total_amount_cents"]) == ("finalized", 3_000, 9_000)
    assert [(c["item"]["code"], c["amount_cents"]) for c in final["credits"]] == [("welcome", 3_000)]
    (used,) = client.get(f"/customers/c-{unique}/applied_coupons").json()["applied_coupons"]
    assert (used["status"], used["frequency_duration_remaining"]) == ("active", 1)
