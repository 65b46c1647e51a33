"""The contract's billing timelines end to end: backdated subscriptions, past events, `meterline bill --as-of`."""

from __future__ import annotations

import calendar
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

import httpx

from tests.e2e.invoice_support import (
    bill,
    create,
    customer,
    fee_lines,
    invoices_of,
    marked_overdue,
    mtu_events,
    mtu_metric,
    per_unit,
    plan,
    send,
    subscribe,
    wait_archived,
)


def test_pay_in_advance_start_without_trial_is_invoiced_at_once_prorated(client: httpx.Client, unique: str) -> None:
    plan(client, "pro", amount=12000, advance=True)
    customer(client, f"c-{unique}")
    now = datetime.now(UTC)
    subscribe(client, f"c-{unique}", f"s-{unique}", "pro", now.isoformat())
    bill(now.isoformat(), unique)  # the biller loop may have been first: either way exactly one invoice
    days_in_month = calendar.monthrange(now.year, now.month)[1]
    days = days_in_month - now.day + 1
    expected = int((Decimal(days) * 12000 / days_in_month).quantize(Decimal(1), ROUND_HALF_UP))
    (invoice,) = invoices_of(client, f"c-{unique}")
    assert fee_lines(invoice) == [("subscription", "pro", "1.0", expected)]
    assert invoice["billing_periods"][0]["invoicing_reason"] == "subscription_starting"
    period = invoice["billing_periods"][0]  # no usage billed at a start: the fee's period, never null
    assert (period["charges_from_datetime"], period["charges_to_datetime"]) == (
        period["subscription_from_datetime"], period["subscription_to_datetime"])
    assert period["charges_from_datetime"] is not None
    assert invoice["status"] == "finalized"
    assert invoice["issuing_date"] == now.date().isoformat()


def test_anniversary_subscription_bills_on_its_day_with_the_usage_of_its_own_period(client: httpx.Client,
                                                                                     unique: str) -> None:
    mtu_metric(client)
    plan(client, "anniv", amount=5000, advance=True, charges=[per_unit("mtu", "0.5")])
    customer(client, f"c-{unique}")
    subscribe(client, f"c-{unique}", f"s-{unique}", "anniv", "2026-01-31T00:00:00Z", billing_time="anniversary")
    before = mtu_events(f"s-{unique}", "a", range(4), "2026-02-27T23:00:00Z")  # first period: Jan 31 - Feb 27
    after = mtu_events(f"s-{unique}", "b", range(10, 13), "2026-02-28T01:00:00Z")  # second period
    send(client, before + after)
    wait_archived(client, [before[-1]["transaction_id"], after[-1]["transaction_id"]])

    bill("2026-02-27T23:59:00Z", unique)
    assert invoices_of(client, f"c-{unique}") == []  # backdated: no start invoice, and not yet the day
    bill("2026-03-01T00:00:00Z", unique)
    (invoice,) = invoices_of(client, f"c-{unique}")
    assert invoice["issuing_date"] == "2026-02-28"  # the 31st clamped in February
    assert fee_lines(invoice) == [("subscription", "anniv", "1.0", 5000), ("charge", "mtu", "4.0", 200)]
    period = invoice["billing_periods"][0]
    assert (period["charges_from_datetime"], period["charges_to_datetime"]) == (
        "2026-01-31T00:00:00.000Z", "2026-02-27T23:59:59.999Z")
    assert (period["subscription_from_datetime"], period["subscription_to_datetime"]) == (
        "2026-02-28T00:00:00.000Z", "2026-03-30T23:59:59.999Z")


