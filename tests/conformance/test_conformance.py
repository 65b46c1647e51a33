"""The conformance runner: scenario rows in the project's own YAML format (rows.yaml), each lived through on a
test clock and checked invoice by invoice, to the cent.

A row names its plans (and metrics), the customer's timezone and options, the clock's start, a timeline of
steps at instants (subscribe, change plan, terminate, send events, finalize a draft), the instant it ends at, and
every invoice the customer then has, in order: issuing date, fees (type, code, cents) and total, with `why`, the
arithmetic that gives each number. A row may also list the credit notes (reason, cents, balance left). Each row
runs in its own organization, so codes never collide; the clock is advanced to each step's instant before it
(the same code paths as real time), then to the row's end.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.e2e.invoice_support import create, epoch, invoices_of, send, wait_archived
from tests.e2e.test_aggregator_faults import aggregators_paused
from tests.e2e.test_alerts_stream import evaluated, send_batch

ROWS: list[dict[str, Any]] = yaml.safe_load((Path(__file__).parent / "rows.yaml").read_text())
METRICS = {
    "mtu": {"name": "MTU", "aggregation_type": "unique_count_agg", "field_name": "user_id"},
    "calls": {"name": "API calls", "aggregation_type": "count_agg"},
    "gb": {"name": "Storage", "aggregation_type": "sum_agg", "field_name": "gb"},
    "amount": {"name": "Payments", "aggregation_type": "sum_agg", "field_name": "amount"},
}


def test_there_are_at_least_thirty_rows_each_with_its_arithmetic() -> None:
    assert len(ROWS) >= 30
    assert len({row["name"] for row in ROWS}) == len(ROWS)
    for row in ROWS:
        assert row["invoices"] is not None and all(invoice.get("why") for invoice in row["invoices"]), row["name"]


class Clock:
    def __init__(self, client: httpx.Client, start: str):
        self.client = client
        made = create(client, "/test_clocks", "test_clock", {"name": "conformance", "frozen_time": start})
        self.id, self.at = made["lago_id"], epoch(start)

    def advance(self, instant: str) -> None:
        if epoch(instant) <= self.at:
            return
        response = self.client.post(f"/test_clocks/{self.id}/advance", json={"frozen_time": instant})
        assert response.status_code == 200, response.text
        assert response.json()["test_clock"]["status"] == "ready"
        self.at = epoch(instant)


def _catalog(client: httpx.Client, row: dict[str, Any]) -> None:
    used = {charge["metric"] for plan in row["plans"] for charge in plan.get("charges", [])}
    for code in sorted(used):
        create(client, "/billable_metrics", "billable_metric", {**METRICS[code], "code": code})
    for plan in row["plans"]:
        body = {"name": plan["code"].title(), "interval": "monthly", "amount_currency": "USD", "trial_period": 0,
                "pay_in_advance": False, **{k: v for k, v in plan.items() if k != "charges"}}
        body["charges"] = [{"billable_metric_code": charge["metric"], "charge_model": charge["model"],
                            "properties": charge.get("properties", {})} for charge in plan.get("charges", [])]
        create(client, "/plans", "plan", body)


def _events(client: httpx.Client, ingest: httpx.Client, spec: dict[str, Any], at: str, step: int) -> None:
    """`users`: that many distinct users (unique_count); `count`: that many events; `values`: one event per value
    of the metric's field. In one batch of the aggregator (one evaluation) when `one_batch`; `refused`: they are
    for a closed period, and never archived."""
    metric = spec.get("metric", "mtu")
    field = METRICS[metric].get("field_name")
    first = spec.get("from", 0)
    if "values" in spec:
        properties = [{field: value} for value in spec["values"]]
    else:
        number = spec.get("users", spec.get("count", 0))
        properties = [{field: f"user-{first + n}"} if field else {} for n in range(number)]
    events = [{"transaction_id": f"{spec['subscription']}-{step}-{n}", "code": metric,
               "external_subscription_id": spec["subscription"], "timestamp": epoch(spec.get("timestamp", at)),
               "properties": props} for n, props in enumerate(properties)]
    if spec.get("one_batch"):
        # the fetch the paused aggregator had in flight is answered by the first event to arrive: an event its
        # plan does not charge (refused, unknown_metric) takes it, and the batch comes whole in the next one
        primer = {**events[0], "transaction_id": f"primer-{step}", "code": "primer"}
        with aggregators_paused():
            send_batch(ingest, [primer])
            time.sleep(0.3)
            send_batch(ingest, events)
        wait_archived(client, [events[-1]["transaction_id"]])
        evaluated()
    elif spec.get("refused"):  # for a period closed: never archived, never billed
        send(client, events)
        time.sleep(2)
        assert all(client.get(f"/events/{event['transaction_id']}").status_code == 404 for event in events)
    else:
        send(client, events)
        wait_archived(client, [events[-1]["transaction_id"]])


def _step(client: httpx.Client, ingest: httpx.Client, customer_id: str, step: dict[str, Any], number: int) -> None:
    at = step["at"]
    if "subscribe" in step or "change" in step:
        spec = step.get("subscribe") or step["change"]
        body = {"external_customer_id": customer_id, "external_id": spec["id"], "plan_code": spec["plan"],
                **{k: v for k, v in spec.items() if k not in ("id", "plan")}}
        create(client, "/subscriptions", "subscription", body)
    elif "terminate" in step:
        spec = step["terminate"]
        params = {k: v for k, v in spec.items() if k != "id"}
        response = client.delete(f"/subscriptions/{spec['id']}", params=params)
        assert response.status_code == 200, response.text
    elif "events" in step:
        _events(client, ingest, step["events"], at, number)
    elif "finalize" in step:
        drafts = [i for i in invoices_of(client, customer_id) if i["status"] == "draft"]
        for draft in drafts:
            assert client.put(f"/invoices/{draft['lago_id']}/finalize").status_code == 200
    else:
        raise AssertionError(f"unknown step {step!r}")


def shown(invoice: dict[str, Any]) -> dict[str, Any]:
    return {"date": invoice["issuing_date"], "fees": [[f["item"]["type"], f["item"]["code"], f["amount_cents"]]
                                                       for f in invoice["fees"]],
            "total": invoice["total_amount_cents"]}


@pytest.mark.parametrize("row", ROWS, ids=[row["name"] for row in ROWS])
def test_row(row: dict[str, Any], client: httpx.Client, ingest: httpx.Client, unique: str) -> None:
    _catalog(client, row)
    clock = Clock(client, row["start"])
    customer_id = f"c-{unique}"
    create(client, "/customers", "customer", {"external_id": customer_id, "currency": "USD",
                                              "timezone": row.get("timezone", "UTC"), "test_clock_id": clock.id,
                                              **row.get("customer", {})})
    for number, step in enumerate(row["steps"]):
        clock.advance(step["at"])
        _step(client, ingest, customer_id, step, number)
    clock.advance(row["until"])
    found = [shown(invoice) for invoice in invoices_of(client, customer_id)]
    expected = [{k: v for k, v in invoice.items() if k != "why"} for invoice in row["invoices"]]
    for invoice in expected:
        invoice["date"] = str(invoice["date"])
    assert found == expected
    if "credit_notes" in row:
        notes = client.get("/credit_notes", params={"external_customer_id": customer_id}).json()["credit_notes"]
        assert sorted([n["reason"], n["credit_amount_cents"], n["balance_amount_cents"]] for n in notes) == \
            sorted(row["credit_notes"])
