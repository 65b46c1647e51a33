"""Usage alerts evaluated in the stream, end to end: events through the ingest, Kafka and the aggregator,
the alerts worker and the `alert.triggered` webhook received signed by a local endpoint. Each threshold fires
exactly once per period, with the values the evaluation saw; a kill -9 of the aggregator or of the alerts worker
around a crossing changes nothing."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import psycopg
import pytest

from core.lag import wait_caught_up
from core.settings import load_settings
from meterline.example import MTU_METRIC, team_plan
from tests.builders import wait_for
from tests.conftest import Services, Stack
from tests.e2e.invoice_support import (
    bill,
    create,
    customer,
    epoch,
    invoices_of,
    mtu_metric,
    per_unit,
    plan,
    wait_archived,
)
from tests.e2e.test_aggregator_faults import meterline, pid_of, started_every_aggregator, stop_aggregators, wait_gone
from tests.e2e.test_ops_metrics import scrape
from tests.e2e.webhook_support import Receiver


@pytest.fixture
def receiver(client: httpx.Client) -> Iterator[tuple[Receiver, str]]:
    """A webhook endpoint of the test's organization; (receiver, its HMAC key)."""
    found = Receiver(failures=0)
    endpoint = create(client, "/webhook_endpoints", "webhook_endpoint", {"webhook_url": found.url})
    yield found, endpoint["hmac_key"]
    found.server.shutdown()


def subscribe_now(client: httpx.Client, customer_id: str, subscription_id: str, plan_code: str) -> None:
    create(client, "/subscriptions", "subscription", {
        "external_customer_id": customer_id, "plan_code": plan_code, "external_id": subscription_id})


def on_free_plan(client: httpx.Client, unique: str) -> None:
    """The MTU metric, the Free plan ($0, MTUs at $0), customer c-<unique> subscribed now as s-<unique>."""
    mtu_metric(client)
    plan(client, "free", amount=0, advance=False, charges=[per_unit("mtu", "0")])
    customer(client, f"c-{unique}")
    subscribe_now(client, f"c-{unique}", f"s-{unique}", "free")


def add_alert(client: httpx.Client, subscription_id: str, alert: dict[str, Any]) -> dict[str, Any]:
    response = client.post(f"/subscriptions/{subscription_id}/alerts", json={"alert": alert})
    assert response.status_code == 200, response.text
    time.sleep(1.0)  # the workers' catalogs see it when it is announced, or within CATALOG_TTL_S (0.5 s)
    return response.json()["alert"]


def units_now(client: httpx.Client, customer_id: str, subscription_id: str) -> Decimal:
    response = client.get(f"/customers/{customer_id}/current_usage",
                          params={"external_subscription_id": subscription_id})
    assert response.status_code == 200, response.text
    return Decimal(response.json()["customer_usage"]["charges_usage"][0]["units"])


def send_batch(ingest: httpx.Client, events: list[dict[str, Any]]) -> None:
    for start in range(0, len(events), 100):
        response = ingest.post("/events/batch", json={"events": events[start:start + 100]})
        assert response.status_code == 200, response.text


def users(subscription_id: str, metric: str, numbers: range, run: str) -> list[dict[str, Any]]:
    return [{"transaction_id": f"{run}-{n}", "code": metric, "external_subscription_id": subscription_id,
             "properties": {"user_id": f"user-{n}"}} for n in numbers]


def settle(client: httpx.Client, customer_id: str, subscription_id: str, units: int) -> None:
    """Until the usage is `units`, and the alerts worker evaluated it (the values an alert shows are what
    its evaluation saw: the next batch must not be in Redis before that)."""
    wait_for(lambda: units_now(client, customer_id, subscription_id) == units, 30, f"{units} units")
    evaluated()


def evaluated(timeout_s: float = 30.0) -> None:
    """Wait until the alerts worker evaluated what the aggregator applied so far: the aggregator's group
    caught up on the events (a batch publishes its touched pairs before its commit), then the alerts
    worker's on those pairs."""
    settings = load_settings()
    deadline = time.monotonic() + timeout_s
    for group, topic in ((settings.consumer_group, settings.events_topic),
                         (settings.alerts_group, settings.touched_topic)):
        wait_caught_up(settings.kafka_bootstrap, group, topic, deadline)


