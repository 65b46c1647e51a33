"""Prometheus metrics, readiness and consumer lag against the running stack."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time

import httpx
import redis
from prometheus_client.parser import text_string_to_metric_families

from core.clients import sync_redis
from tests.builders import customer_body, metric_body, mtu_event, plan_body, subscription_body, wait_for
from tests.conftest import HOME, ROOT, STACK_PROCESSES, Services, Stack
from tests.e2e.ingest_support import ServerProcess, private_server
from tests.e2e.test_aggregator_faults import aggregators_paused


def scrape(url: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    response = httpx.get(f"{url}/metrics", timeout=5)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    series: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            series.setdefault(sample.name, []).append((sample.labels, sample.value))
    return series


def total_lag(stack: Stack) -> float:
    """The aggregators' lag on the events."""
    return sum(value for labels, value in scrape(stack.api_url).get("meterline_consumer_lag", [])
               if labels["group"] == "meterline-aggregator")


def test_ready_reports_every_service_on_both_http_processes(stack: Stack) -> None:
    for url in (stack.api_url, stack.ingest_url):
        response = httpx.get(f"{url}/ready", timeout=10)
        assert response.status_code == 200, response.text
        assert response.json() == {"status": "ready",
                                   "checks": {"kafka": "ok", "redis": "ok", "postgres": "ok"}}


def test_readiness_probes_reuse_their_redis_connection(stack: Stack, services: Services) -> None:
    def probe_every_process(times: int) -> None:
        for _ in range(times):
            for url in (stack.api_url, stack.ingest_url):
                assert httpx.get(f"{url}/ready", timeout=10).status_code == 200

    with sync_redis(services.redis_url) as client:
        # until every ingest worker has made its client: a round that opens no connection (the kernel may
        # hand most new connections to one worker, so one round may miss the other)
        for _ in range(10):
            before = connections_received(client)  # opened ever, closed or not
            probe_every_process(20)
            if connections_received(client) == before:
                break
        probe_every_process(40)
        assert connections_received(client) == before


def connections_received(client: redis.Redis | redis.RedisCluster) -> int:
    """Connections Redis accepted ever: on a cluster, every node's."""
    if isinstance(client, redis.RedisCluster):
        stats = client.info("stats", target_nodes=redis.RedisCluster.ALL_NODES)
        return sum(int(node["total_connections_received"]) for node in stats.values())
    return int(client.info("stats")["total_connections_received"])


def test_api_metrics_carry_pipeline_wide_series(stack: Stack) -> None:
    series = scrape(stack.api_url)
    lag: dict[tuple[str, str], set[str]] = {}
    for labels, _ in series["meterline_consumer_lag"]:
        lag.setdefault((labels["group"], labels["topic"]), set()).add(labels["partition"])
    # the aggregators' on the events, the alerts workers' on the pairs the batches touched
    assert lag == {("meterline-aggregator", "events"): {"0", "1", "2", "3"},
                   ("meterline-alerts", "usage.touched"): {"0", "1", "2", "3"}}
    assert "meterline_pipeline_events_accepted_total" in series
    outcomes = {labels["outcome"] for labels, _ in series["meterline_pipeline_events_total"]}
    assert {"applied", "deduplicated"} <= outcomes


def test_consumer_lag_counts_events_while_the_aggregators_are_paused(
        stack: Stack, client: httpx.Client, ingest: httpx.Client, unique: str) -> None:
    client.post("/billable_metrics", json=metric_body()).raise_for_status()
    client.post("/plans", json=plan_body()).raise_for_status()
    client.post("/customers", json=customer_body(f"lag-{unique}")).raise_for_status()
    client.post("/subscriptions", json=subscription_body(f"lag-{unique}", f"sub-lag-{unique}")).raise_for_status()
    wait_for(lambda: total_lag(stack) == 0, 30, "the aggregator to drain the topic")
    events = [mtu_event(f"sub-lag-{unique}", f"tx-{n}", f"user-{n}") for n in range(300)]

    with aggregators_paused():
        # A paused worker commits nothing, so the lag only moves with what we send. The metric is a
        # sample at most 2 s old: take as baseline a value that stays put across two refreshes
        # (a batch a worker had in flight when it was paused is part of it).
        readings = [total_lag(stack)]
        while len(readings) < 2 or readings[-1] != readings[-2]:
            assert len(readings) < 10, f"the lag of the paused workers does not settle: {readings}"
            time.sleep(2.5)
            readings.append(total_lag(stack))
        baseline = readings[-1]
        for start in range(0, 300, 100):
            ingest.post("/events/batch", json={"events": events[start:start + 100]}).raise_for_status()
        wait_for(lambda: total_lag(stack) == baseline + 300, 20, "the lag to grow by the 300 events sent")

    wait_for(lambda: total_lag(stack) == 0, 60, "the lag to return to 0 after resuming")


