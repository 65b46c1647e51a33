"""Current usage latency for a subscription with 1,000,000 MTUs (100,000 with --quick).

1. Through the API: an MTU metric (unique_count_agg), the Segment Team price, a customer and a
   subscription starting now.
2. The usage state is written straight into Redis with the aggregator's own key layout
   (core.usage_state.keys.unique_key for the current period): SADD of 1,000,000 distinct user ids, what the
   aggregator's Lua script leaves after as many distinct users (the pipeline's speed is measured by
   the aggregator and end-to-end benchmarks, not here).
3. 2,000 sequential GET /customers/{id}/current_usage over one keep-alive connection (after 100
   warm-up requests), each timed on the client: `usage_query_p99_ms` and `usage_query_p50_ms`.
   Every answer is checked to price the 1,000,000 MTUs (Segment Team: 1,000,500 cents).
The Redis key, the subscription and its customer are deleted at the end.
4. The same on a Redis Cluster (`cluster_usage_query_p99_ms`, `_p50_ms`): the local one
   (`METERLINE_LOCAL_REDIS=cluster`'s, started when not running), read by a second API process of the stack
   on CLUSTER_API_PORT; when the stack itself runs on a cluster, the figures above are the cluster's.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import httpx
import redis

from core.clients import sync_redis
from core.domain.periods import BillingCycle
from core.usage_state.keys import unique_key
from meterline.bench.bench_aggregator import cluster_url
from meterline.bench.run import BenchContext, forget_subscriptions, ok, percentile
from meterline.example import MTU_METRIC, team_plan

ORDER = 50
CHUNK = 10_000
CLUSTER_API_PORT = 3010  # the second API, on the Redis Cluster (when the stack's Redis is a single one)




def _fill(redis: redis.Redis | redis.RedisCluster, key: str, members: int) -> None:
    for start in range(0, members, CHUNK):
        redis.sadd(key, *(f"user_{n}" for n in range(start, min(start + CHUNK, members))))


def run(ctx: BenchContext) -> dict[str, float]:
    figures = measure(ctx, ctx.api_url, ctx.settings.redis_url)
    cluster = cluster_url(ctx.settings)
    if cluster == ctx.settings.redis_url:  # the stack runs on the cluster: the figures above are the cluster's
        return {**figures, **{f"cluster_{name}": value for name, value in figures.items()}}
    with api_on(ctx, cluster) as url:
        figures.update({f"cluster_{name}": value for name, value in measure(ctx, url, cluster).items()})
    return figures


@contextmanager
def api_on(ctx: BenchContext, redis_url: str) -> Iterator[str]:
    """A second API process of the stack (its PostgreSQL and Kafka) on `redis_url`, on CLUSTER_API_PORT."""
    settings = ctx.settings
    env = {**os.environ, "METERLINE_HOME": str(settings.home), "METERLINE_REDIS_URL": redis_url,
           "METERLINE_KAFKA_BOOTSTRAP": settings.kafka_bootstrap, "METERLINE_DATABASE_URL": settings.database_url,
           "METERLINE_API_HOST": "127.0.0.1", "METERLINE_API_PORT": str(CLUSTER_API_PORT), "PYTHONUNBUFFERED": "1"}
    url = f"http://127.0.0.1:{CLUSTER_API_PORT}"
    with open(settings.home / "log" / "bench-api.log", "ab") as log:
        api = subprocess.Popen([sys.executable, "-m", "meterline.cli", "api"], env=env, stdout=log,
                               stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while not _healthy(f"{url}/health"):
            if api.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the bench API on the cluster did not start; see bench-api.log")
            time.sleep(0.2)
        yield url
    finally:
        os.killpg(api.pid, signal.SIGTERM)
        try:
            api.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(api.pid, signal.SIGKILL)
            api.wait()


def _healthy(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def measure(ctx: BenchContext, api_url: str, redis_url: str) -> dict[str, float]:
    """The usage query figures through the API at `api_url`, whose Redis is `redis_url`."""
    members = 100_000 if ctx.quick else 1_000_000
    requests = 300 if ctx.quick else 2_000
    run_id = uuid.uuid4().hex[:8]
    http = ctx.client(f"{api_url}/api/v1")
    metric = ok(http.post("/billable_metrics", json={"billable_metric": {
        **MTU_METRIC, "code": f"bench_mtu_{run_id}"}}))["billable_metric"]
    plan = team_plan(f"bench_usage_{run_id}")
    plan["charges"][0]["billable_metric_code"] = metric["code"]
    ok(http.post("/plans", json={"plan": plan}))
    customer_id, subscription_id = f"bench_usage_{run_id}", f"bench_usage_sub_{run_id}"
    ok(http.post("/customers", json={"customer": {"external_id": customer_id, "currency": "USD",
                                                   "timezone": "UTC"}}))
    ok(http.post("/subscriptions", json={"subscription": {
        "external_customer_id": customer_id, "plan_code": plan["code"], "external_id": subscription_id}}))
    organization_id = ctx.organization_id()
    now = datetime.now(UTC)
    period = BillingCycle("monthly", "calendar", now.date(), "UTC").period_at(now)
    assert period is not None
    key = unique_key(f"{organization_id}:{subscription_id}", metric["lago_id"], period.key)
    client = sync_redis(redis_url, timeout_s=30)
    try:
        _fill(client, key, members)
        expected = 100_500 + max(members - 100_000, 0)  # Segment Team: 1 cent per MTU past 100,000
        params = {"external_subscription_id": subscription_id}
        path = f"/customers/{customer_id}/current_usage"
        latencies = []
        for index in range(100 + requests):
            began = time.perf_counter()
            response = http.get(path, params=params)
            elapsed = time.perf_counter() - began
            body = ok(response)["customer_usage"]
            if body["charges_usage"][0]["units"] != f"{members}.0" or body["amount_cents"] != expected:
                raise RuntimeError(f"unexpected usage for {members} MTUs: {body['charges_usage'][0]}")
            if index >= 100:
                latencies.append(elapsed * 1000)
    finally:
        client.delete(key)
        client.close()
        http.close()
        forget_subscriptions(ctx.settings, organization_id, subscription_id)
    return {"usage_query_p99_ms": round(percentile(latencies, 0.99), 2),
            "usage_query_p50_ms": round(percentile(latencies, 0.50), 2), "usage_query_mtus": float(members)}