def test_new_york_customer_events_near_midnight_fall_in_their_local_month(client: httpx.Client, unique: str) -> None:
    mtu_metric(client)
    plan(client, "ny", amount=1000, advance=False, charges=[per_unit("mtu", "1")])
    customer(client, f"c-{unique}", timezone="America/New_York")
    subscribe(client, f"c-{unique}", f"s-{unique}", "ny", "2026-05-01T04:00:00Z")  # May 1st, 00:00 in New York
    may = mtu_events(f"s-{unique}", "may", range(1), "2026-06-01T03:30:00Z")  # May 31st, 23:30 local
    june = mtu_events(f"s-{unique}", "june", range(1, 3), "2026-06-01T04:30:00Z")  # June 1st, 00:30 local
    send(client, may + june)
    wait_archived(client, [may[0]["transaction_id"], june[-1]["transaction_id"]])

    bill("2026-06-01T03:59:00Z", unique)
    assert invoices_of(client, f"c-{unique}") == []  # still May 31st in New York
    bill("2026-07-01T04:00:00Z", unique)
    may_invoice, june_invoice = invoices_of(client, f"c-{unique}")
    assert may_invoice["issuing_date"] == "2026-06-01"
    assert fee_lines(may_invoice) == [("subscription", "ny", "1.0", 1000), ("charge", "mtu", "1.0", 100)]
    assert may_invoice["billing_periods"][0]["charges_to_datetime"] == "2026-06-01T03:59:59.999Z"
    assert june_invoice["issuing_date"] == "2026-07-01"
    assert fee_lines(june_invoice) == [("subscription", "ny", "1.0", 1000), ("charge", "mtu", "2.0", 200)]


def test_free_plan_produces_zero_invoices_finalized_as_paid_with_the_subscription_line_kept(
        client: httpx.Client, unique: str) -> None:
    mtu_metric(client)
    mtu_metric(client, "seats")
    plan(client, "free", amount=0, advance=False, charges=[per_unit("mtu", "0"), per_unit("seats", "3")])
    customer(client, f"c-{unique}")
    subscribe(client, f"c-{unique}", f"s-{unique}", "free", "2026-03-01T00:00:00Z")
    events = mtu_events(f"s-{unique}", "m", range(5), "2026-03-15T12:00:00Z")
    send(client, events)
    wait_archived(client, [events[-1]["transaction_id"]])

    bill("2026-05-01T00:00:00Z", unique)
    march, april = invoices_of(client, f"c-{unique}")
    # 5 MTUs at $0 stay (units); the seats charge with no usage is left out; the $0 fee line stays
    assert fee_lines(march) == [("subscription", "free", "1.0", 0), ("charge", "mtu", "5.0", 0)]
    assert fee_lines(april) == [("subscription", "free", "1.0", 0)]
    for invoice in (march, april):
        assert (invoice["status"], invoice["payment_status"], invoice["total_amount_cents"]) == (
            "finalized", "succeeded", 0)
    assert [march["sequential_id"], april["sequential_id"]] == [1, 2]


def test_a_biller_down_on_the_first_catches_up_every_missed_billing_day_once(client: httpx.Client,
                                                                            unique: str) -> None:
    mtu_metric(client)
    plan(client, "basic", amount=3000, advance=False, charges=[per_unit("mtu", "1")])
    customer(client, f"c-{unique}")
    subscribe(client, f"c-{unique}", f"s-{unique}", "basic", "2026-02-16T00:00:00Z")
    events = (mtu_events(f"s-{unique}", "feb", range(2), "2026-02-20T00:00:00Z")
              + mtu_events(f"s-{unique}", "mar", range(3), "2026-03-20T00:00:00Z")
              + mtu_events(f"s-{unique}", "apr", range(4), "2026-04-20T00:00:00Z"))
    send(client, events)
    wait_archived(client, [events[1]["transaction_id"], events[4]["transaction_id"], events[-1]["transaction_id"]])

    bill("2026-05-15T00:00:00Z", unique)  # down on March 1st, April 1st and May 1st
    invoices = invoices_of(client, f"c-{unique}")
    bill("2026-05-15T00:00:00Z", unique)
    assert invoices_of(client, f"c-{unique}") == invoices
    assert [i["issuing_date"] for i in invoices] == ["2026-03-01", "2026-04-01", "2026-05-01"]
    assert [fee_lines(i) for i in invoices] == [
        [("subscription", "basic", "1.0", 1393), ("charge", "mtu", "2.0", 200)],  # Feb 16-28: 13 of 28 days
        [("subscription", "basic", "1.0", 3000), ("charge", "mtu", "3.0", 300)],
        [("subscription", "basic", "1.0", 3000), ("charge", "mtu", "4.0", 400)],
    ]
    assert [i["sequential_id"] for i in invoices] == [1, 2, 3]


