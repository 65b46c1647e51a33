"""The Segment journey over HTTP: upgrades at once, downgrades at the period end, terminations with and
without a credit note, events across a change. Plan changes happen now (Lago ignores subscription_at on
a change), so the expected cents follow from today's date: the same formulas as the contract's worked
examples, whose fixed dates tests/unit/test_plan_changes.py checks to the cent."""

from __future__ import annotations

import calendar
import json
import subprocess
import time
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import httpx
import pytest
import redis
from lago_python_client.client import Client
from lago_python_client.models import Subscription

from tests.conftest import ROOT, Services, Stack
from tests.e2e.invoice_support import (
    bill,
    bill_command,
    create,
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
from tests.e2e.test_aggregator_faults import meterline
from tests.e2e.webhook_support import Receiver


def cents(days: int, amount: int, whole: int) -> int:
    return int((Decimal(days) * amount / whole).quantize(Decimal(1), ROUND_HALF_UP))


def month_start(moment: datetime) -> datetime:
    return moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def previous_month(moment: datetime) -> datetime:
    return month_start(month_start(moment) - timedelta(days=1))


def next_month(moment: datetime) -> datetime:
    return month_start(month_start(moment) + timedelta(days=32))


def days_in_month(moment: datetime) -> int:
    return calendar.monthrange(moment.year, moment.month)[1]


def lines_of(invoice: dict[str, Any]) -> list[tuple[str, str, str, str, int]]:
    """(subscription, type, code, units, cents) of every fee, sorted."""
    return sorted((f["external_subscription_id"], f["item"]["type"], f["item"]["code"], f["units"], f["amount_cents"])
                  for f in invoice["fees"])


def wait_past(moment: datetime) -> None:
    """Until `moment` (shown to the millisecond, stored to the microsecond) has passed."""
    time.sleep(max(0.0, (moment - datetime.now(UTC)).total_seconds()) + 0.01)


def usage_of(client: httpx.Client, customer_id: str, subscription_id: str) -> dict[str, Any]:
    response = client.get(f"/customers/{customer_id}/current_usage",
                          params={"external_subscription_id": subscription_id})
    assert response.status_code == 200, response.text
    return response.json()["customer_usage"]


@pytest.fixture
def lago(stack: Stack, org_key: str) -> Client:
    return Client(api_key=org_key, api_url=f"{stack.api_url}/")


def test_free_to_team_to_business_upgrades_at_once_with_events_across_them(
        client: httpx.Client, lago: Client, services: Services, unique: str) -> None:
    mtu_metric(client)
    plan(client, "free", amount=0, advance=False, charges=[per_unit("mtu", "0")])
    plan(client, "team", amount=12000, advance=True, trial=14, charges=[per_unit("mtu", "0.5")])
    plan(client, "business", amount=50000, advance=True, charges=[per_unit("mtu", "0.25")])
    customer_id, subscription_id = f"c-{unique}", f"s-{unique}"
    customer(client, customer_id)
    now = datetime.now(UTC)
    subscribe(client, customer_id, subscription_id, "free", previous_month(now).isoformat())  # the trial is over
    before = mtu_events(subscription_id, "free", range(3), max(month_start(now), now - timedelta(seconds=30))
                        .isoformat())
    send(client, before)
    wait_archived(client, [e["transaction_id"] for e in before])

    # Free -> Team: an upgrade, at once
    team = create(client, "/subscriptions", "subscription", {
        "external_customer_id": customer_id, "plan_code": "team", "external_id": subscription_id,
        "subscription_at": "2020-01-01T00:00:00Z"})  # ignored on a change, as Lago does
    assert (team["plan_code"], team["previous_plan_code"], team["status"]) == ("team", "free", "active")
    changed_at = datetime.fromisoformat(team["started_at"].replace("Z", "+00:00"))
    assert team["trial_ended_at"] is not None
    assert team["current_billing_period_started_at"] == team["started_at"]  # its first period starts at the change
    # until the change takes effect (a second on), current usage is Free's; never "no active subscription"
    assert client.get(f"/customers/{customer_id}/current_usage",
                      params={"external_subscription_id": subscription_id}).status_code == 200
    ended = client.get(f"/subscriptions/{subscription_id}", params={"status": "terminated"}).json()["subscription"]
    assert (ended["plan_code"], ended["terminated_at"]) == ("free", team["started_at"])

    wait_past(changed_at + timedelta(seconds=2))
    after = mtu_events(subscription_id, "team", range(10, 14), (changed_at + timedelta(seconds=2)).isoformat())
    repeats = after[:2]  # sent twice: counted once
    send(client, after + repeats)
    wait_archived(client, [e["transaction_id"] for e in after])

    bill(datetime.now(UTC).isoformat(), unique)
    upgrade = invoices_of(client, customer_id)[-1]
    days_left = days_in_month(changed_at) - changed_at.day + 1
    team_fee = cents(days_left, 12000, days_in_month(changed_at))
    assert lines_of(upgrade) == [(subscription_id, "charge", "mtu", "3.0", 0),
                                 (subscription_id, "subscription", "free", "1.0", 0),
                                 (subscription_id, "subscription", "team", "1.0", team_fee)]
    assert {p["invoicing_reason"] for p in upgrade["billing_periods"]} == {"upgrading"}
    assert upgrade["total_amount_cents"] == team_fee

    usage = usage_of(client, customer_id, subscription_id)  # the live subscription: Team, from the change
    assert (usage["charges_usage"][0]["units"], usage["amount_cents"]) == ("4.0", 200)
    assert usage["from_datetime"] == team["started_at"]

    # a late event for Free's period, closed by the upgrade invoice: refused, never counted for Team
    late = mtu_events(subscription_id, "late", range(50, 51), (changed_at - timedelta(seconds=5)).isoformat())
    barrier = mtu_events(subscription_id, "barrier", range(13, 14), (changed_at + timedelta(seconds=2)).isoformat())
    send(client, late + barrier)
    wait_archived(client, [barrier[0]["transaction_id"]])
    assert client.get(f"/events/{late[0]['transaction_id']}").status_code == 404

    # after Redis lost everything, the rebuild puts each event back on its own subscription's period
    redis.Redis.from_url(services.redis_url).flushdb()
    meterline("rebuild", "--subscription", subscription_id)
    assert usage_of(client, customer_id, subscription_id) == usage

    # Team -> Business with Lago's official client: Team's fee is credited from the change day on
    business = lago.subscriptions.create(Subscription(external_customer_id=customer_id, plan_code="business",
                                                      external_id=subscription_id))
    assert (business.plan_code, business.previous_plan_code) == ("business", "team")
    second = datetime.fromisoformat(str(business.started_at).replace("Z", "+00:00"))
    wait_past(second)  # an upgrade takes effect a second on
    bill(datetime.now(UTC).isoformat(), unique)
    invoice = invoices_of(client, customer_id)[-1]
    days_left = days_in_month(second) - second.day + 1
    credit = min(cents(days_left, 12000, days_in_month(second)), team_fee)
    business_fee = cents(days_left, 50000, days_in_month(second))
    assert lines_of(invoice) == [(subscription_id, "charge", "mtu", "4.0", 200),
                                 (subscription_id, "subscription", "business", "1.0", business_fee),
                                 (subscription_id, "subscription", "team", "1.0", 0)]
    assert (invoice["fees_amount_cents"], invoice["credit_notes_amount_cents"], invoice["total_amount_cents"]) == (
        200 + business_fee, credit, 200 + business_fee - credit)
    (note,) = client.get("/credit_notes", params={"external_customer_id": customer_id}).json()["credit_notes"]
    assert (note["reason"], note["credit_amount_cents"], note["balance_amount_cents"], note["credit_status"]) == (
        "order_change", credit, 0, "consumed")
    assert note["lago_invoice_id"] == upgrade["lago_id"]  # the invoice that paid Team's fee
    assert client.get(f"/credit_notes/{note['lago_id']}").json()["credit_note"]["number"] == \
        f"{upgrade['number']}-CN001"


def test_team_to_free_is_scheduled_for_the_billing_day_and_a_second_change_replaces_it(
        client: httpx.Client, unique: str) -> None:
    mtu_metric(client)
    plan(client, "team", amount=12000, advance=True, trial=14, charges=[per_unit("mtu", "0.5")])
    plan(client, "starter", amount=5000, advance=True)
    plan(client, "free", amount=0, advance=False, charges=[per_unit("mtu", "0")])
    customer_id, subscription_id = f"c-{unique}", f"s-{unique}"
    customer(client, customer_id)
    now = datetime.now(UTC)
    subscribe(client, customer_id, subscription_id, "team", previous_month(now).isoformat())
    used = mtu_events(subscription_id, "u", range(6), max(month_start(now), now - timedelta(seconds=30)).isoformat())
    send(client, used)
    wait_archived(client, [e["transaction_id"] for e in used])

    first = create(client, "/subscriptions", "subscription", {
        "external_customer_id": customer_id, "plan_code": "starter", "external_id": subscription_id})
    day = next_month(now).date().isoformat()
    assert (first["plan_code"], first["next_plan_code"], first["downgrade_plan_date"]) == ("team", "starter", day)
    changed = client.put(f"/subscriptions/{subscription_id}", json={"subscription": {"plan_code": "free"}})
    assert changed.status_code == 200, changed.text
    current = changed.json()["subscription"]
    assert (current["plan_code"], current["next_plan_code"], current["downgrade_plan_date"]) == ("team", "free", day)
    pending = client.get("/subscriptions", params={"status[]": ["pending", "canceled"],
                                                   "external_customer_id": customer_id}).json()["subscriptions"]
    assert sorted((s["plan_code"], s["status"], s["previous_plan_code"]) for s in pending) == [
        ("free", "pending", "team"), ("starter", "canceled", "team")]

    bill(next_month(now).isoformat(), unique)  # the billing day: Team ends with its usage, Free starts
    invoice = invoices_of(client, customer_id)[-1]
    assert invoice["issuing_date"] == day
    assert lines_of(invoice) == [(subscription_id, "charge", "mtu", "6.0", 300),
                                 (subscription_id, "subscription", "team", "1.0", 0)]
    assert {p["invoicing_reason"] for p in invoice["billing_periods"]} == {"subscription_terminating"}
    assert client.get("/credit_notes").json()["credit_notes"] == []  # its period was used whole


def test_terminations_credit_the_unused_days_unless_told_not_to(client: httpx.Client, unique: str) -> None:
    plan(client, "team", amount=12000, advance=True, trial=14)
    now = datetime.now(UTC)
    for name in ("credited", "kept", "silent"):
        customer(client, f"{name}-{unique}")
        subscribe(client, f"{name}-{unique}", f"s-{name}-{unique}", "team", previous_month(now).isoformat())
    bill(now.isoformat(), unique)  # this month's fee, paid in advance on the 1st
    paid = invoices_of(client, f"credited-{unique}")[-1]
    assert lines_of(paid)[0][4] == 12000
    shown_before = len(invoices_of(client, f"silent-{unique}"))

    def terminate(name: str, **params: str) -> dict[str, Any]:
        response = client.delete(f"/subscriptions/s-{name}-{unique}", params=params)
        assert response.status_code == 200, response.text
        return response.json()["subscription"]

    ended = terminate("credited")
    assert (ended["status"], ended["on_termination_credit_note"], ended["on_termination_invoice"]) == (
        "terminated", "credit", "generate")
    terminate("kept", on_termination_credit_note="skip")
    terminate("silent", on_termination_invoice="skip")
    ended_at = datetime.fromisoformat(ended["terminated_at"].replace("Z", "+00:00"))
    bill(datetime.now(UTC).isoformat(), unique)

    credit = cents(days_in_month(ended_at) - ended_at.day, 12000, days_in_month(ended_at))  # after that day
    notes = client.get("/credit_notes").json()["credit_notes"]
    by_customer = {n["customer"]["external_id"]: n for n in notes}
    if credit == 0:  # terminated on the last day of the month: nothing unused
        assert notes == []
    else:
        assert sorted(by_customer) == [f"credited-{unique}", f"silent-{unique}"]
        note = by_customer[f"credited-{unique}"]
        # the termination invoice is 0: the note keeps its balance for the next invoices
        assert (note["reason"], note["credit_amount_cents"], note["balance_amount_cents"], note["credit_status"]) \
            == ("order_cancellation", credit, credit, "available")
        voided = client.put(f"/credit_notes/{note['lago_id']}/void")
        assert (voided.status_code, voided.json()["credit_note"]["credit_status"],
                voided.json()["credit_note"]["balance_amount_cents"]) == (200, "voided", 0)
        again = client.put(f"/credit_notes/{note['lago_id']}/void")
        assert (again.status_code, again.json()["code"]) == (405, "no_voidable_amount")
    termination = invoices_of(client, f"credited-{unique}")[-1]
    assert [p["invoicing_reason"] for p in termination["billing_periods"]] == ["subscription_terminating"]
    assert len(invoices_of(client, f"silent-{unique}")) == shown_before  # no termination invoice shown
    # the external_id is free again
    again_subscribed = subscribe(client, f"credited-{unique}", f"s-credited-{unique}", "team",
                                 datetime.now(UTC).isoformat())
    assert (again_subscribed["status"], again_subscribed["previous_plan_code"]) == ("active", None)
    assert client.get("/credit_notes/not-a-uuid").status_code == 404


def test_subscription_and_credit_note_webhooks_in_lagos_shapes(client: httpx.Client, unique: str) -> None:
    receiver = Receiver(failures=0)
    try:
        assert client.post("/webhook_endpoints", json={"webhook_endpoint": {"webhook_url": receiver.url}}
                           ).status_code == 200
        plan(client, "team", amount=12000, advance=True, trial=14)
        customer_id, subscription_id = f"c-{unique}", f"s-{unique}"
        customer(client, customer_id, net_payment_term=3650)  # never overdue: no invoice.payment_overdue
        now = datetime.now(UTC)
        subscribe(client, customer_id, subscription_id, "team", previous_month(now).isoformat())
        bill(now.isoformat(), unique)
        deadline = time.monotonic() + 10  # the activation loop announces the trial's end within a second
        while "subscription.trial_ended" not in {json.loads(body)["webhook_type"] for _, body, _ in receiver.received}:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert client.delete(f"/subscriptions/{subscription_id}").status_code == 200
        bill(datetime.now(UTC).isoformat(), unique)
        last_day = days_in_month(now) == datetime.now(UTC).day  # nothing left to credit on the last day
        kinds = ["invoice.created", "subscription.started", "subscription.terminated", "subscription.trial_ended"]
        expected = sorted([*kinds, *([] if last_day else ["credit_note.created"])])
        deadline = time.monotonic() + 30
        while sorted({json.loads(body)["webhook_type"] for _, body, _ in receiver.received}) != expected:
            assert time.monotonic() < deadline, [json.loads(body)["webhook_type"] for _, body, _ in receiver.received]
            time.sleep(0.2)
        payloads = {}
        for _, body, _ in receiver.received:
            payload = json.loads(body)
            payloads.setdefault(payload["webhook_type"], payload)
        for kind in ("subscription.started", "subscription.terminated", "subscription.trial_ended"):
            assert payloads[kind]["object_type"] == "subscription"
            assert payloads[kind]["subscription"]["external_id"] == subscription_id
        assert payloads["subscription.terminated"]["subscription"]["status"] == "terminated"
        if not last_day:
            note = payloads["credit_note.created"]
            assert (note["object_type"], note["credit_note"]["reason"]) == ("credit_note", "order_cancellation")
            assert note["credit_note"]["items"][0]["fee"]["item"]["code"] == "team"
        time.sleep(1.5)
        assert len(receiver.received) == len({(h["X-Lago-Unique-Key"]) for h, _, _ in receiver.received})
    finally:
        receiver.server.shutdown()


def test_free_to_team_in_the_trial_bills_team_from_the_trial_end_only(client: httpx.Client, unique: str) -> None:
    plan(client, "free", amount=0, advance=False)
    plan(client, "team", amount=12000, advance=True, trial=14)
    customer_id, subscription_id = f"c-{unique}", f"s-{unique}"
    customer(client, customer_id)
    started = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=1)
    subscribe(client, customer_id, subscription_id, "free", started.isoformat())
    team = create(client, "/subscriptions", "subscription", {
        "external_customer_id": customer_id, "plan_code": "team", "external_id": subscription_id})
    assert (team["previous_plan_code"], team["trial_ended_at"]) == ("free", None)  # 14 days from Free's start
    changed_at = datetime.fromisoformat(team["started_at"].replace("Z", "+00:00"))
    wait_past(changed_at)
    bill(datetime.now(UTC).isoformat(), unique)
    (upgrade,) = invoices_of(client, customer_id)
    assert lines_of(upgrade) == [(subscription_id, "subscription", "free", "1.0", 0)]  # no Team fee in the trial

    trial_end = started + timedelta(days=14)
    bill(trial_end.isoformat(), unique)
    invoices = invoices_of(client, customer_id)
    if trial_end.day == 1:  # the trial ends on a billing day: that day bills the full month
        assert lines_of(invoices[-1]) == [(subscription_id, "subscription", "team", "1.0", 12000)]
    else:
        days = days_in_month(trial_end) - trial_end.day + 1
        assert (invoices[-1]["issuing_date"], lines_of(invoices[-1])) == (
            trial_end.date().isoformat(),
            [(subscription_id, "subscription", "team", "1.0", cents(days, 12000, days_in_month(trial_end)))])


