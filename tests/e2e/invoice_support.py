"""Helpers of the invoice end-to-end tests: a catalog per test, backdated events, `meterline bill --as-of`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx

from meterline.example import team_plan
from tests.builders import metric_body
from tests.conftest import ROOT

TEAM_METRIC = "monthly_tracked_users"  # the Segment Team plan's metric (meterline.example)
WELCOME = {"name": "Welcome", "code": "welcome", "coupon_type": "fixed_amount", "amount_cents": 1000,
           "amount_currency": "USD", "frequency": "once", "expiration": "no_expiration"}  # $10 once


def at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def epoch(text: str) -> int:
    return int(at(text).timestamp())


def bill_command(as_of: str, unique: str) -> list[str]:
    """`meterline bill` for the test's own organization (the `org_key` fixture names it test-<unique>)."""
    return [sys.executable, "-m", "meterline.cli", "bill", "--as-of", as_of, "--organization", f"test-{unique}"]


def bill(as_of: str, unique: str) -> dict[str, Any]:
    """One billing run as of `as_of`, as the command line runs it."""
    done = subprocess.run(bill_command(as_of, unique), cwd=ROOT,
                          env=dict(os.environ), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def create(client: httpx.Client, path: str, root: str, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post(path, json={root: body})
    assert response.status_code == 200, response.text
    return response.json()[root]


def mtu_metric(client: httpx.Client, code: str = "mtu") -> None:
    create(client, "/billable_metrics", "billable_metric", {
        "name": "MTU", "code": code, "aggregation_type": "unique_count_agg", "field_name": "user_id"})


def plan(client: httpx.Client, code: str, *, amount: int, advance: bool, trial: int = 0,
         charges: list[dict[str, Any]] | None = None) -> None:
    create(client, "/plans", "plan", {
        "name": code.title(), "code": code, "interval": "monthly", "amount_cents": amount, "amount_currency": "USD",
        "pay_in_advance": advance, "trial_period": trial, "charges": charges or []})


def per_unit(metric_code: str, amount: str) -> dict[str, Any]:
    return {"billable_metric_code": metric_code, "charge_model": "standard", "properties": {"amount": amount}}


def customer(client: httpx.Client, external_id: str, timezone: str = "UTC", grace: int | None = None,
             net_payment_term: int | None = None) -> None:
    """`net_payment_term`: days to pay; with the default 0, an invoice for a period long past is overdue at
    once, and the biller `make up` started marks it (webhook invoice.payment_overdue) within 30 s."""
    body: dict[str, Any] = {"external_id": external_id, "name": "Acme", "currency": "USD", "timezone": timezone}
    if grace is not None:
        body["invoice_grace_period"] = grace
    if net_payment_term is not None:
        body["net_payment_term"] = net_payment_term
    create(client, "/customers", "customer", body)


def subscribe(client: httpx.Client, customer_id: str, subscription_id: str, plan_code: str, subscription_at: str,
              billing_time: str = "calendar") -> dict[str, Any]:
    return create(client, "/subscriptions", "subscription", {
        "external_customer_id": customer_id, "plan_code": plan_code, "external_id": subscription_id,
        "subscription_at": subscription_at, "billing_time": billing_time})


def send(client: httpx.Client, events: list[dict[str, Any]]) -> None:
    for start in range(0, len(events), 100):
        response = client.post("/events/batch", json={"events": events[start:start + 100]})
        assert response.status_code == 200, response.text


def mtu_events(subscription_id: str, prefix: str, users: range, timestamp: str, code: str = "mtu"
               ) -> list[dict[str, Any]]:
    return [{"transaction_id": f"{prefix}-{n}", "code": code, "external_subscription_id": subscription_id,
             "timestamp": epoch(timestamp), "properties": {"user_id": f"user-{n}"}} for n in users]


def wait_archived(client: httpx.Client, transaction_ids: list[str], timeout_s: float = 60) -> None:
    """Until every event is in the archive (what invoices are computed from)."""
    deadline = time.monotonic() + timeout_s
    for transaction_id in transaction_ids:
        while client.get(f"/events/{transaction_id}").status_code != 200:
            assert time.monotonic() < deadline, f"event {transaction_id} never archived"
            time.sleep(0.1)


def invoices_of(client: httpx.Client, customer_id: str) -> list[dict[str, Any]]:
    """The customer's invoices, oldest first, each fetched in full (fees, billing periods)."""
    response = client.get("/invoices", params={"external_customer_id": customer_id, "per_page": 100})
    assert response.status_code == 200, response.text
    listed = sorted(response.json()["invoices"], key=lambda i: (i["issuing_date"], i["created_at"]))
    return [client.get(f"/invoices/{i['lago_id']}").json()["invoice"] for i in listed]


def fee_lines(invoice: dict[str, Any]) -> list[tuple[str, str, str, int]]:
    return [(f["item"]["type"], f["item"]["code"], f["units"], f["amount_cents"]) for f in invoice["fees"]]


def marked_overdue(client: httpx.Client, lago_id: str, timeout_s: float = 45) -> dict[str, Any]:
    """The invoice once the biller `make up` started marked it overdue (it runs every 30 s)."""
    deadline = time.monotonic() + timeout_s
    while True:
        invoice: dict[str, Any] = client.get(f"/invoices/{lago_id}").json()["invoice"]
        if invoice["payment_overdue"]:
            return invoice
        assert time.monotonic() < deadline, "not marked overdue"
        time.sleep(0.5)


def billed_last_month(client: httpx.Client, unique: str, customer_id: str, subscription_id: str,
                      plan_code: str) -> date:
    """Subscribe from the first of last month and bill as of the first of this month (returned): with a grace
    period still running, the invoice stays a draft (the biller `make up` started leaves it alone)."""
    this_month = datetime.now(UTC).date().replace(day=1)
    last_month = (this_month - timedelta(days=1)).replace(day=1)
    subscribe(client, customer_id, subscription_id, plan_code, f"{last_month.isoformat()}T00:00:00Z")
    bill(f"{this_month.isoformat()}T00:00:00Z", unique)
    return this_month


def team_coupon_vat_invoice(client: httpx.Client, unique: str, *, grace: int | None = None,
                            **customer_details: Any) -> dict[str, Any]:
    """The contract's July 1 invoice of a Team customer (`c-{unique}`) with 30,000 MTUs in June, the $10 coupon
    once and a 20% VAT (the organization's default), as the biller writes it (a draft with `grace`)."""
    assert client.post("/billable_metrics", json=metric_body()).status_code == 200
    create(client, "/taxes", "tax", {"name": "VAT", "code": "vat", "rate": 20, "applied_to_organization": True})
    create(client, "/plans", "plan", {**team_plan("team"), "trial_period": 0})
    create(client, "/coupons", "coupon", WELCOME)
    create(client, "/customers", "customer", {
        "external_id": f"c-{unique}", "currency": "USD", "timezone": "UTC", **customer_details,
        **({"invoice_grace_period": grace} if grace is not None else {})})
    create(client, "/applied_coupons", "applied_coupon", {"external_customer_id": f"c-{unique}",
                                                          "coupon_code": "welcome"})
    subscribe(client, f"c-{unique}", f"s-{unique}", "team", "2026-06-01T00:00:00Z")
    events = mtu_events(f"s-{unique}", "jun", range(30_000), "2026-06-20T10:00:00Z", TEAM_METRIC)
    send(client, events)
    wait_archived(client, [events[-1]["transaction_id"]])
    bill("2026-07-01T00:30:00Z", unique)
    (july,) = invoices_of(client, f"c-{unique}")
    return july
