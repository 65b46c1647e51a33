"""End to end at 10,000 events/s offered: from the ingest's 200 to the event visible in current usage.

1. Through the API: a count metric, a plan charging it, a customer and SUBSCRIPTIONS subscriptions.
2. One sender thread per subscription posts /events/batch requests of 100 events to the running
   ingest on a fixed schedule, together RATE events/s for DURATION_S seconds (2 s with --quick),
   and notes when each request was accepted and how many events its subscription then had.
3. Meanwhile POLLERS threads read GET /customers/{id}/current_usage of every subscription in turn
   (as a dashboard would), noting when each answer arrived and its `events_count`.
4. An accepted request's latency: from its 200 to the first answer showing its subscription's count
   at or past its own (0 when the count was visible before the 200 arrived). The resolution is one
   polling round (a few tens of milliseconds), an upper bound on the true latency.
   `e2e_visible_p99_ms` / `e2e_visible_p50_ms` over every request; `e2e_offered_events_per_s`, the
   rate the ingest accepted. The stack's own processes do the work: ingest, Faust worker, API.
The bench's events are removed from the archive and Redis at the end.
"""

from __future__ import annotations

import bisect
import threading
import time
import uuid

from meterline.bench.run import BenchContext, forget_subscriptions, ok, paced_batches, percentile

ORDER = 40
SUBSCRIPTIONS = 10
RATE = 10_000
DURATION_S = 20.0
POLLERS = 2
BATCH = 100




def _setup(ctx: BenchContext, run: str) -> tuple[str, list[str], str]:
    """(customer id, subscription ids, organization id)"""
    with ctx.client(f"{ctx.api_url}/api/v1") as http:
        ok(http.post("/billable_metrics", json={"billable_metric": {
            "name": "Calls", "code": f"e2e_{run}", "aggregation_type": "count_agg"}}))
        ok(http.post("/plans", json={"plan": {
            "name": "e2e", "code": f"e2e_{run}", "interval": "monthly", "amount_cents": 0, "amount_currency": "USD",
            "charges": [{"billable_metric_code": f"e2e_{run}", "charge_model": "standard",
                         "properties": {"amount": "0.001"}}]}}))
        customer_id = f"bench-e2e-{run}"
        ok(http.post("/customers", json={"customer": {
            "external_id": customer_id, "currency": "USD", "timezone": "UTC"}}))
        subscriptions = []
        for n in range(SUBSCRIPTIONS):
            subscription_id = f"bench-e2e-{run}-s{n}"
            ok(http.post("/subscriptions", json={"subscription": {
                "external_customer_id": customer_id, "plan_code": f"e2e_{run}", "external_id": subscription_id}}))
            subscriptions.append(subscription_id)
    return customer_id, subscriptions, ctx.organization_id()


def _send(ctx: BenchContext, run: str, subscription_id: str, requests: int, began: float,
          accepted: list[tuple[float, int]], failures: list[str]) -> None:
    for n, at in enumerate(paced_batches(ctx, subscription_id, f"e2e_{run}", requests, began,
                                         BATCH * SUBSCRIPTIONS / RATE, failures, BATCH), 1):
        accepted.append((at, n * BATCH))


def _poll(ctx: BenchContext, customer_id: str, subscription_ids: list[str], expected: int, deadline: float,
          seen: dict[str, list[tuple[float, int]]]) -> None:
    path = f"/api/v1/customers/{customer_id}/current_usage"
    done: set[str] = set()
    with ctx.client(ctx.api_url) as http:
        while len(done) < len(subscription_ids) and time.monotonic() < deadline:
            for subscription_id in subscription_ids:
                usage = ok(http.get(path, params={"external_subscription_id": subscription_id}))["customer_usage"]
                count = int(usage["charges_usage"][0]["events_count"])
                seen[subscription_id].append((time.monotonic(), count))
                if count >= expected:
                    done.add(subscription_id)


def latencies(accepted: list[tuple[float, int]], seen: list[tuple[float, int]]) -> list[float]:
    """Milliseconds from each acceptance to the first answer showing its count (pure)."""
    counts = [count for _, count in seen]  # never decreasing: a count only grows
    result = []
    for accepted_at, target in accepted:
        first = bisect.bisect_left(counts, target)
        if first == len(counts):
            raise RuntimeError(f"{target} events never became visible")
        result.append(max(seen[first][0] - accepted_at, 0.0) * 1000)
    return result


def run(ctx: BenchContext) -> dict[str, float]:
    run_id = uuid.uuid4().hex[:8]
    duration = 2.0 if ctx.quick else DURATION_S
    requests = int(duration * RATE / BATCH / SUBSCRIPTIONS)
    customer_id, subscription_ids, organization_id = _setup(ctx, run_id)
    accepted: dict[str, list[tuple[float, int]]] = {s: [] for s in subscription_ids}
    seen: dict[str, list[tuple[float, int]]] = {s: [] for s in subscription_ids}
    failures: list[str] = []
    began = time.monotonic() + 0.5
    deadline = began + duration + 60
    threads = [threading.Thread(target=_send, args=(ctx, run_id, s, requests, began, accepted[s], failures))
               for s in subscription_ids]
    threads += [threading.Thread(target=_poll, args=(ctx, customer_id, subscription_ids[n::POLLERS],
                                                     requests * BATCH, deadline, seen))
                for n in range(POLLERS)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if failures:
            raise RuntimeError(f"the ingest refused events: {failures[:3]}")
        all_latencies = [value for s in subscription_ids for value in latencies(accepted[s], seen[s])]
        last = max(at for s in subscription_ids for at, _ in accepted[s])
    finally:
        forget_subscriptions(ctx.settings, organization_id, f"bench-e2e-{run_id}-")
    return {"e2e_visible_p99_ms": round(percentile(all_latencies, 0.99), 1),
            "e2e_visible_p50_ms": round(percentile(all_latencies, 0.50), 1),
            "e2e_offered_events_per_s": round(requests * BATCH * SUBSCRIPTIONS / (last - began), 1)}