def test_two_billing_runs_racing_take_a_credit_note_once(client: httpx.Client, unique: str) -> None:
    plan(client, "team", amount=12000, advance=True)
    plan(client, "business", amount=50000, advance=True)
    customer_id, subscription_id = f"c-{unique}", f"s-{unique}"
    customer(client, customer_id)
    now = datetime.now(UTC)
    subscribe(client, customer_id, subscription_id, "team", previous_month(now).isoformat())
    bill(now.isoformat(), unique)  # this month's fee, paid in advance on the 1st
    business = create(client, "/subscriptions", "subscription", {
        "external_customer_id": customer_id, "plan_code": "business", "external_id": subscription_id})
    changed_at = datetime.fromisoformat(business["started_at"].replace("Z", "+00:00"))
    wait_past(changed_at)
    as_of = datetime.now(UTC).isoformat()
    runs = [subprocess.Popen(bill_command(as_of, unique), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            for _ in range(3)]
    assert [run.wait(timeout=120) for run in runs] == [0, 0, 0]
    days_left = days_in_month(changed_at) - changed_at.day + 1
    credit = cents(days_left, 12000, days_in_month(changed_at))
    (note,) = client.get("/credit_notes").json()["credit_notes"]
    assert (note["credit_amount_cents"], note["balance_amount_cents"], note["credit_status"]) == (
        credit, 0, "consumed")
    (upgrade,) = [i for i in invoices_of(client, customer_id)
                  if {p["invoicing_reason"] for p in i["billing_periods"]} == {"upgrading"}]
    business_fee = cents(days_left, 50000, days_in_month(changed_at))
    assert (upgrade["fees_amount_cents"], upgrade["credit_notes_amount_cents"], upgrade["total_amount_cents"]) == (
        business_fee, credit, business_fee - credit)


def test_a_scheduled_downgrade_can_be_canceled_and_delete_ends_the_active_subscription(
        client: httpx.Client, unique: str) -> None:
    plan(client, "team", amount=12000, advance=True)
    plan(client, "free", amount=0, advance=False)
    customer_id, subscription_id = f"c-{unique}", f"s-{unique}"
    customer(client, customer_id)
    subscribe(client, customer_id, subscription_id, "team", datetime.now(UTC).isoformat())
    create(client, "/subscriptions", "subscription", {
        "external_customer_id": customer_id, "plan_code": "free", "external_id": subscription_id})
    other_cycle = client.post("/subscriptions", json={"subscription": {  # a change keeps the billing cycle
        "external_customer_id": customer_id, "plan_code": "free", "external_id": subscription_id,
        "billing_time": "anniversary"}})
    assert (other_cycle.status_code, other_cycle.json()["error_details"]) == (422, {"billing_time": [
        "value_is_invalid"]})
    renamed = client.put(f"/subscriptions/{subscription_id}", json={"subscription": {"name": "Acme Team"}})
    assert (renamed.json()["subscription"]["plan_code"], renamed.json()["subscription"]["name"]) == (
        "team", "Acme Team")  # the active subscription, not the downgrade waiting next to it
    canceled = client.delete(f"/subscriptions/{subscription_id}", params={"status": "pending"})
    assert (canceled.json()["subscription"]["plan_code"], canceled.json()["subscription"]["status"]) == (
        "free", "canceled")
    team = client.get(f"/subscriptions/{subscription_id}").json()["subscription"]
    assert (team["status"], team["next_plan_code"], team["downgrade_plan_date"]) == ("active", None, None)
    ended = client.delete(f"/subscriptions/{subscription_id}").json()["subscription"]
    assert (ended["plan_code"], ended["status"]) == ("team", "terminated")


def test_an_external_id_used_again_keeps_its_first_trial_and_never_overlaps_the_last_one(
        client: httpx.Client, unique: str) -> None:
    plan(client, "team", amount=12000, advance=True, trial=14)
    customer_id, subscription_id = f"c-{unique}", f"s-{unique}"
    customer(client, customer_id)
    first = subscribe(client, customer_id, subscription_id, "team",
                      (datetime.now(UTC) - timedelta(days=20)).isoformat())
    ended = client.delete(f"/subscriptions/{subscription_id}").json()["subscription"]
    overlapping = client.post("/subscriptions", json={"subscription": {
        "external_customer_id": customer_id, "plan_code": "team", "external_id": subscription_id,
        "subscription_at": first["subscription_at"]}})
    assert (overlapping.status_code, overlapping.json()["error_details"]) == (422, {"subscription_at": [
        "value_is_invalid"]})  # it would count the ended one's events again
    again = subscribe(client, customer_id, subscription_id, "team", ended["terminated_at"])
    assert again["trial_ended_at"] is not None  # its 14 days ran from the first start, 20 days ago