def test_free_plan_thresholds_800_and_1000_each_fire_once_with_the_values_seen(
        client: httpx.Client, ingest: httpx.Client, receiver: tuple[Receiver, str], unique: str,
        stack: Stack) -> None:
    hooks, hmac_key = receiver
    on_free_plan(client, unique)
    add_alert(client, f"s-{unique}", {
        "alert_type": "billable_metric_current_usage_units", "code": "free_cap", "name": "Free plan cap",
        "billable_metric_code": "mtu",
        "thresholds": [{"code": "warn", "value": 800}, {"code": "cap", "value": "1000"}]})

    # 1,200 distinct users, 100 new ones a batch, each batch repeating 20 users already counted
    for batch in range(12):
        repeats = users(f"s-{unique}", "mtu", range(max(batch - 1, 0) * 100, max(batch - 1, 0) * 100 + 20),
                        f"again-{batch}")
        send_batch(ingest, users(f"s-{unique}", "mtu", range(batch * 100, batch * 100 + 100), "first") + repeats)
        settle(client, f"c-{unique}", f"s-{unique}", (batch + 1) * 100)

    fired = hooks.wait_for_type("alert.triggered", 2)
    time.sleep(1.5)  # anything fired twice would have arrived by now
    assert len(hooks.payloads("alert.triggered")) == 2
    hooks.assert_signed(hmac_key)
    by_code = {p["triggered_alert"]["crossed_thresholds"][0]["code"]: p for p in fired}
    warn, cap = by_code["warn"]["triggered_alert"], by_code["cap"]["triggered_alert"]
    assert {p["object_type"] for p in fired} == {"triggered_alert"}
    assert (warn["previous_value"], warn["current_value"]) == (700, 800)
    assert warn["crossed_thresholds"] == [{"code": "warn", "value": "800.0", "recurring": False}]
    assert (cap["previous_value"], cap["current_value"]) == (900, 1000)
    assert cap["crossed_thresholds"] == [{"code": "cap", "value": "1000.0", "recurring": False}]
    for alert in (warn, cap):
        assert (alert["alert_code"], alert["alert_type"], alert["billable_metric_code"]) == (
            "free_cap", "billable_metric_current_usage_units", "mtu")
        assert (alert["external_subscription_id"], alert["external_customer_id"]) == (f"s-{unique}", f"c-{unique}")

    shown = client.get(f"/subscriptions/s-{unique}/alerts/free_cap").json()["alert"]
    assert [t["current_value"] for t in shown["triggered_alerts"]] == [1000, 800]

    # operators see them: on the ops page (the last ones fired) and in /metrics (totals of every worker)
    def on_ops_page() -> list[dict[str, Any]]:
        recent = httpx.get(f"{stack.api_url}/ops/data", timeout=5).json()["alerts"]["recent"]
        return [a for a in recent if a["external_subscription_id"] == f"s-{unique}"]
    wait_for(lambda: len(on_ops_page()) == 2, 10, "the two alerts on the ops page")
    # and the alerts worker caught up: nothing waits for it (refreshed every 2 s)
    wait_for(lambda: httpx.get(f"{stack.api_url}/ops/data", timeout=5).json()["alerts"]["lag"] == 0, 10,
             "the alerts worker's lag on the ops page")
    assert [a["levels"] for a in on_ops_page()] == [["1000.0"], ["800.0"]]
    totals = {labels["outcome"]: value for labels, value in scrape(stack.api_url)["meterline_pipeline_alerts_total"]}
    assert totals["fired"] >= 2 and totals["evaluated"] >= 12


def test_a_recurring_threshold_fires_again_every_step_past_the_highest_fixed_one(
        client: httpx.Client, ingest: httpx.Client, receiver: tuple[Receiver, str], unique: str) -> None:
    hooks, _ = receiver
    on_free_plan(client, unique)
    add_alert(client, f"s-{unique}", {
        "alert_type": "billable_metric_current_usage_units", "code": "growth", "billable_metric_code": "mtu",
        "thresholds": [{"code": "first", "value": 1000}, {"code": "every", "value": 500, "recurring": True}]})

    for step in range(10):  # 250 users at a time up to 2,500
        send_batch(ingest, users(f"s-{unique}", "mtu", range(step * 250, step * 250 + 250), "u"))
        settle(client, f"c-{unique}", f"s-{unique}", (step + 1) * 250)

    fired = hooks.wait_for_type("alert.triggered", 4)
    time.sleep(1.5)
    assert len(hooks.payloads("alert.triggered")) == 4
    crossed = [(t["code"], t["value"], t["recurring"])
               for p in fired for t in p["triggered_alert"]["crossed_thresholds"]]
    assert sorted(crossed, key=lambda c: Decimal(c[1])) == [
        ("first", "1000.0", False), ("every", "1500.0", True), ("every", "2000.0", True), ("every", "2500.0", True)]
    assert sorted(p["triggered_alert"]["current_value"] for p in fired) == [1000, 1500, 2000, 2500]