def test_lag_command_prints_a_table_with_a_total(stack: Stack) -> None:
    result = subprocess.run([sys.executable, "-m", "meterline.cli", "lag"], cwd=ROOT, capture_output=True,
                            text=True, timeout=60, env={**os.environ, "METERLINE_HOME": str(HOME)})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert any("partition" in line and "committed" in line and "lag" in line for line in lines)
    assert any(line.strip().strip("│").strip().startswith("total") for line in lines)


def without_redis(command: str) -> contextlib.AbstractContextManager[ServerProcess]:
    """A second `meterline <command>` sharing the stack but pointed at a Redis that does not exist."""
    return private_server(command, METERLINE_REDIS_URL="redis://127.0.0.1:1/0", METERLINE_INGEST_WORKERS="1")


def test_ready_answers_503_naming_the_unreachable_service(stack: Stack) -> None:
    """A second ingest pointed at a Redis that does not exist: alive (/health) but not ready (/ready)."""
    with without_redis("ingest") as server:
        response = httpx.get(f"{server.url}/ready", timeout=10)
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "not_ready"
    assert body["checks"]["kafka"] == "ok" and body["checks"]["postgres"] == "ok"
    assert body["checks"]["redis"].startswith("unreachable: ConnectionError")


def test_each_process_counts_its_own_work(stack: Stack, client: httpx.Client, unique: str) -> None:
    """The API (which serves events too) counts requests and events; the aggregator its batches and
    the event-to-visible latency of every applied event, on its own /metrics port."""
    def counter(url: str, name: str, **labels: str) -> float:
        return sum(v for got, v in scrape(url).get(name, []) if all(got.get(k) == w for k, w in labels.items()))

    client.post("/billable_metrics", json=metric_body()).raise_for_status()
    client.post("/plans", json=plan_body()).raise_for_status()
    client.post("/customers", json=customer_body(f"m-{unique}")).raise_for_status()
    client.post("/subscriptions", json=subscription_body(f"m-{unique}", f"sub-m-{unique}")).raise_for_status()
    # every aggregator's /metrics (`make test-cluster` runs two; either may own the subscription's partition)
    aggregator_urls = [f"http://127.0.0.1:{dict(process.env).get('METERLINE_AGGREGATOR_METRICS_PORT', '9464')}"
                       for process in STACK_PROCESSES if process.command == "aggregator"]

    def visible() -> float:
        return sum(counter(url, "meterline_event_to_visible_seconds_count") for url in aggregator_urls)

    requests_before = counter(stack.api_url, "meterline_ingest_requests_total", endpoint="batch", status="200")
    invalid_before = counter(stack.api_url, "meterline_ingest_requests_total", endpoint="batch", status="422")
    accepted_before = counter(stack.api_url, "meterline_ingest_events_accepted_total")
    visible_before = visible()

    events = [mtu_event(f"sub-m-{unique}", f"tx-{n}", f"user-{n}") for n in range(25)]
    client.post("/events/batch", json={"events": events}).raise_for_status()
    assert client.post("/events/batch", json={"events": []}).status_code == 422

    assert counter(stack.api_url, "meterline_ingest_requests_total", endpoint="batch", status="200") \
        == requests_before + 1
    assert counter(stack.api_url, "meterline_ingest_requests_total", endpoint="batch", status="422") \
        == invalid_before + 1
    assert counter(stack.api_url, "meterline_ingest_events_accepted_total") == accepted_before + 25
    wait_for(lambda: visible() >= visible_before + 25, 30, "the aggregator to apply the 25 events")


def test_current_usage_answers_503_when_redis_is_unreachable(stack: Stack, client: httpx.Client,
                                                             unique: str) -> None:
    """A second API on the same database but a Redis that does not exist: a clear 503, not a 500."""
    client.post("/billable_metrics", json=metric_body()).raise_for_status()
    client.post("/plans", json=plan_body()).raise_for_status()
    client.post("/customers", json=customer_body(f"r-{unique}")).raise_for_status()
    client.post("/subscriptions", json=subscription_body(f"r-{unique}", f"sub-r-{unique}")).raise_for_status()
    with without_redis("api") as server:
        response = httpx.get(f"{server.url}/api/v1/customers/r-{unique}/current_usage",
                             params={"external_subscription_id": f"sub-r-{unique}"},
                             headers=client.headers, timeout=15)
    assert response.status_code == 503
    assert response.json() == {"status": 503, "error": "Service Unavailable", "code": "service_unavailable",
                               "message": "current usage cannot be read now (Redis unreachable), retry"}
    assert response.headers["retry-after"] == "1"
