"""Progressive billing to the cent, end to end: a plan's usage thresholds crossed by events in the stream
issue `progressive_billing` invoices (the usage so far less what earlier ones billed), announced with
`subscription.usage_threshold_reached`, and the period's regular invoice deducts them.

Team plan (the Segment example): 12,000 a month in advance, MTUs graduated 0 / 1.2¢ / 1.1¢ / 1.0¢ past
10,000 / 25,000 / 100,000. 27,000 MTUs price at 15,000 × 1.2 + 2,000 × 1.1 = 20,200 cents; 40,000 at
15,000 × 1.2 + 15,000 × 1.1 = 34,500. The contract's May to July are the two months before this one and
this one (the usage state of a period is kept in Redis for 62 days after it ends, so the events' period
must be recent): the subscription starts on the first of the month before last (trial for 14 days),
the events are last month's, and this month's first day bills them."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from meterline.example import MTU_METRIC, team_plan
from tests.builders import wait_for
from tests.e2e.invoice_support import bill, create, customer, epoch, invoices_of, subscribe, wait_archived
from tests.e2e.test_aggregator_faults import aggregators_paused
from tests.e2e.test_alerts_stream import evaluated, send_batch, users
from tests.e2e.webhook_support import Receiver

THIS_MONTH = datetime.now(UTC).date().replace(day=1)
LAST_MONTH = (THIS_MONTH - timedelta(days=1)).replace(day=1)
START = (LAST_MONTH - timedelta(days=1)).replace(day=1)


def june_users(subscription_id: str, numbers: range) -> list[dict[str, Any]]:
    """Users seen on the 10th of last month (the contract's June)."""
    return [{**event, "timestamp": epoch(f"{LAST_MONTH.replace(day=10).isoformat()}T12:00:00Z")}
            for event in users(subscription_id, MTU_METRIC["code"], numbers, "u")]


def progressive_invoices(client: httpx.Client, customer_id: str, count: int) -> list[dict[str, Any]]:
    """The customer's progressive billing invoices, oldest first, once there are `count` of them."""
    def found() -> list[dict[str, Any]]:
        return sorted((i for i in invoices_of(client, customer_id) if i["invoice_type"] == "progressive_billing"),
                      key=lambda i: i["sequential_id"])
    wait_for(lambda: len(found()) >= count, 30, f"{count} progressive invoice(s)")
    return found()


def july_invoice(client: httpx.Client, customer_id: str) -> dict[str, Any]:
    """This month's first invoice (the contract's July 1), with its fees."""
    (july,) = [i for i in invoices_of(client, customer_id)
               if i["invoice_type"] == "subscription" and i["issuing_date"] == THIS_MONTH.isoformat()]
    response = client.get(f"/invoices/{july['lago_id']}")
    assert response.status_code == 200, response.text
    return response.json()["invoice"]


def step(client: httpx.Client, ingest: httpx.Client, subscription_id: str, numbers: range) -> None:
    """June users `numbers`, sent, archived and evaluated before the next step; in one batch. A
    fetch the paused worker had in flight is answered with the first events to arrive, so a copy of an
    event already counted (a no-op) goes first and takes that answer."""
    with aggregators_paused():
        if numbers.start > 0:
            send_batch(ingest, june_users(subscription_id, range(numbers.start - 1, numbers.start)))
            time.sleep(0.3)
        send_batch(ingest, june_users(subscription_id, numbers))
    wait_archived(client, [f"u-{numbers[-1]}"])
    evaluated()


def team_with_thresholds(client: httpx.Client, thresholds: list[dict[str, Any]]) -> None:
    create(client, "/billable_metrics", "billable_metric", MTU_METRIC)
    create(client, "/plans", "plan", {**team_plan("team"), "usage_thresholds": thresholds})


def test_the_contract_example_a_20000_threshold_billed_at_20200_and_deducted_on_july_1(
        client: httpx.Client, ingest: httpx.Client, receiver: Receiver, unique: str) -> None:
    team_with_thresholds(client, [{"amount_cents": 20000, "threshold_display_name": "$200"}])
    customer(client, f"c-{unique}")
    subscribe(client, f"c-{unique}", f"s-{unique}", "team", f"{START.isoformat()}T00:00:00Z")

    step(client, ingest, f"s-{unique}", range(26_800))  # 15,000 × 1.2 + 1,800 × 1.1 = 19,980: below
    step(client, ingest, f"s-{unique}", range(26_800, 27_000))  # the first evaluation past it sees 27,000

    (first,) = progressive_invoices(client, f"c-{unique}", 1)
    assert (first["fees_amount_cents"], first["progressive_billing_credit_amount_cents"],
            first["total_amount_cents"], first["status"]) == (20200, 0, 20200, "finalized")
    (applied,) = first["applied_usage_thresholds"]
    assert (applied["usage_threshold"]["amount_cents"], applied["usage_threshold"]["threshold_display_name"],
            applied["lifetime_usage_amount_cents"]) == (20000, "$200", 20200)
    detail = client.get(f"/invoices/{first['lago_id']}").json()["invoice"]
    assert [(f["item"]["code"], f["units"], f["amount_cents"]) for f in detail["fees"]] == [
        (MTU_METRIC["code"], "27000.0", 20200)]
    assert [p["invoicing_reason"] for p in detail["billing_periods"]] == ["progressive_billing"]
    (reached,) = receiver.wait_for_type("subscription.usage_threshold_reached", 1)
    assert (reached["object_type"], reached["subscription"]["external_id"]) == ("subscription", f"s-{unique}")
    assert reached["subscription"]["usage_threshold"]["amount_cents"] == 20000

    step(client, ingest, f"s-{unique}", range(27_000, 40_000))
    bill(f"{THIS_MONTH.isoformat()}T00:00:00Z", unique)

    july = july_invoice(client, f"c-{unique}")
    assert [(f["item"]["type"], f["amount_cents"]) for f in july["fees"]] == [("subscription", 12000),
                                                                             ("charge", 34500)]
    assert (july["fees_amount_cents"], july["progressive_billing_credit_amount_cents"],
            july["sub_total_excluding_taxes_amount_cents"], july["total_amount_cents"]) == (46500, 20200, 26300, 26300)
    time.sleep(1.5)  # a second progressive invoice would be written by now
    assert len(progressive_invoices(client, f"c-{unique}", 1)) == 1  # 20,000 is not recurring: billed once


def test_a_recurring_threshold_bills_again_each_time_usage_grows_by_its_amount(
        client: httpx.Client, ingest: httpx.Client, receiver: Receiver, unique: str) -> None:
    team_with_thresholds(client, [{"amount_cents": 10000, "recurring": True}])
    customer(client, f"c-{unique}")
    subscribe(client, f"c-{unique}", f"s-{unique}", "team", f"{START.isoformat()}T00:00:00Z")

    step(client, ingest, f"s-{unique}", range(18_300))  # 8,300 × 1.2 = 9,960
    step(client, ingest, f"s-{unique}", range(18_300, 18_400))  # 10,080: past 10,000
    step(client, ingest, f"s-{unique}", range(18_400, 26_800))  # 19,980
    step(client, ingest, f"s-{unique}", range(26_800, 26_900))  # 20,090: past 20,000
    step(client, ingest, f"s-{unique}", range(26_900, 35_900))  # 18,000 + 10,900 × 1.1 = 29,990
    step(client, ingest, f"s-{unique}", range(35_900, 36_000))  # 30,100: past 30,000
    step(client, ingest, f"s-{unique}", range(36_000, 40_000))  # 34,500: below 40,000

    invoices = progressive_invoices(client, f"c-{unique}", 3)
    assert [(i["fees_amount_cents"], i["progressive_billing_credit_amount_cents"], i["total_amount_cents"])
            for i in invoices] == [(10080, 0, 10080), (20090, 10080, 10010), (30100, 20090, 10010)]
    bill(f"{THIS_MONTH.isoformat()}T00:00:00Z", unique)
    july = july_invoice(client, f"c-{unique}")
    assert (july["fees_amount_cents"], july["progressive_billing_credit_amount_cents"],
            july["total_amount_cents"]) == (46500, 30100, 16400)
    time.sleep(1.5)
    assert len(progressive_invoices(client, f"c-{unique}", 3)) == 3


def test_progressive_invoices_are_taxed_and_the_periods_invoice_taxes_what_is_left_after_the_deduction(
        client: httpx.Client, ingest: httpx.Client, unique: str) -> None:
    create(client, "/taxes", "tax", {"name": "VAT", "code": "vat", "rate": 20, "applied_to_organization": True})
    team_with_thresholds(client, [{"amount_cents": 20000, "threshold_display_name": "$200"}])
    customer(client, f"c-{unique}")
    subscribe(client, f"c-{unique}", f"s-{unique}", "team", f"{START.isoformat()}T00:00:00Z")
    step(client, ingest, f"s-{unique}", range(26_800))  # below, as in the contract's example
    step(client, ingest, f"s-{unique}", range(26_800, 27_000))

    (first,) = progressive_invoices(client, f"c-{unique}", 1)
    assert (first["fees_amount_cents"], first["taxes_amount_cents"], first["total_amount_cents"]) == (
        20200, 4040, 24240)
    step(client, ingest, f"s-{unique}", range(27_000, 40_000))
    bill(f"{THIS_MONTH.isoformat()}T00:00:00Z", unique)

    july = july_invoice(client, f"c-{unique}")
    # 46,500 less the 20,200 billed before: 26,300, all of it taken from the usage fee, then 20%
    assert [(f["item"]["type"], f["precise_coupons_amount_cents"], f["taxes_amount_cents"]) for f in july["fees"]
            ] == [("subscription", "0.0", 2400), ("charge", "20200.0", 2860)]
    assert (july["sub_total_excluding_taxes_amount_cents"], july["taxes_amount_cents"], july["total_amount_cents"]
            ) == (26300, 5260, 31560)
