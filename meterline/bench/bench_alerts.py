"""Alert latency under load: from the ingest's 200 for the event crossing a threshold to its
`alert.triggered` webhook arriving, with 10,000 events/s of other traffic going through the pipeline.

1. A fresh organization of its own (its own API key: the stack's organization may hold webhook
   endpoints left by tests, each a dead URL every webhook would also be tried at). Through the API:
   a count metric, a plan charging it, a customer, ALERTED subscriptions (50 with --quick) and
   BACKGROUND others. Each alerted subscription gets a `billable_metric_current_usage_units` alert at
   1 unit, written straight into `alerts` (setting up is not what is measured); then a webhook
   endpoint pointing at a receiver this process serves on 127.0.0.1, which notes when each
   `alert.triggered` arrives and for which subscription.
2. Background: one sender thread per background subscription posts /events/batch requests of 100
   events on a fixed schedule, together RATE events/s for the whole run, as the end-to-end benchmark
   does. Its events cross nothing: the background subscriptions have no alerts.
3. After WARM_UP_S of background, one thread sends each alerted subscription ONE event (POST
   /events), one every SPACING_S (so they land in different batches), noting when its 200 arrived.
4. A crossing's latency: from that 200 to its webhook's arrival, on this process's monotonic clock.
   `alert_latency_p50_ms` / `alert_latency_p99_ms` / `alert_latency_max_ms` over every crossing,
   `alert_webhooks_received` (crossings answered by exactly one webhook) and
   `alert_background_events_per_s` (the rate the ingest accepted meanwhile). A crossing without its
   webhook (after TIMEOUT_S), or one answered twice, fails the benchmark. The share of the stream:
   `alert_fired_p50_ms` / `alert_fired_p99_ms`, from the 200 to the firing transaction's start
   (`triggered_alerts.triggered_at`, PostgreSQL's clock: the same machine's); the rest is delivery.
The path measured: ingest → Kafka → the stack's aggregator (batch applied to Redis, the pairs it touched
published to `usage.touched` beside the archive step) → the stack's alerts worker (evaluates them; the
triggered alert and its outbox row committed, NOTIFY) → the stack's biller (woken by the NOTIFY,
delivers) → the receiver.
5. The organization and everything in it is deleted at the end, its webhook endpoint first (later
   runs and tests would otherwise have every webhook of this organization tried at a dead URL).
"""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import queue
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import psycopg

from meterline.bench.run import BenchContext, add_alerts, forget_organization, ok, paced_batches, percentile
from meterline.orgs import ensure_organization

ORDER = 45
ALERTED = 200
BACKGROUND = 10
RATE = 10_000  # background events per second
BATCH = 100
WARM_UP_S = 2.0
SPACING_S = 0.04  # between two crossing events
TIMEOUT_S = 30.0  # for the last webhook, after the last crossing
SETTLE_S = 2.0  # waited past the last webhook, for a duplicate to show up


def _serve(ports: Any, arrivals: Any) -> None:
    """The receiver's process: an HTTP server on 127.0.0.1 putting (subscription id, arrival) of each
    `alert.triggered` webhook on `arrivals`, its port first on `ports`."""
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            body = self.rfile.read(int(self.headers["Content-Length"]))
            arrived = time.monotonic()
            self.send_response(200)
            self.end_headers()
            payload = json.loads(body)
            if payload.get("webhook_type") == "alert.triggered":
                arrivals.put((payload["triggered_alert"]["external_subscription_id"], arrived))

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    ports.put(server.server_address[1])
    server.serve_forever()


class Receiver:
    """Notes when each `alert.triggered` webhook arrived, by subscription. It serves from a process of
    its own, as a customer's server would: among this process's sender threads (one interpreter lock)
    it answered some webhooks hundreds of ms late, and the deliveries queued behind them waited too.
    Arrivals are on CLOCK_MONOTONIC, the same clock in every process of the machine."""

    def __init__(self) -> None:
        context = multiprocessing.get_context("spawn")
        self.queue: Any = context.Queue()
        ports: Any = context.Queue()
        self.process = context.Process(target=_serve, args=(ports, self.queue), daemon=True)
        self.process.start()
        self.url = f"http://127.0.0.1:{ports.get(timeout=30)}/alerts"
        self.arrivals: dict[str, list[float]] = {}

    def _collect(self) -> None:
        while True:
            try:
                subscription_id, arrived = self.queue.get_nowait()
            except queue.Empty:
                return
            self.arrivals.setdefault(subscription_id, []).append(arrived)

    def received(self, subscription_ids: list[str]) -> int:
        self._collect()
        return sum(1 for s in subscription_ids if s in self.arrivals)

    def close(self) -> None:
        self._collect()
        self.process.terminate()
        self.process.join(10)


@contextmanager
def own_organization(ctx: BenchContext, run: str) -> Iterator[BenchContext]:
    """A context for a fresh organization (its API key), deleted with everything in it on leaving."""
    organization_id, key = ensure_organization(ctx.settings.sqlalchemy_url, f"bench-alerts-{run}")
    assert key is not None
    try:
        yield dataclasses.replace(ctx, api_key=key)
    finally:
        forget_organization(ctx.settings, organization_id)


