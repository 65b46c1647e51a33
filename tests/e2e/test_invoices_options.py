"""Billing options of Lago's that meterline implements: a charge's minimum (true-up fees), yearly plans
billing their usage monthly, and customers skipping $0 invoices. Exact cents, end to end."""

from __future__ import annotations

from calendar import monthrange
from datetime import UTC, datetime
from typing import Any

import httpx
from sqlalchemy import create_engine, text

from tests.conftest import Services
from tests.e2e.invoice_support import (
    bill,
    create,
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


def test_a_charge_below_its_minimum_is_trued_up_by_a_separate_fee(client: httpx.Client, unique: str) -> None:
    mtu_metric(client)
    plan(client, "floor", amount=0, advance=False, charges=[{**per_unit("mtu", "0.5"), "min_amount_cents": 1000}])
    assert client.get("/plans/floor").json()["plan"]["charges"][0]["min_amount_cents"] == 1000
    for name, start in (("used", "2026-01-01"), ("idle", "2026-01-01"), ("late", "2026-01-11"), ("big", "2026-01-01")):
        customer(client, f"{name}-{unique}")
        subscribe(client, f"{name}-{unique}", f"s-{name}-{unique}", "floor", f"{start}T00:00:00Z")
    used = mtu_events(f"s-used-{unique}", "u", range(4), "2026-01-20T10:00:00Z")
    big = mtu_events(f"s-big-{unique}", "b", range(30), "2026-01-20T10:00:00Z")
    send(client, used + big)
    wait_archived(client, [used[-1]["transaction_id"], big[-1]["transaction_id"]])
    bill("2026-02-01T00:00:00Z", unique)

    def lines(name: str) -> tuple[list[tuple[str, str, str, int]], dict[str, Any]]:
        (invoice,) = invoices_of(client, f"{name}-{unique}")
        return fee_lines(invoice), invoice

    found, invoice = lines("used")  # 4 MTUs x $0.50 = 200, trued up to 1000
    assert found == [("subscription", "floor", "1.0", 0), ("charge", "mtu", "4.0", 200), ("charge", "mtu", "1.0", 800)]
    assert (invoice["fees_amount_cents"], invoice["total_amount_cents"]) == (1000, 1000)
    charge, true_up = invoice["fees"][1:]
    assert (charge["lago_true_up_fee_id"], charge["lago_true_up_parent_fee_id"]) == (true_up["lago_id"], None)
    assert (true_up["lago_true_up_fee_id"], true_up["lago_true_up_parent_fee_id"]) == (None, charge["lago_id"])
    assert (true_up["events_count"], true_up["lago_charge_id"]) == (0, charge["lago_charge_id"])
    assert lines("idle")[0][1:] == [("charge", "mtu", "0.0", 0), ("charge", "mtu", "1.0", 1000)]
    assert lines("late")[0][1:] == [("charge", "mtu", "0.0", 0), ("charge", "mtu", "1.0", 677)]  # 1000 x 21/31
    assert lines("big")[0][1:] == [("charge", "mtu", "30.0", 1500)]  # above the minimum: no true-up


def test_a_yearly_plan_billing_charges_monthly_invoices_each_month_usage_and_its_fee_once(
        client: httpx.Client, unique: str) -> None:
    mtu_metric(client)
    create(client, "/plans", "plan", {
        "name": "Annual", "code": "annual", "interval": "yearly", "amount_cents": 120000, "amount_currency": "USD",
        "pay_in_advance": False, "bill_charges_monthly": True, "charges": [per_unit("mtu", "0.5")]})
    plan(client, "monthly", amount=100, advance=False)
    assert client.get("/plans/annual").json()["plan"]["bill_charges_monthly"] is True
    assert client.get("/plans/monthly").json()["plan"]["bill_charges_monthly"] is None  # only yearly plans have it
    customer(client, f"c-{unique}")
    subscription = f"s-{unique}"
    subscribe(client, f"c-{unique}", subscription, "annual", "2026-01-01T00:00:00Z")
    january = mtu_events(subscription, "jan", range(4), "2026-01-20T10:00:00Z")
    february = mtu_events(subscription, "feb", range(3), "2026-02-20T10:00:00Z")  # the same users: counted again
    send(client, january + february)
    wait_archived(client, [january[-1]["transaction_id"], february[-1]["transaction_id"]])

    bill("2026-03-01T00:00:00Z", unique)
    first, second = invoices_of(client, f"c-{unique}")
    assert (first["issuing_date"], fee_lines(first)) == ("2026-02-01", [("charge", "mtu", "4.0", 200)])
    assert (second["issuing_date"], fee_lines(second)) == ("2026-03-01", [("charge", "mtu", "3.0", 150)])
    period = second["billing_periods"][0]
    assert (period["charges_from_datetime"], period["charges_to_datetime"]) == (
        "2026-02-01T00:00:00.000Z", "2026-02-28T23:59:59.999Z")
    assert period["invoicing_reason"] == "subscription_periodic"
    assert first["fees"][0]["from_date"] == "2026-01-01T00:00:00.000Z"

    # the aggregator counts usage per month too: events now show in this month's current usage only
    now = datetime.now(UTC)
    now_events = mtu_events(subscription, "now", range(2), now.isoformat())
    send(client, now_events)
    wait_archived(client, [now_events[-1]["transaction_id"]])
    month = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    usage = client.get(f"/customers/c-{unique}/current_usage",
                       params={"external_subscription_id": subscription}).json()["customer_usage"]
    assert usage["from_datetime"].startswith(month.strftime("%Y-%m-%dT00:00:00"))
    assert usage["to_datetime"].startswith(f"{month.strftime('%Y-%m')}-{monthrange(now.year, now.month)[1]}T23:59:59")
    assert (usage["charges_usage"][0]["units"], usage["amount_cents"]) == ("2.0", 100)

    # January is closed for good: a late event for it is refused (the barrier after it, in the same
    # partition, shows when it went through), and re-billing changes nothing
    late = mtu_events(subscription, "late", range(50, 51), "2026-01-25T10:00:00Z")
    barrier = mtu_events(subscription, "barrier", range(1), now.isoformat())
    send(client, late + barrier)
    wait_archived(client, [barrier[0]["transaction_id"]])
    assert client.get(f"/events/{late[0]['transaction_id']}").status_code == 404
    assert bill("2026-03-01T00:00:00Z", unique)["invoices"] == 0
    assert fee_lines(invoices_of(client, f"c-{unique}")[0]) == [("charge", "mtu", "4.0", 200)]
    assert client.put("/plans/annual", json={"plan": {"bill_charges_monthly": False}}).json()["error_details"] == {
        "bill_charges_monthly": ["not_editable_while_subscribed"]}


def test_the_yearly_fee_comes_once_a_year_with_the_last_month_usage(client: httpx.Client, unique: str) -> None:
    mtu_metric(client)
    for code, advance in (("arrears", False), ("advance", True)):
        create(client, "/plans", "plan", {
            "name": code, "code": code, "interval": "yearly", "amount_cents": 120000, "amount_currency": "USD",
            "pay_in_advance": advance, "bill_charges_monthly": True, "charges": [per_unit("mtu", "0.5")]})
        customer(client, f"{code}-{unique}")
        subscribe(client, f"{code}-{unique}", f"s-{code}-{unique}", code, "2025-01-01T00:00:00Z")
    december = mtu_events(f"s-arrears-{unique}", "dec", range(2), "2025-12-15T00:00:00Z")
    send(client, december)
    wait_archived(client, [december[-1]["transaction_id"]])
    bill("2026-01-01T00:00:00Z", unique)
    arrears = invoices_of(client, f"arrears-{unique}")
    assert len(arrears) == 12  # each month of 2025, backdated history replayed by `meterline bill`
    assert [fee_lines(i) for i in arrears[:11]] == [[]] * 11  # usage-only months without usage: empty, $0
    assert (arrears[-1]["issuing_date"], fee_lines(arrears[-1])) == (
        "2026-01-01", [("subscription", "arrears", "1.0", 120000), ("charge", "mtu", "2.0", 100)])
    period = arrears[0]["billing_periods"][0]  # a usage-only month shows its year as the subscription's period
    assert (period["subscription_from_datetime"], period["subscription_to_datetime"]) == (
        "2025-01-01T00:00:00.000Z", "2025-12-31T23:59:59.999Z")
    assert (period["charges_from_datetime"], period["charges_to_datetime"]) == (
        "2025-01-01T00:00:00.000Z", "2025-01-31T23:59:59.999Z")
    advance = invoices_of(client, f"advance-{unique}")
    assert len(advance) == 12  # backdated: no invoice at the start; the coming year's fee on Jan 1
    assert fee_lines(advance[-1]) == [("subscription", "advance", "1.0", 120000)]
    assert advance[-1]["fees"][0]["from_date"] == "2026-01-01T00:00:00.000Z"


def test_a_customer_skipping_zero_amount_invoices_gets_them_closed(client: httpx.Client, services: Services,
                                                                  unique: str) -> None:
    assert client.post("/webhook_endpoints", json={"webhook_endpoint": {
        "webhook_url": "http://127.0.0.1:9/hooks"}}).status_code == 200
    mtu_metric(client)
    plan(client, "free", amount=0, advance=False, charges=[per_unit("mtu", "0.5")])
    for name, setting in (("skip", "skip"), ("paying", "skip"), ("finalize", "finalize")):
        created = create(client, "/customers", "customer", {"external_id": f"{name}-{unique}",
                                                            "finalize_zero_amount_invoice": setting})
        assert created["finalize_zero_amount_invoice"] == setting
        subscribe(client, f"{name}-{unique}", f"s-{name}-{unique}", "free", "2026-01-01T00:00:00Z")
    used = mtu_events(f"s-paying-{unique}", "p", range(2), "2026-01-20T10:00:00Z")
    send(client, used)
    wait_archived(client, [used[-1]["transaction_id"]])
    bill("2026-02-01T00:00:00Z", unique)

    assert invoices_of(client, f"skip-{unique}") == []  # closed: not listed
    (paying,) = invoices_of(client, f"paying-{unique}")
    assert (paying["status"], paying["total_amount_cents"], paying["number"].endswith("-001")) == (
        "finalized", 100, True)
    (finalized,) = invoices_of(client, f"finalize-{unique}")
    assert (finalized["status"], finalized["payment_status"], finalized["total_amount_cents"]) == (
        "finalized", "succeeded", 0)

    with create_engine(services.sqlalchemy_url).connect() as conn:
        closed_id, status, number, sequential_id = conn.execute(text(
            "SELECT i.id, i.status, i.number, i.sequential_id FROM invoices i JOIN customers c "
            "ON c.id = i.customer_id WHERE c.external_id = :e"), {"e": f"skip-{unique}"}).one()
        hooks = dict(conn.execute(text(
            "SELECT object_id::text, count(*) FROM webhook_deliveries WHERE object_id IN (:a, :b) GROUP BY object_id"),
            {"a": closed_id, "b": finalized["lago_id"]}).all())
    assert (status, number.endswith("-DRAFT"), sequential_id) == ("closed", True, None)
    assert hooks == {finalized["lago_id"]: 1}  # invoice.created for the finalized $0 invoice, none for the closed
    assert client.get(f"/invoices/{closed_id}").status_code == 404
    assert client.put(f"/invoices/{closed_id}/finalize").status_code == 404
    assert bill("2026-02-01T00:00:00Z", unique)["invoices"] == 0  # its moment is billed for good


def test_a_zero_draft_of_a_customer_skipping_them_is_closed_when_finalized(client: httpx.Client, unique: str) -> None:
    plan(client, "free", amount=0, advance=False)
    create(client, "/customers", "customer", {"external_id": f"c-{unique}", "finalize_zero_amount_invoice": "skip",
                                              "invoice_grace_period": 36500})  # the biller loop leaves it a draft
    subscribe(client, f"c-{unique}", f"s-{unique}", "free", "2026-01-01T00:00:00Z")
    bill("2026-02-01T00:00:00Z", unique)
    (draft,) = invoices_of(client, f"c-{unique}")
    assert (draft["status"], draft["total_amount_cents"]) == ("draft", 0)  # a draft is shown, as Lago does
    finalized = client.put(f"/invoices/{draft['lago_id']}/finalize")
    assert (finalized.status_code, finalized.json()["invoice"]["status"]) == (200, "closed")
    assert client.get(f"/invoices/{draft['lago_id']}").status_code == 404
    assert invoices_of(client, f"c-{unique}") == []
