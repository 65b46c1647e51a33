"""Billing twice, and two billers at once, produce exactly the same invoices."""

from __future__ import annotations

import json
import os
import subprocess

import httpx

from tests.conftest import ROOT
from tests.e2e.invoice_support import (
    bill,
    bill_command,
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

CUSTOMERS = 6


def seed(client: httpx.Client, unique: str) -> list[str]:
    mtu_metric(client)
    plan(client, "team", amount=2000, advance=True, charges=[per_unit("mtu", "0.25")])
    customers = [f"c{n}-{unique}" for n in range(CUSTOMERS)]
    last = []
    for n, customer_id in enumerate(customers):
        customer(client, customer_id)
        subscribe(client, customer_id, f"s{n}-{unique}", "team", "2026-01-01T00:00:00Z")
        subscribe(client, customer_id, f"t{n}-{unique}", "team", "2026-01-15T00:00:00Z")  # same billing day
        events = mtu_events(f"s{n}-{unique}", f"e{n}", range(n + 1), "2026-02-10T00:00:00Z")
        send(client, events)
        last.append(events[-1]["transaction_id"])
    wait_archived(client, last)
    return customers


def snapshot(client: httpx.Client, customers: list[str]) -> dict[str, list[tuple]]:
    return {c: [(i["lago_id"], i["issuing_date"], i["sequential_id"], i["total_amount_cents"], fee_lines(i))
                for i in invoices_of(client, c)] for c in customers}


def test_the_same_run_twice_makes_no_second_invoice(client: httpx.Client, unique: str) -> None:
    customers = seed(client, unique)
    bill("2026-04-01T00:00:00Z", unique)
    first = snapshot(client, customers)
    bill("2026-04-01T00:00:00Z", unique)
    bill("2026-03-15T00:00:00Z", unique)  # an older as-of changes nothing either
    assert snapshot(client, customers) == first
    # one invoice per customer per billing day, both subscriptions on it
    assert [row[1] for row in first[customers[2]]] == ["2026-02-01", "2026-03-01", "2026-04-01"]
    march = first[customers[2]][1]
    assert march[3] == 2000 + 2000 + 75  # both in-advance fees + 3 MTUs of February at $0.25
    assert sorted(march[4]) == sorted([("subscription", "team", "1.0", 2000), ("subscription", "team", "1.0", 2000),
                                       ("charge", "mtu", "3.0", 75)])


def test_two_billers_racing_produce_one_set_of_invoices(client: httpx.Client, unique: str) -> None:
    customers = seed(client, unique)
    command = bill_command("2026-04-01T00:00:00Z", unique)
    racers = [subprocess.Popen(command, cwd=ROOT, env=dict(os.environ), stdout=subprocess.PIPE, text=True)
              for _ in range(2)]
    reports = [json.loads(p.communicate(timeout=120)[0].strip().splitlines()[-1]) for p in racers]
    assert all(p.returncode == 0 for p in racers)
    # whichever biller gets a customer first writes its invoices; the other skips them
    assert sum(r["invoices"] for r in reports) == CUSTOMERS * 3
    raced = snapshot(client, customers)
    for customer_id in customers:
        assert [row[1] for row in raced[customer_id]] == ["2026-02-01", "2026-03-01", "2026-04-01"]
        assert [row[2] for row in raced[customer_id]] == [1, 2, 3]
    bill("2026-04-01T00:00:00Z", unique)
    assert snapshot(client, customers) == raced