def test_termination_bills_the_usage_so_far_and_the_fee_up_to_the_termination_day(client: httpx.Client,
                                                                                 unique: str) -> None:
    mtu_metric(client)
    plan(client, "arrears", amount=3000, advance=False, charges=[per_unit("mtu", "1")])
    customer(client, f"c-{unique}")
    subscribe(client, f"c-{unique}", f"s-{unique}", "arrears", "2026-03-01T00:00:00Z")
    events = mtu_events(f"s-{unique}", "x", range(3), "2026-03-05T00:00:00Z")
    send(client, events)
    wait_archived(client, [events[-1]["transaction_id"]])
    bill("2026-04-01T00:00:00Z", unique)  # March
    terminated = client.delete(f"/subscriptions/s-{unique}")
    assert terminated.status_code == 200, terminated.text
    ended = datetime.fromisoformat(terminated.json()["subscription"]["terminated_at"].replace("Z", "+00:00"))
    after = (ended + timedelta(seconds=1)).isoformat()  # the answer's terminated_at is cut to milliseconds
    bill(after, unique)  # April through the month of the termination, then the termination
    invoices = invoices_of(client, f"c-{unique}")
    last = invoices[-1]
    assert last["billing_periods"][0]["invoicing_reason"] == "subscription_terminating"
    days_in_month = calendar.monthrange(ended.year, ended.month)[1]
    expected = int((Decimal(ended.day) * 3000 / days_in_month).quantize(Decimal(1), ROUND_HALF_UP))
    assert fee_lines(last) == [("subscription", "arrears", "1.0", expected)]  # no usage since April
    assert last["billing_periods"][0]["charges_to_datetime"] == (ended - timedelta(milliseconds=1)).strftime(
        "%Y-%m-%dT%H:%M:%S.") + f"{(ended - timedelta(milliseconds=1)).microsecond // 1000:03d}Z"
    assert fee_lines(invoices[0]) == [("subscription", "arrears", "1.0", 3000), ("charge", "mtu", "3.0", 300)]
    bill(after, unique)
    assert len(invoices_of(client, f"c-{unique}")) == len(invoices)


def test_a_first_range_flat_amount_is_billed_without_any_usage(client: httpx.Client, unique: str) -> None:
    """The contract's pricing rule: at 0 units the first graduated range's flat amount is billed and
    its fee kept; a volume charge bills the flat amount of the range 0 units fall in."""
    mtu_metric(client)
    graduated = {"billable_metric_code": "mtu", "charge_model": "graduated", "properties": {"graduated_ranges": [
        {"from_value": 0, "to_value": 100, "per_unit_amount": "1", "flat_amount": "100"},
        {"from_value": 101, "to_value": None, "per_unit_amount": "0.5", "flat_amount": "20"}]}}
    volume = {"billable_metric_code": "mtu", "charge_model": "volume", "invoice_display_name": "Seats",
              "properties": {"volume_ranges": [
                  {"from_value": 0, "to_value": 10, "per_unit_amount": "2", "flat_amount": "7.5"},
                  {"from_value": 11, "to_value": None, "per_unit_amount": "1", "flat_amount": "0"}]}}
    plan(client, "flat", amount=0, advance=False, charges=[graduated, volume])
    customer(client, f"c-{unique}")
    subscribe(client, f"c-{unique}", f"s-{unique}", "flat", "2026-04-01T00:00:00Z")
    bill("2026-05-01T00:00:00Z", unique)  # April had no event at all
    (invoice,) = invoices_of(client, f"c-{unique}")
    assert fee_lines(invoice) == [("subscription", "flat", "1.0", 0), ("charge", "mtu", "0.0", 10000),
                                  ("charge", "mtu", "0.0", 750)]
    assert invoice["total_amount_cents"] == 10750
    usage = client.get(f"/customers/c-{unique}/current_usage", params={"external_subscription_id": f"s-{unique}"})
    assert usage.status_code == 200
    assert [line["amount_cents"] for line in usage.json()["customer_usage"]["charges_usage"]] == [10000, 750]
    assert usage.json()["customer_usage"]["amount_cents"] == 10750