def test_an_amount_alert_on_the_team_plan_fires_once_at_the_priced_usage(
        client: httpx.Client, ingest: httpx.Client, receiver: tuple[Receiver, str], unique: str) -> None:
    hooks, _ = receiver
    create(client, "/billable_metrics", "billable_metric", MTU_METRIC)
    create(client, "/plans", "plan", team_plan("team"))
    customer(client, f"c-{unique}")
    subscribe_now(client, f"c-{unique}", f"s-{unique}", "team")
    add_alert(client, f"s-{unique}", {"alert_type": "current_usage_amount", "code": "spend",
                                      "thresholds": [{"code": "200_dollars", "value": 20000}]})

    send_batch(ingest, users(f"s-{unique}", str(MTU_METRIC["code"]), range(27_000), "u"))
    settle(client, f"c-{unique}", f"s-{unique}", 27_000)

    (fired,) = hooks.wait_for_type("alert.triggered", 1)
    time.sleep(1.5)
    assert len(hooks.payloads("alert.triggered")) == 1
    alert = fired["triggered_alert"]
    assert alert["crossed_thresholds"] == [{"code": "200_dollars", "value": "20000.0", "recurring": False}]
    assert alert["previous_value"] < 20000 <= alert["current_value"] <= 20200  # 15,000 × 1.2¢ + 2,000 × 1.1¢
    usage = client.get(f"/customers/c-{unique}/current_usage", params={"external_subscription_id": f"s-{unique}"})
    assert usage.json()["customer_usage"]["amount_cents"] == 20200


def triggered_rows(services: Services, subscription_id: str) -> list[tuple[Decimal, Decimal]]:
    with psycopg.connect(services.database_url) as conn:
        return conn.execute(
            "SELECT t.previous_value, t.current_value FROM triggered_alerts t JOIN subscriptions s "
            "ON s.id = t.subscription_id WHERE s.external_id = %s ORDER BY t.triggered_at", (subscription_id,),
        ).fetchall()


@pytest.fixture
def restore_stack() -> Iterator[None]:
    yield
    meterline("up")


def killed_and_started_again(worker: str) -> None:
    """The alerts worker, or every aggregator (with two, either may own the partition), killed with -9, then
    started again by `meterline up`."""
    if worker == "aggregator":
        stop_aggregators(signal.SIGKILL)
        assert started_every_aggregator(meterline("up").stdout)
        return
    victim = pid_of(worker)
    assert victim is not None
    os.kill(victim, signal.SIGKILL)
    wait_gone(victim)
    assert f"started {worker}" in meterline("up").stdout


@pytest.mark.parametrize("worker", ["aggregator", "alerts"])
def test_a_worker_killed_around_a_crossing_fires_each_threshold_exactly_once(
        client: httpx.Client, ingest: httpx.Client, receiver: tuple[Receiver, str], unique: str,
        services: Services, restore_stack: None, worker: str) -> None:
    """The aggregator publishes what a batch touched before committing it, the alerts worker evaluates it and
    commits after firing: either one killed with -9 around a crossing leaves each threshold fired once."""
    hooks, _ = receiver
    on_free_plan(client, unique)
    add_alert(client, f"s-{unique}", {"alert_type": "billable_metric_current_usage_units", "code": "cap",
                                      "billable_metric_code": "mtu",
                                      "thresholds": [{"value": 500}, {"value": 1000}]})
    send_batch(ingest, users(f"s-{unique}", "mtu", range(400), "u"))
    settle(client, f"c-{unique}", f"s-{unique}", 400)

    # killed the moment the crossing is committed: the batch (aggregator) or the touched pairs (alerts worker)
    # may or may not be acknowledged by then (if not, they come again to the next worker); either way the
    # threshold stays fired once
    send_batch(ingest, users(f"s-{unique}", "mtu", range(400, 500), "u"))  # one request: one batch
    deadline = time.monotonic() + 30
    while not triggered_rows(services, f"s-{unique}"):
        assert time.monotonic() < deadline
        time.sleep(0.002)
    killed_and_started_again(worker)
    settle(client, f"c-{unique}", f"s-{unique}", 500)

    # killed right after the ingest accepted the crossing batch: most likely before the worker took it (or its
    # touched pairs), so the next worker does; if it was evaluated already, the record keeps it from firing again
    send_batch(ingest, users(f"s-{unique}", "mtu", range(500, 1000), "u"))
    killed_and_started_again(worker)
    settle(client, f"c-{unique}", f"s-{unique}", 1000)

    hooks.wait_for_type("alert.triggered", 2)
    time.sleep(1.5)
    rows = triggered_rows(services, f"s-{unique}")
    assert [current for _, current in rows] == [500, 1000]
    assert sorted(t["value"] for p in hooks.payloads("alert.triggered")
                  for t in p["triggered_alert"]["crossed_thresholds"]) == ["1000.0", "500.0"]