def _setup(ctx: BenchContext, run: str, alerted: int) -> tuple[list[str], list[str], str]:
    """(alerted subscription ids, background subscription ids, the metric's id), through the API."""
    with ctx.client(f"{ctx.api_url}/api/v1") as http:
        metric = ok(http.post("/billable_metrics", json={"billable_metric": {
            "name": "Calls", "code": "calls", "aggregation_type": "count_agg"}}))["billable_metric"]
        ok(http.post("/plans", json={"plan": {
            "name": "alerts", "code": "alerts", "interval": "monthly", "amount_cents": 0, "amount_currency": "USD",
            "charges": [{"billable_metric_code": "calls", "charge_model": "standard",
                         "properties": {"amount": "0.001"}}]}}))
        ok(http.post("/customers", json={"customer": {"external_id": "c", "currency": "USD", "timezone": "UTC"}}))
        alerted_ids = [f"bench-alerts-{run}-a{n}" for n in range(alerted)]
        background_ids = [f"bench-alerts-{run}-b{n}" for n in range(BACKGROUND)]
        for subscription_id in alerted_ids + background_ids:
            ok(http.post("/subscriptions", json={"subscription": {
                "external_customer_id": "c", "plan_code": "alerts", "external_id": subscription_id}}))
    return alerted_ids, background_ids, metric["lago_id"]


def _background(ctx: BenchContext, subscription_id: str, requests: int, began: float,
                accepted: list[float], failures: list[str]) -> None:
    accepted.extend(paced_batches(ctx, subscription_id, "calls", requests, began, BATCH * BACKGROUND / RATE,
                                  failures, BATCH))


def _cross(ctx: BenchContext, subscription_ids: list[str], began: float, sent: dict[str, float],
           sent_at: dict[str, float], failures: list[str]) -> None:
    with ctx.client(ctx.ingest_url) as http:
        for n, subscription_id in enumerate(subscription_ids):
            delay = began + n * SPACING_S - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            response = http.post("/api/v1/events", json={"event": {
                "transaction_id": f"{subscription_id}-crossing", "code": "calls",
                "external_subscription_id": subscription_id}})
            if response.status_code != 200:
                failures.append(f"{response.status_code}: {response.text[:200]}")
                return
            sent[subscription_id] = time.monotonic()
            sent_at[subscription_id] = time.time()


def _triggered_at(ctx: BenchContext) -> dict[str, float]:
    """When each subscription's alert fired (Unix time): its `triggered_alerts.triggered_at`, the start of
    the alerts worker's firing transaction."""
    with psycopg.connect(ctx.settings.database_url) as conn:
        rows = conn.execute("SELECT s.external_id, min(t.triggered_at) FROM triggered_alerts t"
                            " JOIN subscriptions s ON s.id = t.subscription_id WHERE t.organization_id = %s"
                            " GROUP BY s.external_id", (ctx.organization_id(),)).fetchall()
    return {external_id: at.timestamp() for external_id, at in rows}


def _measure(ctx: BenchContext, run: str, alerted: int) -> dict[str, float]:
    alerted_ids, background_ids, metric_id = _setup(ctx, run, alerted)
    add_alerts(ctx.settings, ctx.organization_id(), alerted_ids, "billable_metric_current_usage_units", "1",
               metric_id)
    receiver = Receiver()
    try:
        with ctx.client(f"{ctx.api_url}/api/v1") as http:
            ok(http.post("/webhook_endpoints", json={"webhook_endpoint": {"webhook_url": receiver.url}}))
        sent: dict[str, float] = {}  # when each crossing's 200 arrived: monotonic, and Unix time
        sent_at: dict[str, float] = {}
        failures: list[str] = []
        background: dict[str, list[float]] = {s: [] for s in background_ids}
        began = time.monotonic() + 0.5
        crossing_from = began + WARM_UP_S  # the catalogs have seen the alerts by then (announced at once)
        duration = WARM_UP_S + alerted * SPACING_S + 1.0
        requests = int(duration * RATE / BATCH / BACKGROUND)
        threads = [threading.Thread(target=_background, args=(ctx, s, requests, began, background[s], failures))
                   for s in background_ids]
        threads.append(threading.Thread(target=_cross,
                                       args=(ctx, alerted_ids, crossing_from, sent, sent_at, failures)))
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if failures:
            raise RuntimeError(f"the ingest refused events: {failures[:3]}")
        deadline = time.monotonic() + TIMEOUT_S
        while receiver.received(alerted_ids) < len(alerted_ids) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(SETTLE_S)
        triggered = _triggered_at(ctx)
    finally:
        receiver.close()
    arrivals = receiver.arrivals
    missing = [s for s in alerted_ids if s not in arrivals]
    duplicated = [s for s in alerted_ids if len(arrivals.get(s, ())) > 1]
    if missing or duplicated:
        raise RuntimeError(f"{len(missing)} crossing(s) without their alert.triggered webhook (e.g. {missing[:3]}), "
                           f"{len(duplicated)} answered more than once (e.g. {duplicated[:3]})")
    latencies = [(arrivals[s][0] - sent[s]) * 1000 for s in alerted_ids]
    fired = [(triggered[s] - sent_at[s]) * 1000 for s in alerted_ids]
    accepted = [at for s in background_ids for at in background[s]]
    return {"alert_latency_p50_ms": round(percentile(latencies, 0.50), 1),
            "alert_latency_p99_ms": round(percentile(latencies, 0.99), 1),
            "alert_latency_max_ms": round(max(latencies), 1),
            "alert_fired_p50_ms": round(percentile(fired, 0.50), 1),
            "alert_fired_p99_ms": round(percentile(fired, 0.99), 1),
            "alert_webhooks_received": float(len(latencies)),
            "alert_background_events_per_s": round(len(accepted) * BATCH / (max(accepted) - began), 1)}


def run(ctx: BenchContext) -> dict[str, float]:
    run_id = uuid.uuid4().hex[:8]
    with own_organization(ctx, run_id) as own:
        return _measure(own, run_id, 50 if ctx.quick else ALERTED)
