"""The Segment Team plan with a 14-day trial started mid-month, billed by `meterline bill --as-of`."""

from __future__ import annotations

import time

import httpx

from meterline.example import team_plan
from tests.builders import metric_body
from tests.e2e.invoice_support import (
    bill,
    customer,
    fee_lines,
    invoices_of,
    mtu_events,
    send,
    subscribe,
    wait_archived,
)


def test_trial_end_then_billing_day_with_full_fee_and_usage_since_the_start(client: httpx.Client,
                                                                            unique: str) -> None:
    assert client.post("/billable_metrics", json=metric_body()).status_code == 200
    assert client.post("/plans", json={"plan": team_plan("team")}).status_code == 200
    # never overdue: with the default term, the biller `make up` started (on the real clock) marks these
    # long-past invoices overdue at any moment, say between the two reads compared below
    customer(client, f"acme-{unique}", net_payment_term=3650)
    subscribe(client, f"acme-{unique}", f"sub-{unique}", "team", "2026-06-10T00:00:00Z")
    code = "monthly_tracked_users"
    june = mtu_events(f"sub-{unique}", "jun", range(10_050), "2026-06-12T10:00:00Z", code)
    after_trial = mtu_events(f"sub-{unique}", "jun-late", range(0, 3000), "2026-06-28T10:00:00Z", code)  # seen
    july = mtu_events(f"sub-{unique}", "jul", range(5), "2026-07-01T10:00:00Z", code)
    send(client, june + after_trial + july)
    wait_archived(client, [june[-1]["transaction_id"], after_trial[-1]["transaction_id"], july[-1]["transaction_id"]])

    bill("2026-06-23T23:00:00Z", unique)
    assert invoices_of(client, f"acme-{unique}") == []
    bill("2026-06-24T12:00:00Z", unique)
    (trial_end,) = invoices_of(client, f"acme-{unique}")
    assert trial_end["total_amount_cents"] == 2800
    assert fee_lines(trial_end) == [("subscription", "team", "1.0", 2800)]
    assert (trial_end["status"], trial_end["payment_status"], trial_end["sequential_id"]) == ("finalized", "pending", 1)
    assert trial_end["issuing_date"] == "2026-06-24"
    assert trial_end["billing_periods"][0]["subscription_from_datetime"] == "2026-06-24T00:00:00.000Z"
    assert trial_end["billing_periods"][0]["subscription_to_datetime"] == "2026-06-30T23:59:59.999Z"

    bill("2026-07-01T00:30:00Z", unique)
    first, billing_day = invoices_of(client, f"acme-{unique}")
    assert first["lago_id"] == trial_end["lago_id"]
    assert billing_day["issuing_date"] == "2026-07-01"
    assert fee_lines(billing_day) == [("subscription", "team", "1.0", 12000), ("charge", code, "10050.0", 60)]
    assert billing_day["total_amount_cents"] == 12060
    assert billing_day["fees_amount_cents"] == 12060
    assert billing_day["sequential_id"] == 2
    assert billing_day["number"].endswith("-002")
    period = billing_day["billing_periods"][0]
    assert (period["charges_from_datetime"], period["charges_to_datetime"]) == (
        "2026-06-10T00:00:00.000Z", "2026-06-30T23:59:59.999Z")
    assert (period["subscription_from_datetime"], period["subscription_to_datetime"]) == (
        "2026-07-01T00:00:00.000Z", "2026-07-31T23:59:59.999Z")
    assert period["invoicing_reason"] == "subscription_periodic"
    assert billing_day["subscriptions"][0]["external_id"] == f"sub-{unique}"
    assert billing_day["customer"]["external_id"] == f"acme-{unique}"
    assert (billing_day["payment_due_date"], billing_day["payment_overdue"]) == ("2036-06-28", False)

    # the same run again changes nothing
    bill("2026-07-01T00:30:00Z", unique)
    assert invoices_of(client, f"acme-{unique}") == [first, billing_day]

    # June is closed: a late June event is rejected (never archived) while a July one is accepted
    late = mtu_events(f"sub-{unique}", "too-late", range(20_000, 20_001), "2026-06-29T10:00:00Z", code)
    barrier = mtu_events(f"sub-{unique}", "barrier", range(30_000, 30_001), "2026-07-02T10:00:00Z", code)
    time.sleep(1.0)  # the aggregator's catalog cache (0.5 s) sees the closed period
    send(client, late + barrier)
    wait_archived(client, [barrier[0]["transaction_id"]])
    assert client.get(f"/events/{late[0]['transaction_id']}").status_code == 404