def test_an_invoice_is_due_net_payment_term_days_after_it_is_issued(client: httpx.Client, unique: str) -> None:
    plan(client, "termed", amount=4000, advance=False)
    create(client, "/customers", "customer", {"external_id": f"c-{unique}", "currency": "USD", "timezone": "UTC",
                                              "net_payment_term": 30})
    create(client, "/customers", "customer", {"external_id": f"d-{unique}", "currency": "USD", "timezone": "UTC"})
    for customer_id in (f"c-{unique}", f"d-{unique}"):
        subscribe(client, customer_id, f"s-{customer_id}", "termed", "2026-04-01T00:00:00Z")
    bill("2026-05-01T00:00:00Z", unique)
    (termed,) = invoices_of(client, f"c-{unique}")
    assert (termed["issuing_date"], termed["net_payment_term"], termed["payment_due_date"]) == (
        "2026-05-01", 30, "2026-05-31")
    # unpaid since May 31: the biller marks it overdue
    assert marked_overdue(client, termed["lago_id"])["payment_status"] == "pending"
    (plain,) = invoices_of(client, f"d-{unique}")
    assert (plain["net_payment_term"], plain["payment_due_date"]) == (0, "2026-05-01")
    listed = client.get("/invoices", params={"external_customer_id": f"c-{unique}"}).json()["invoices"]
    assert (listed[0]["payment_due_date"], listed[0]["payment_overdue"]) == ("2026-05-31", True)
    assert client.get(f"/customers/c-{unique}").json()["customer"]["net_payment_term"] == 30
    assert client.get(f"/customers/d-{unique}").json()["customer"]["net_payment_term"] is None


def test_a_draft_takes_the_payment_term_in_force_when_it_is_finalized(client: httpx.Client, unique: str) -> None:
    plan(client, "termed", amount=4000, advance=False)
    # a grace period still running now: the biller loop that `make up` started leaves the draft alone
    customer_body = {"external_id": f"c-{unique}", "currency": "USD", "timezone": "UTC", "net_payment_term": 15,
                     "invoice_grace_period": 90}
    create(client, "/customers", "customer", customer_body)
    this_month = datetime.now(UTC).date().replace(day=1)
    last_month = (this_month - timedelta(days=1)).replace(day=1)
    subscribe(client, f"c-{unique}", f"s-{unique}", "termed", f"{last_month.isoformat()}T00:00:00Z")
    bill(f"{this_month.isoformat()}T00:00:00Z", unique)
    (draft,) = invoices_of(client, f"c-{unique}")
    assert (draft["status"], draft["net_payment_term"], draft["payment_due_date"], draft["payment_overdue"]) == (
        "draft", 15, (this_month + timedelta(days=15)).isoformat(), False)  # a draft is not overdue
    create(client, "/customers", "customer", {**customer_body, "net_payment_term": 45})
    final = client.put(f"/invoices/{draft['lago_id']}/finalize").json()["invoice"]
    assert (final["status"], final["net_payment_term"], final["payment_due_date"]) == (
        "finalized", 45, (this_month + timedelta(days=45)).isoformat())
