"""Test clocks: the contract's worked examples lived through on a clock instead of backdated, each invoice asserted
to the cent after advancing; the clocks' API and its errors. The stack's own biller (billing as of the wall clock)
runs beside them throughout: it must leave the clocks' customers alone."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from meterline.example import team_plan
from meterline.orgs import ensure_organization
from tests.builders import api, metric_body
from tests.conftest import Services, Stack
from tests.e2e.invoice_support import (
    TEAM_METRIC,
    WELCOME,
    bill,
    create,
    invoices_of,
    mtu_events,
    per_unit,
    plan,
    send,
    wait_archived,
)
from tests.e2e.test_aggregator_faults import aggregators_paused
from tests.e2e.test_alerts_stream import evaluated, send_batch

FREE = {"name": "Free", "code": "free", "interval": "monthly", "amount_cents": 0, "amount_currency": "USD",
        "pay_in_advance": False, "trial_period": 0, "charges": [per_unit(TEAM_METRIC, "0")]}


def catalog(client: httpx.Client) -> None:
    """The contract's plans: Free ($0 in arrears, a $0 MTU charge), Team (Segment's), Business (50,000 cents in
    advance, no trial, Team's ranges)."""
    assert client.post("/billable_metrics", json=metric_body()).status_code == 200
    create(client, "/plans", "plan", FREE)
    create(client, "/plans", "plan", team_plan("team"))
    create(client, "/plans", "plan", {**team_plan("business"), "name": "Business", "amount_cents": 50_000,
                                      "trial_period": 0})


def clock(client: httpx.Client, frozen_time: str, name: str = "rehearsal") -> dict[str, Any]:
    return create(client, "/test_clocks", "test_clock", {"name": name, "frozen_time": frozen_time})


def advance(client: httpx.Client, clock_id: str, frozen_time: str) -> dict[str, Any]:
    response = client.post(f"/test_clocks/{clock_id}/advance", json={"frozen_time": frozen_time})
    assert response.status_code == 200, response.text
    advanced: dict[str, Any] = response.json()["test_clock"]
    assert advanced["status"] == "ready"  # answered once what it was advanced over has run
    return advanced


def on_clock(client: httpx.Client, unique: str, frozen_time: str, **more: Any) -> tuple[str, str]:
    """A clock at `frozen_time` and the customer `c-{unique}` on it (UTC); (clock id, customer id)."""
    made = clock(client, frozen_time)
    create(client, "/customers", "customer", {"external_id": f"c-{unique}", "name": "Acme", "currency": "USD",
                                              "timezone": "UTC", "test_clock_id": made["lago_id"], **more})
    return made["lago_id"], f"c-{unique}"


def subscribe_now(client: httpx.Client, customer_id: str, subscription_id: str, plan_code: str,
                  **more: Any) -> dict[str, Any]:
    """A subscription from the customer's now (its clock's): no subscription_at."""
    return create(client, "/subscriptions", "subscription", {
        "external_customer_id": customer_id, "plan_code": plan_code, "external_id": subscription_id, **more})


def summary(invoice: dict[str, Any]) -> tuple[str, list[tuple[str, str, int]], int, int]:
    """(issuing date, its fees as (type, code, cents), credit notes, total)."""
    return (invoice["issuing_date"], [(f["item"]["type"], f["item"]["code"], f["amount_cents"])
                                      for f in invoice["fees"]],
            invoice["credit_notes_amount_cents"], invoice["total_amount_cents"])


def credit_notes_of(client: httpx.Client, customer_id: str) -> list[tuple[str, int, int]]:
    notes = client.get("/credit_notes", params={"external_customer_id": customer_id}).json()["credit_notes"]
    return sorted((n["reason"], n["credit_amount_cents"], n["balance_amount_cents"]) for n in notes)


def test_free_to_team_on_the_20th_after_the_trial(client: httpx.Client, unique: str) -> None:
    """Contract example 1: Free from June 1; June 20 15:00 → Team (its trial counted from June 1 ended June 15).
    Upgrade invoice: Free 0 + Team 11 days x 400 = 4,400. July 1: 12,000 + Team's usage from June 20 15:00."""
    catalog(client)
    clock_id, customer_id = on_clock(client, unique, "2026-06-01T00:00:00Z")
    started = subscribe_now(client, customer_id, f"s-{unique}", "free")
    assert (started["status"], started["started_at"], started["test_clock_id"]) == (
        "active", "2026-06-01T00:00:00.000Z", clock_id)
    advance(client, clock_id, "2026-06-20T15:00:00Z")
    team = subscribe_now(client, customer_id, f"s-{unique}", "team")
    assert (team["plan_code"], team["previous_plan_code"], team["started_at"]) == (
        "team", "free", "2026-06-20T15:00:01.000Z")  # a second after it was asked, on the clock
    events = mtu_events(f"s-{unique}", "june", range(20_000), "2026-06-25T10:00:00Z", TEAM_METRIC)
    send(client, events)
    wait_archived(client, [events[-1]["transaction_id"]])
    advance(client, clock_id, "2026-06-20T16:00:00Z")
    (upgrade,) = invoices_of(client, customer_id)
    # 11 days (June 20-30) x 12,000 / 30 = 4,400
    assert summary(upgrade) == ("2026-06-20", [("subscription", "free", 0), ("subscription", "team", 4_400)], 0,
                                4_400)
    advance(client, clock_id, "2026-07-01T00:30:00Z")
    _, july = invoices_of(client, customer_id)
    # 12,000 in advance for July + 20,000 MTUs (10,000 free, 10,000 x 1.2 cents = 12,000)
    assert summary(july) == ("2026-07-01", [("subscription", "team", 12_000), ("charge", TEAM_METRIC, 12_000)],
                             0, 24_000)
    assert july["test_clock_id"] == clock_id


def test_team_to_business_with_its_credit_note(client: httpx.Client, unique: str) -> None:
    """Contract example 3: Team from May 1 (trial to May 15), June's fee paid June 1, 30,000 MTUs in June; June 21
    09:00 → Business. Credit note 10 x 400 = 4,000; upgrade invoice 23,500 + round(10 x 50,000 / 30) = 16,667,
    less the credit note: 36,167."""
    catalog(client)
    clock_id, customer_id = on_clock(client, unique, "2026-05-01T00:00:00Z")
    subscribe_now(client, customer_id, f"s-{unique}", "team")
    advance(client, clock_id, "2026-06-01T00:30:00Z")
    trial_end, june = invoices_of(client, customer_id)
    # May 15-31: 17 days x 12,000 / 31 = 6,581 at the trial's end; June 1: the whole fee (no usage in May)
    assert summary(trial_end) == ("2026-05-15", [("subscription", "team", 6_581)], 0, 6_581)
    assert summary(june) == ("2026-06-01", [("subscription", "team", 12_000)], 0, 12_000)
    assert client.put(f"/invoices/{june['lago_id']}", json={"invoice": {"payment_status": "succeeded"}}
                      ).status_code == 200
    events = mtu_events(f"s-{unique}", "june", range(30_000), "2026-06-10T10:00:00Z", TEAM_METRIC)
    send(client, events)
    wait_archived(client, [events[-1]["transaction_id"]])
    advance(client, clock_id, "2026-06-21T09:00:00Z")
    business = subscribe_now(client, customer_id, f"s-{unique}", "business")
    assert business["previous_plan_code"] == "team"
    advance(client, clock_id, "2026-06-21T10:00:00Z")
    *_, upgrade = invoices_of(client, customer_id)
    # Team's fee line stays, at 0 (paid in advance on June 1)
    assert summary(upgrade) == ("2026-06-21", [("subscription", "team", 0), ("charge", TEAM_METRIC, 23_500),
                                               ("subscription", "business", 16_667)], 4_000, 36_167)
    assert credit_notes_of(client, customer_id) == [("order_change", 4_000, 0)]  # taken by the upgrade invoice


def test_team_to_free_takes_effect_on_the_billing_day(client: httpx.Client, unique: str) -> None:
    """Contract example 4: Team from May 1; June 21 → Free is pending until July 1. July 1: Team's June usage
    only, no fee for July (its fee line stays, at 0); Free active from July 1."""
    catalog(client)
    clock_id, customer_id = on_clock(client, unique, "2026-05-01T00:00:00Z")
    subscribe_now(client, customer_id, f"s-{unique}", "team")
    advance(client, clock_id, "2026-06-21T12:00:00Z")
    events = mtu_events(f"s-{unique}", "june", range(12_000), "2026-06-15T10:00:00Z", TEAM_METRIC)
    send(client, events)
    wait_archived(client, [events[-1]["transaction_id"]])
    current = subscribe_now(client, customer_id, f"s-{unique}", "free")
    assert (current["plan_code"], current["next_plan_code"], current["downgrade_plan_date"]) == (
        "team", "free", "2026-07-01")
    advance(client, clock_id, "2026-07-01T00:30:00Z")
    *_, july = invoices_of(client, customer_id)
    # 12,000 MTUs in June: 2,000 x 1.2 cents = 2,400; Free is in arrears, so nothing for July yet
    assert summary(july) == ("2026-07-01", [("subscription", "team", 0), ("charge", TEAM_METRIC, 2_400)], 0, 2_400)
    now_free = client.get(f"/subscriptions/s-{unique}").json()["subscription"]
    assert (now_free["plan_code"], now_free["status"], now_free["started_at"]) == (
        "free", "active", "2026-07-01T00:00:00.000Z")


def test_a_termination_credits_the_unused_days(client: httpx.Client, unique: str) -> None:
    """Team from May 1, terminated June 21 09:00: a credit note of (30 - 21) x 400 = 3,600 and an invoice of
    June's usage up to then, which the note pays."""
    catalog(client)
    clock_id, customer_id = on_clock(client, unique, "2026-05-01T00:00:00Z")
    subscribe_now(client, customer_id, f"s-{unique}", "team")
    advance(client, clock_id, "2026-06-21T09:00:00Z")
    events = mtu_events(f"s-{unique}", "june", range(11_000), "2026-06-20T10:00:00Z", TEAM_METRIC)
    send(client, events)
    wait_archived(client, [events[-1]["transaction_id"]])
    ended = client.delete(f"/subscriptions/s-{unique}")
    assert ended.status_code == 200, ended.text
    assert ended.json()["subscription"]["terminated_at"] == "2026-06-21T09:00:00.000Z"
    advance(client, clock_id, "2026-06-22T00:00:00Z")
    *_, last = invoices_of(client, customer_id)
    # 1,000 MTUs past the free 10,000 at 1.2 cents, paid by the credit note: 3,600 - 1,200 = 2,400 left
    assert summary(last) == ("2026-06-21", [("subscription", "team", 0), ("charge", TEAM_METRIC, 1_200)], 1_200, 0)
    assert credit_notes_of(client, customer_id) == [("order_cancellation", 3_600, 2_400)]


def test_a_trial_ending_bills_the_rest_of_its_month(client: httpx.Client, unique: str) -> None:
    """$120/month from June 10 with a 14-day trial: June 24, 7 days x 400 = 2,800; July 1: 12,000 + June's usage."""
    catalog(client)
    clock_id, customer_id = on_clock(client, unique, "2026-06-10T08:00:00Z")
    subscribe_now(client, customer_id, f"s-{unique}", "team")
    advance(client, clock_id, "2026-06-23T23:00:00Z")
    assert invoices_of(client, customer_id) == []  # in trial: nothing yet
    assert client.get(f"/subscriptions/s-{unique}").json()["subscription"]["trial_ended_at"] is None
    advance(client, clock_id, "2026-06-24T09:00:00Z")
    (trial_end,) = invoices_of(client, customer_id)
    assert summary(trial_end) == ("2026-06-24", [("subscription", "team", 2_800)], 0, 2_800)
    assert client.get(f"/subscriptions/s-{unique}").json()["subscription"]["trial_ended_at"] == \
        "2026-06-24T08:00:00.000Z"
    advance(client, clock_id, "2026-07-01T00:30:00Z")
    _, july = invoices_of(client, customer_id)
    assert summary(july) == ("2026-07-01", [("subscription", "team", 12_000)], 0, 12_000)


def test_the_contracts_worked_invoice_with_a_credit_note_balance_to_the_cent(client: httpx.Client,
                                                                             unique: str) -> None:
    """The contract's July 1 invoice: Team fee 12,000 + June's 30,000 MTUs 23,500, a $10 coupon once, VAT 20%,
    and a 4,000 credit-note balance: coupons 1,000, sub total 34,500, taxes 6,900, credit notes 4,000, total
    37,400. The balance comes from a second Team subscription ended on June 20 without a last invoice:
    (30 - 20) x 400 = 4,000 (before any tax existed, so the note carries none)."""
    catalog(client)
    create(client, "/plans", "plan", {**team_plan("team_now"), "trial_period": 0})
    clock_id, customer_id = on_clock(client, unique, "2026-06-01T00:00:00Z")
    subscribe_now(client, customer_id, f"a-{unique}", "team_now")
    subscribe_now(client, customer_id, f"b-{unique}", "team_now")
    advance(client, clock_id, "2026-06-20T09:00:00Z")
    assert client.delete(f"/subscriptions/b-{unique}", params={"on_termination_invoice": "skip"}).status_code == 200
    advance(client, clock_id, "2026-06-20T10:00:00Z")
    assert credit_notes_of(client, customer_id) == [("order_cancellation", 4_000, 4_000)]
    events = mtu_events(f"a-{unique}", "june", range(30_000), "2026-06-25T10:00:00Z", TEAM_METRIC)
    send(client, events)
    wait_archived(client, [events[-1]["transaction_id"]])
    create(client, "/taxes", "tax", {"name": "VAT", "code": "vat", "rate": 20, "applied_to_organization": True})
    create(client, "/coupons", "coupon", WELCOME)
    create(client, "/applied_coupons", "applied_coupon", {"external_customer_id": customer_id,
                                                          "coupon_code": "welcome"})
    advance(client, clock_id, "2026-07-01T00:30:00Z")
    *_, july = invoices_of(client, customer_id)
    assert [(f["item"]["type"], f["amount_cents"]) for f in july["fees"]] == [("subscription", 12_000),
                                                                              ("charge", 23_500)]
    assert {k: july[k] for k in ("fees_amount_cents", "coupons_amount_cents", "sub_total_excluding_taxes_amount_cents",
                                 "taxes_amount_cents", "sub_total_including_taxes_amount_cents",
                                 "credit_notes_amount_cents", "total_amount_cents")} == {
        "fees_amount_cents": 35_500, "coupons_amount_cents": 1_000, "sub_total_excluding_taxes_amount_cents": 34_500,
        "taxes_amount_cents": 6_900, "sub_total_including_taxes_amount_cents": 41_400,
        "credit_notes_amount_cents": 4_000, "total_amount_cents": 37_400}
    assert credit_notes_of(client, customer_id) == [("order_cancellation", 4_000, 0)]


def test_clocks_are_created_advanced_forward_only_and_deleted_with_clear_errors(
        client: httpx.Client, unique: str) -> None:
    made = clock(client, "2026-06-01T00:00:00Z", "June")
    assert {k: made[k] for k in ("name", "frozen_time", "status", "customers_count")} == {
        "name": "June", "frozen_time": "2026-06-01T00:00:00.000Z", "status": "ready", "customers_count": 0}

    def refused(response: httpx.Response, status: int) -> Any:
        assert response.status_code == status, response.text
        return response.json().get("error_details") or response.json()["code"]

    assert refused(client.post("/test_clocks", json={"test_clock": {"name": "x"}}), 422) == {
        "frozen_time": ["value_is_mandatory"]}
    assert refused(client.post("/test_clocks", json={"test_clock": {"frozen_time": "soon", "name": "x"}}),
                   422) == {"frozen_time": ["invalid_format"]}
    assert refused(client.post("/test_clocks", json={"test_clock": {"frozen_time": "1999-12-31T00:00:00Z",
                                                                    "name": "x"}}), 422) == {
        "frozen_time": ["value_is_invalid"]}
    back = client.post(f"/test_clocks/{made['lago_id']}/advance", json={"frozen_time": "2026-05-31T00:00:00Z"})
    assert refused(back, 422) == {"frozen_time": ["must_be_after_current_frozen_time"]}
    same = client.post(f"/test_clocks/{made['lago_id']}/advance", json={"frozen_time": "2026-06-01T00:00:00Z"})
    assert refused(same, 422) == {"frozen_time": ["must_be_after_current_frozen_time"]}
    assert client.post(f"/test_clocks/{made['lago_id']}/advance", content=b"{").status_code == 400
    for unknown in ("00000000-0000-4000-8000-000000000000", "nope", f"urn:uuid:{made['lago_id']}"):
        assert refused(client.get(f"/test_clocks/{unknown}"), 404) == "test_clock_not_found"
        assert refused(client.post(f"/test_clocks/{unknown}/advance", json={"frozen_time": "2027-01-01T00:00:00Z"}),
                       404) == "test_clock_not_found"

    # a customer goes on a clock when it is created or before its first subscription, never after
    unknown_clock = client.post("/customers", json={"customer": {
        "external_id": f"x-{unique}", "test_clock_id": "00000000-0000-4000-8000-000000000000"}})
    assert refused(unknown_clock, 404) == "test_clock_not_found"
    assert refused(client.post("/customers", json={"customer": {"external_id": f"x-{unique}", "test_clock_id": 7}}),
                   422) == {"test_clock_id": ["invalid_format"]}
    create(client, "/customers", "customer", {"external_id": f"real-{unique}", "currency": "USD"})
    plan(client, "basic", amount=900, advance=False)
    create(client, "/subscriptions", "subscription", {"external_customer_id": f"real-{unique}", "plan_code": "basic",
                                                      "external_id": f"s-real-{unique}"})
    moved = client.post("/customers", json={"customer": {"external_id": f"real-{unique}",
                                                         "test_clock_id": made["lago_id"]}})
    assert refused(moved, 422) == {"test_clock_id": ["customer_has_history"]}
    late = create(client, "/customers", "customer", {"external_id": f"late-{unique}"})
    assert late["test_clock_id"] is None
    joined = create(client, "/customers", "customer", {"external_id": f"late-{unique}",
                                                       "test_clock_id": made["lago_id"]})
    assert joined["test_clock_id"] == made["lago_id"]
    assert client.get(f"/test_clocks/{made['lago_id']}").json()["test_clock"]["customers_count"] == 1
    listed = client.get("/test_clocks").json()
    assert ([c["lago_id"] for c in listed["test_clocks"]], listed["meta"]["total_count"]) == ([made["lago_id"]], 1)

    advanced = advance(client, made["lago_id"], "2026-06-15T12:00:00+02:00")
    assert advanced["frozen_time"] == "2026-06-15T10:00:00.000Z"
    deleted = client.delete(f"/test_clocks/{made['lago_id']}")
    assert deleted.status_code == 200 and deleted.json()["test_clock"]["lago_id"] == made["lago_id"]
    assert refused(client.get(f"/test_clocks/{made['lago_id']}"), 404) == "test_clock_not_found"
    assert refused(client.get(f"/customers/late-{unique}"), 404) == "customer_not_found"  # gone with its clock


def test_a_clocks_customers_are_billed_by_advancing_only(client: httpx.Client, unique: str) -> None:
    """The stack's biller runs as of the wall clock every 30 s: months of history on a clock in the past stay
    unbilled until the clock is advanced, whatever the wall clock says."""
    plan(client, "basic", amount=900, advance=False)
    clock_id, customer_id = on_clock(client, unique, "2026-01-01T00:00:00Z")
    subscribe_now(client, customer_id, f"s-{unique}", "basic")
    time.sleep(35)  # more than a round of the stack's biller
    assert invoices_of(client, customer_id) == []
    advance(client, clock_id, "2026-03-01T00:00:00Z")
    assert [summary(i) for i in invoices_of(client, customer_id)] == [
        ("2026-02-01", [("subscription", "basic", 900)], 0, 900),
        ("2026-03-01", [("subscription", "basic", 900)], 0, 900)]


def june_10(subscription_id: str, numbers: range) -> list[dict[str, Any]]:
    return mtu_events(subscription_id, "u", numbers, "2026-06-10T12:00:00Z", TEAM_METRIC)


def one_batch(client: httpx.Client, ingest: httpx.Client, subscription_id: str, numbers: range) -> None:
    """Users `numbers` on June 10, taken by the aggregator in one batch (one evaluation), archived and evaluated
    (as tests/e2e/test_progressive_billing.py sends them)."""
    with aggregators_paused():
        if numbers.start > 0:  # a copy of one already counted takes the fetch the paused worker had in flight
            send_batch(ingest, june_10(subscription_id, range(numbers.start - 1, numbers.start)))
            time.sleep(0.3)
        send_batch(ingest, june_10(subscription_id, numbers))
    wait_archived(client, [f"u-{numbers[-1]}"])
    evaluated()


def test_progressive_billing_crossing_mid_month_and_current_usage_on_a_clock(
        client: httpx.Client, ingest: httpx.Client, unique: str) -> None:
    """The contract's progressive billing example lived on a clock in June: a 20,000-cent threshold first seen
    passed at 27,000 MTUs (18,000 + 2,000 x 1.1 = 20,200) bills 20,200 on the clock's day; with 40,000 MTUs by
    June 30 the July 1 invoice is 12,000 + 34,500 - 20,200 = 26,300. Current usage is the clock's June."""
    assert client.post("/billable_metrics", json=metric_body()).status_code == 200
    create(client, "/plans", "plan", {**team_plan("team"), "trial_period": 0,
                                      "usage_thresholds": [{"amount_cents": 20_000}]})
    clock_id, customer_id = on_clock(client, unique, "2026-06-01T00:00:00Z")
    subscribe_now(client, customer_id, f"s-{unique}", "team")
    advance(client, clock_id, "2026-06-10T12:00:00Z")
    one_batch(client, ingest, f"s-{unique}", range(26_800))  # 15,000 x 1.2 + 1,800 x 1.1 = 19,980: below
    usage = client.get(f"/customers/{customer_id}/current_usage",
                       params={"external_subscription_id": f"s-{unique}", "apply_taxes": "false"})
    assert usage.status_code == 200, usage.text
    assert (usage.json()["customer_usage"]["from_datetime"], usage.json()["customer_usage"]["amount_cents"]) == (
        "2026-06-01T00:00:00.000Z", 19_980)
    one_batch(client, ingest, f"s-{unique}", range(26_800, 27_000))
    progressive = wait_for_progressive(client, customer_id)
    assert (progressive["issuing_date"], progressive["total_amount_cents"], progressive["test_clock_id"]) == (
        "2026-06-10", 20_200, clock_id)
    one_batch(client, ingest, f"s-{unique}", range(27_000, 40_000))
    advance(client, clock_id, "2026-07-01T00:30:00Z")
    (july,) = [i for i in invoices_of(client, customer_id) if i["issuing_date"] == "2026-07-01"]
    assert (july["fees_amount_cents"], july["progressive_billing_credit_amount_cents"], july["total_amount_cents"]
            ) == (46_500, 20_200, 26_300)


def wait_for_progressive(client: httpx.Client, customer_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while True:
        found = [i for i in invoices_of(client, customer_id) if i["invoice_type"] == "progressive_billing"]
        if found:
            (progressive,) = found
            return progressive
        assert time.monotonic() < deadline, "no progressive billing invoice"
        time.sleep(0.3)


def test_an_event_without_a_timestamp_takes_its_clocks_time(client: httpx.Client, unique: str) -> None:
    assert client.post("/billable_metrics", json=metric_body()).status_code == 200
    create(client, "/plans", "plan", {**team_plan("team"), "trial_period": 0})
    clock_id, customer_id = on_clock(client, unique, "2026-06-01T00:00:00Z")
    subscribe_now(client, customer_id, f"s-{unique}", "team")
    advance(client, clock_id, "2026-06-12T08:30:00Z")
    time.sleep(1.5)  # the edge reads the clocks' times every second
    sent = client.post("/events", json={"event": {"transaction_id": f"t-{unique}", "code": TEAM_METRIC,
                                                  "external_subscription_id": f"s-{unique}",
                                                  "properties": {"user_id": "u1"}}})
    assert sent.status_code == 200, sent.text
    assert sent.json()["event"]["timestamp"] == "2026-06-12T08:30:00.000Z"
    wait_archived(client, [f"t-{unique}"])
    assert client.get(f"/events/t-{unique}").json()["event"]["timestamp"] == "2026-06-12T08:30:00.000Z"


def test_only_advancing_moves_a_clocks_customers_and_two_advances_at_once_bill_once(
        client: httpx.Client, services: Services, unique: str) -> None:
    """Neither the API's activation loop (every second, as of the wall clock) nor `meterline bill` touches a
    clock's customers; two advances at once run one after the other and bill each moment once."""
    plan(client, "basic", amount=900, advance=True)
    clock_id, customer_id = on_clock(client, unique, "2026-06-01T00:00:00Z")
    pending = create(client, "/subscriptions", "subscription", {
        "external_customer_id": customer_id, "plan_code": "basic", "external_id": f"s-{unique}",
        "subscription_at": "2026-06-15T00:00:00Z"})  # in the clock's future, the wall clock's past
    assert pending["status"] == "pending"
    bill("2026-12-01T00:00:00Z", unique)
    time.sleep(2)  # two rounds of the activation loop
    assert client.get(f"/subscriptions/s-{unique}", params={"status[]": "pending"}).json()[
        "subscription"]["status"] == "pending"
    assert invoices_of(client, customer_id) == []
    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(lambda to: client.post(f"/test_clocks/{clock_id}/advance", json={"frozen_time": to}),
                                ("2026-07-01T00:30:00Z", "2026-07-01T00:45:00Z")))
    assert sorted(a.status_code for a in answers) == [200, 200] or \
        sorted(a.status_code for a in answers) == [200, 422]  # the later time may go first: the other is then back
    assert client.get(f"/test_clocks/{clock_id}").json()["test_clock"]["status"] == "ready"
    assert [summary(i) for i in invoices_of(client, customer_id)] == [
        ("2026-06-15", [("subscription", "basic", 480)], 0, 480),  # June 15-30: 16 days x 900 / 30
        ("2026-07-01", [("subscription", "basic", 900)], 0, 900)]


def test_a_clock_is_its_organizations_and_an_advance_is_bounded(client: httpx.Client, services: Services,
                                                                stack: Stack, unique: str) -> None:
    made = clock(client, "2026-06-01T00:00:00Z")
    _, other_key = ensure_organization(services.sqlalchemy_url, f"other-{unique}")
    assert other_key is not None
    with api(stack.api_url, other_key) as other:
        assert other.get(f"/test_clocks/{made['lago_id']}").status_code == 404
        assert other.get("/test_clocks").json()["test_clocks"] == []
        borrowed = other.post("/customers", json={"customer": {"external_id": f"c-{unique}",
                                                               "test_clock_id": made["lago_id"]}})
        assert (borrowed.status_code, borrowed.json()["code"]) == (404, "test_clock_not_found")
        assert other.delete(f"/test_clocks/{made['lago_id']}").status_code == 404
    # 400 days and a second
    far = client.post(f"/test_clocks/{made['lago_id']}/advance", json={"frozen_time": "2027-07-06T00:00:01Z"})
    assert (far.status_code, far.json()["error_details"]) == (422, {"frozen_time": ["value_is_out_of_range"]})
    late = client.post("/test_clocks", json={"test_clock": {"name": "x", "frozen_time": "2200-01-01T00:00:00Z"}})
    assert (late.status_code, late.json()["error_details"]) == (422, {"frozen_time": ["value_is_invalid"]})
