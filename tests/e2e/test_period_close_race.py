"""A billing period closed while its events are still streaming in: every event the aggregator
applied ends up either on the invoice of its period or in `events.rejected` as period_closed,
never in neither (the archive and the biller decide it under one lock in PostgreSQL)."""

from __future__ import annotations

import threading
import time
from decimal import Decimal

import httpx
import psycopg

from tests.builders import wait_for
from tests.conftest import Services
from tests.e2e.invoice_support import bill, create, customer, invoices_of, per_unit, plan, subscribe
from tests.e2e.test_aggregator_faults import organization_of, rejected_messages, send

OCTOBER = ("2026-10-01T00:00:00Z", "2026-11-01T00:00:00Z")


def october_event(subscription_id: str, n: int) -> dict[str, object]:
    # inside October, one second apart from the 15th on: every event belongs to the closing period
    return {"transaction_id": f"race-{n}", "code": "calls", "external_subscription_id": subscription_id,
            "timestamp": 1_792_022_400 + n, "properties": {}}


def archived_october(services: Services, subscription_id: str) -> set[str]:
    with psycopg.connect(services.database_url) as conn:
        rows = conn.execute(
            "SELECT e.transaction_id FROM events e JOIN subscriptions s ON s.organization_id = e.organization_id "
            "AND s.external_id = e.external_subscription_id WHERE s.external_id = %s "
            "AND e.timestamp >= %s AND e.timestamp < %s", (subscription_id, *OCTOBER)).fetchall()
    return {row[0] for row in rows}


def closed_rejections(services: Services, organization_id: str, subscription_id: str) -> list[str]:
    found = [m for m in rejected_messages(services, organization_id)
             if m["event"].get("external_subscription_id") == subscription_id]
    assert {m["reason"] for m in found} <= {"period_closed"}, found
    return [m["event"]["transaction_id"] for m in found]


def test_events_streamed_across_a_period_close_are_invoiced_or_rejected_never_lost(
        client: httpx.Client, ingest: httpx.Client, unique: str, services: Services) -> None:
    create(client, "/billable_metrics", "billable_metric",
           {"name": "Calls", "code": "calls", "aggregation_type": "count_agg"})
    plan(client, "race", amount=0, advance=False,
         charges=[per_unit("calls", "0.01")])
    customer_id, subscription_id = f"c-{unique}", f"s-{unique}"
    customer(client, customer_id, grace=0)  # no grace: the run as of November 2nd finalizes October at once
    subscribe(client, customer_id, subscription_id, "race", "2026-09-01T00:00:00Z")
    organization_id = organization_of(services, subscription_id)

    sent: list[str] = []
    stop = threading.Event()

    def stream() -> None:  # October events, 10 per request, until told to stop
        n = 0
        while not stop.is_set():
            batch = [october_event(subscription_id, n + k) for k in range(10)]
            send(ingest, batch)
            sent.extend(str(event["transaction_id"]) for event in batch)
            n += 10
            time.sleep(0.01)

    sender = threading.Thread(target=stream)
    sender.start()
    try:
        wait_for(lambda: len(archived_october(services, subscription_id)) >= 50, 60,
                 "the stream to flow into the archive")
        bill("2026-11-02T00:00:00Z", unique)
        # keep streaming until the close shows: events the archive refuses as period_closed
        wait_for(lambda: closed_rejections(services, organization_id, subscription_id), 60,
                 "an October event refused as period_closed")
    finally:
        stop.set()
        sender.join(timeout=120)
    assert not sender.is_alive()

    # wait until the aggregator has decided every event: archived or rejected
    deadline = time.monotonic() + 120
    while True:
        archived = archived_october(services, subscription_id)
        rejected = closed_rejections(services, organization_id, subscription_id)
        if len(archived) + len(set(rejected)) >= len(sent) or time.monotonic() > deadline:
            break
        time.sleep(1.0)

    [invoice] = [i for i in invoices_of(client, customer_id) if i["issuing_date"] == "2026-11-01"]
    assert invoice["status"] == "finalized"
    [fee] = [f for f in invoice["fees"] if f["item"]["type"] == "charge"]
    assert fee["item"]["code"] == "calls"
    invoiced = int(Decimal(fee["units"]))

    assert len(rejected) == len(set(rejected))  # each rejected once
    assert archived.isdisjoint(rejected)
    assert archived | set(rejected) == set(sent)  # no event in neither
    assert invoiced == len(archived)  # every archived October event is on the invoice
    assert fee["amount_cents"] == len(archived)
    assert invoiced + len(rejected) == len(sent)
    assert invoiced >= 50 and len(rejected) > 0  # the close really happened mid-stream