def test_late_events_pushing_last_months_open_period_across_a_threshold_fire_for_that_period(
        client: httpx.Client, ingest: httpx.Client, receiver: tuple[Receiver, str], unique: str,
        services: Services) -> None:
    hooks, _ = receiver
    this_month = datetime.now(UTC).date().replace(day=1)
    last_month = (this_month - timedelta(days=1)).replace(day=1)
    mtu_metric(client)
    plan(client, "free", amount=0, advance=False, charges=[per_unit("mtu", "0")])
    customer(client, f"c-{unique}")
    create(client, "/subscriptions", "subscription", {
        "external_customer_id": f"c-{unique}", "plan_code": "free", "external_id": f"s-{unique}",
        "subscription_at": f"{last_month.isoformat()}T00:00:00Z"})
    add_alert(client, f"s-{unique}", {"alert_type": "billable_metric_current_usage_units", "code": "cap",
                                      "billable_metric_code": "mtu", "thresholds": [{"value": 150}]})
    late = epoch(f"{last_month.replace(day=20).isoformat()}T08:00:00Z")
    send_batch(ingest, [{**event, "timestamp": late} for event in users(f"s-{unique}", "mtu", range(200), "late")])

    (fired,) = hooks.wait_for_type("alert.triggered", 1)
    assert fired["triggered_alert"]["crossed_thresholds"] == [{"code": None, "value": "150.0", "recurring": False}]
    with psycopg.connect(services.database_url) as conn:
        (period_key,) = conn.execute("SELECT period_key FROM triggered_alerts WHERE alert_id = %s",
                                     (fired["triggered_alert"]["lago_alert_id"],)).fetchone() or ("",)
    assert period_key == last_month.strftime("%Y%m%dT000000Z")  # last month's period, not this one's
    assert units_now(client, f"c-{unique}", f"s-{unique}") == 0  # this month has no usage


def test_a_lifetime_alert_adds_the_invoiced_periods_and_counts_a_drafted_one_once(
        client: httpx.Client, ingest: httpx.Client, receiver: tuple[Receiver, str], unique: str) -> None:
    hooks, _ = receiver
    this_month = datetime.now(UTC).date().replace(day=1)
    last_month = (this_month - timedelta(days=1)).replace(day=1)
    mtu_metric(client)
    plan(client, "usage", amount=0, advance=False, charges=[per_unit("mtu", "0.50")])  # 50 cents a user
    customer(client, f"c-{unique}", grace=36500)  # last month's invoice stays a draft
    create(client, "/subscriptions", "subscription", {
        "external_customer_id": f"c-{unique}", "plan_code": "usage", "external_id": f"s-{unique}",
        "subscription_at": f"{last_month.isoformat()}T00:00:00Z"})
    add_alert(client, f"s-{unique}", {"alert_type": "lifetime_usage_amount", "code": "lifetime",
                                      "thresholds": [{"code": "ten_dollars", "value": 1000}]})
    last = epoch(f"{last_month.replace(day=15).isoformat()}T08:00:00Z")
    send_batch(ingest, [{**e, "timestamp": last} for e in users(f"s-{unique}", "mtu", range(10), "last")])
    wait_archived(client, ["last-9"])
    bill(f"{this_month.isoformat()}T00:00:00Z", unique)  # a draft of 10 × 50 = 500
    (draft,) = invoices_of(client, f"c-{unique}")
    assert (draft["status"], draft["fees_amount_cents"]) == ("draft", 500)

    # a late event for last month: its usage (550) is in Redis and on the draft (500): counted once, 550 < 1,000
    send_batch(ingest, [{**e, "timestamp": last} for e in users(f"s-{unique}", "mtu", range(10, 11), "last")])
    wait_archived(client, ["last-10"])
    send_batch(ingest, users(f"s-{unique}", "mtu", range(100, 109), "now"))  # this month: 450 + 500 invoiced
    settle(client, f"c-{unique}", f"s-{unique}", 9)
    time.sleep(1.5)
    assert hooks.payloads("alert.triggered") == []
    send_batch(ingest, users(f"s-{unique}", "mtu", range(109, 110), "now"))  # 500 + 500 invoiced: 1,000
    (fired,) = hooks.wait_for_type("alert.triggered", 1)
    assert (fired["triggered_alert"]["previous_value"], fired["triggered_alert"]["current_value"]) == (950, 1000)
