"""Aggregator throughput against the raw Kafka consume ceiling, on a Redis Cluster with one and two workers,
and Redis memory per unique member and per dedup mark.

1. Pre-create `ALERTED` (10,000) subscriptions on a plan with an MTU charge (unique_count_agg) and an
   API-calls charge (sum_agg): the plan and 100 customers through the API, the subscriptions straight
   into PostgreSQL. The throughput workload spreads over the first `SUBSCRIPTIONS` (100) of them: fill
   topics of its own (`bench.aggregator.<run>`, `.2` and `.3` for the further drains, `.loop` for the
   other runtime; as many partitions as `events`) with N events each, 10% of them repeated
   transaction_ids.
2. The ceiling: a plain confluent-kafka consumer reading the whole topic without processing (the
   median of three reads), with librdkafka's defaults; and `aggregator_prefetch_ceiling_events_per_s`,
   the same without librdkafka's pause between prefetches (NO_FETCH_PAUSE).
3. The aggregator: a dedicated worker process (`meterline aggregator`, the command the stack runs)
   with a fresh consumer group per topic, writing to the stack's Redis and PostgreSQL. It is
   timed by its committed offsets, from its first commit to the commit of the last event: the rate
   at which events become counted, archived and committed, start-up excluded. It drains DRAINS
   topics of N fresh events each, one worker after the other: `aggregator_events_per_s` is the
   median drain, as the ceiling is the median read (a drain takes ~5 s, and the stack's biller,
   whose round reads every subscription every 30 s, overlaps some);
   `aggregator_slowest_drain_events_per_s` is the slowest.
   `aggregator_cpu_us_per_event`: the worker's CPU time over the median drain, per event (a figure
   that holds on a busy machine, where wall-clock rates depend on the neighbours).
   `aggregator_kafka_loop_events_per_s` (and its CPU, and its ratio to the same median ceiling): one
   drain, of `.loop`, by a worker with METERLINE_AGGREGATOR_RUNTIME=kafka (aggregator/kafka_loop.py).
4. `aggregator_faust_floor_events_per_s`: a Faust worker with the same settings, transport and
   batching (chunks, aggregator/fetch_chunks.py) that does nothing with its batches, on the same
   topic: what the Faust side alone allows, next to the raw ceiling.
5. Alerts (`alerts_cost`): the same kind of events spread over all 10,000 subscriptions
   (ALERTS_EVENTS a drain, 10 per subscription, 5 with --quick), drained ALERTS_DRAINS times without alerts
   (`aggregator_many_subscriptions_events_per_s`, and its CPU per event) and, taking turns with those,
   ALERTS_DRAINS times with a `current_usage_amount` alert on every subscription at a level never reached
   (`aggregator_events_per_s_with_alerts`, its CPU per event): each batch then publishes the pairs it
   touched, which the stack's alerts worker evaluates beside it (aggregator/alerts_app.py), yielding
   while the drain's aggregator says it is behind (aggregator/behind.py).
   `aggregator_with_alerts_ratio` is the second median over the first (target: at least 0.9);
   `aggregator_alert_evaluations_per_event`, from the pipeline's `alerts_evaluated` total once the
   alerts worker caught up, shows the alerts were loaded and evaluated; `alerts_worker_catch_up_s` is
   how long after a drain's last commit that took (median), `alerts_worker_cpu_us_per_event` its CPU
   per event drained, and `aggregator_and_alerts_cpu_us_per_event_with_alerts` the two together. The
   alerts are written straight into `alerts` and deleted after each drain.
6. `redis_bytes_per_unique_member`: MEMORY USAGE of one period's unique set after 1,000,000
   distinct users went through the real Lua script (100,000 with --quick), per member;
   `redis_bytes_per_event_with_mark`: MEMORY USAGE of every key of the subscription (the set, its totals and
   the period's dedup marks) per event, and `redis_bytes_per_dedup_mark` the marks' share;
   `redis_bytes_of_a_subscription_after_its_periods_closed`: the same events in a period past its retention
   (its marks and state go with it). The same four on the Redis Cluster, prefixed `cluster_`.
7. On the Redis Cluster (the stack's, else the local one, started when not running): the throughput workload
   drained (fresh events) by one aggregator, then by two in one consumer group, as `METERLINE_AGGREGATORS=2`
   runs them: `aggregator_cluster_1_worker_events_per_s`, `aggregator_cluster_2_worker_events_per_s`, their CPU
   per event (both workers' together), and `aggregator_cluster_2_workers_ratio` (two over one).

Profiling the worker while this runs: `py-spy record -o aggregator.svg --pid <worker pid>`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import cast

import psycopg
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from core.clients import is_cluster, sync_redis
from core.lag import wait_caught_up
from core.metrics import STATS_KEY
from core.settings import Settings, load_settings
from meterline.bench.run import BenchContext, add_alerts, forget_subscriptions, ok
from meterline.stack import redis_cluster
from meterline.stack.proc import RunDir, running_pid
from schemas.events import Event, event_to_message

ORDER = 30
SUBSCRIPTIONS = 100  # the throughput workload's
ALERTED = 10_000  # the alerts workload's (the first SUBSCRIPTIONS of them are the throughput workload's)
ALERTS_EVENTS = 100_000  # per drain of the alerts workload: 10 per subscription
CUSTOMERS = 100
DRAINS = 3  # of each workload
# of the alerts workload without and with alerts: its drains (~4 s each) vary by a quarter run to run on two
# cores, and a median of three left the ratio of two medians 0.1 either way
ALERTS_DRAINS = 5
NEVER_CENTS = "1000000000"  # an alert level the benchmark's usage never reaches



def create_subscriptions(ctx: BenchContext, run: str) -> list[str]:
    """The external ids of ALERTED fresh subscriptions: the plan and CUSTOMERS customers through the
    API, the subscriptions written straight into PostgreSQL as the API writes one starting now (10,000
    requests would take minutes, and queue as many subscription.started webhooks)."""
    with ctx.client(f"{ctx.api_url}/api/v1") as http:
        for metric in ({"name": "MTU", "code": f"mtu_{run}", "aggregation_type": "unique_count_agg",
                        "field_name": "user_id"},
                       {"name": "Calls", "code": f"calls_{run}", "aggregation_type": "sum_agg",
                        "field_name": "calls"}):
            ok(http.post("/billable_metrics", json={"billable_metric": metric}))
        plan_id = ok(http.post("/plans", json={"plan": {
            "name": "bench", "code": f"plan_{run}", "interval": "monthly", "amount_cents": 0,
            "amount_currency": "USD", "charges": [
                {"billable_metric_code": f"mtu_{run}", "charge_model": "standard", "properties": {"amount": "0.01"}},
                {"billable_metric_code": f"calls_{run}", "charge_model": "standard", "properties": {"amount": "0.001"}},
            ]}}))["plan"]["lago_id"]
        customer_ids = [ok(http.post("/customers", json={"customer": {
            "external_id": f"bench-{run}-c{n}", "currency": "USD", "timezone": "UTC"}}))["customer"]["lago_id"]
                        for n in range(CUSTOMERS)]
    organization_id = ctx.organization_id()
    subscriptions = [f"bench-{run}-s{n}" for n in range(ALERTED)]
    now = datetime.now(UTC)
    with psycopg.connect(ctx.settings.database_url) as conn, conn.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO subscriptions (id, organization_id, customer_id, plan_id, external_id, status,"
            " billing_time, subscription_at, started_at) VALUES (%s, %s, %s, %s, %s, 'active', 'calendar', %s, %s)",
            [(str(uuid.uuid4()), organization_id, customer_ids[n % CUSTOMERS], plan_id, external_id, now, now)
             for n, external_id in enumerate(subscriptions)])
    return subscriptions


def alerts_on(ctx: BenchContext, organization_id: str, subscriptions: list[str]) -> None:
    """A `current_usage_amount` alert on every subscription (it prices every charge), at a level the
    benchmark's usage never reaches: what is measured is evaluating them, never firing."""
    add_alerts(ctx.settings, organization_id, subscriptions, "current_usage_amount", NEVER_CENTS)


def alerts_off(ctx: BenchContext, organization_id: str, run: str) -> None:
    with psycopg.connect(ctx.settings.database_url) as conn:
        conn.execute("DELETE FROM alerts WHERE organization_id = %s AND subscription_external_id LIKE %s",
                     (organization_id, f"bench-{run}-%"))


def alerts_evaluated(settings: Settings) -> int:
    """The pipeline's count of alert evaluations so far (every worker's, the stack's too)."""
    with sync_redis(settings.redis_url) as redis:
        return int(cast(bytes | None, redis.hget(STATS_KEY, "alerts_evaluated")) or 0)


def fill_topic(settings: Settings, topic: str, organization_id: str, subscriptions: list[str], run: str,
               count: int, prefix: str = "tx") -> None:
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap})
    for future in admin.create_topics([NewTopic(topic, num_partitions=settings.events_partitions,
                                                replication_factor=1)]).values():
        future.result()
    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap, "linger.ms": 20, "batch.size": 1_000_000,
                         "compression.type": "lz4", "acks": "all", "enable.idempotence": True,
                         "queue.buffering.max.messages": 1_000_000})
    now_us = int(time.time()) * 1_000_000
    for n in range(count):
        original = n - 9 if n % 10 == 9 else n  # every 10th event repeats an earlier transaction_id
        subscription = subscriptions[original % len(subscriptions)]
        properties: dict[str, object]
        if original % 4 == 0:
            code, properties = f"calls_{run}", {"calls": original % 7 + 1}
        else:
            code, properties = f"mtu_{run}", {"user_id": f"user-{original % 50_000}"}
        event = Event(lago_id=str(uuid.UUID(int=n)), organization_id=organization_id,
                      transaction_id=f"{prefix}-{original}", code=code, external_subscription_id=subscription,
                      timestamp_us=now_us + n, received_at_us=now_us + n, properties=properties)
        while True:
            try:
                producer.produce(topic, key=event.partition_key, value=event_to_message(event))
                break
            except BufferError:
                producer.poll(0.1)
    producer.flush(120)


# librdkafka's prefetch with its defaults: once a partition has queued.min.messages (100,000) waiting,
# its next fetch is put off for up to fetch.queue.backoff.ms (1 s). A plain consumer with defaults
# (the ceiling) reads either ~145,000 or ~215,000 events/s here, run to run; one without that pause
# (the prefetch ceiling, reported beside it) reads 300,000-470,000.
NO_FETCH_PAUSE = {"fetch.queue.backoff.ms": 0}


def ceiling(settings: Settings, topic: str, count: int, runs: int = 3,
            config: Mapping[str, object] | None = None) -> float:
    """Events per second a plain confluent-kafka consumer reads from the topic, doing nothing else:
    the median of `runs` reads of the whole topic after one untimed read (a broker just started
    serves a topic at half the speed of a warm one), each assigned its partitions from the start
    (no group join to wait for) and timed from its first `consume()` call. (Timing from the first
    message instead let librdkafka prefetch part of the topic before the clock started.)"""
    rates = []
    for _ in range(runs + 1):
        consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap, "group.id": f"bench-ceiling-{uuid.uuid4()}",
                             "enable.auto.commit": False, **(config or {})})
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(settings.events_partitions)])
        seen = 0
        began = time.monotonic()
        deadline = began + 300
        while seen < count and time.monotonic() < deadline:
            seen += sum(1 for m in consumer.consume(10_000, 1.0) if not m.error())
        rates.append(seen / (time.monotonic() - began))
        consumer.close()
    return statistics.median(rates[1:])


def committed(settings: Settings, group: str, topic: str) -> int:
    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap, "group.id": group,
                         "enable.auto.commit": False})
    try:
        offsets = consumer.committed([TopicPartition(topic, p) for p in range(settings.events_partitions)],
                                     timeout=10)
        return sum(max(tp.offset, 0) for tp in offsets)
    finally:
        consumer.close()


def _cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def aggregator_rate(ctx: BenchContext, topic: str, group: str, count: int,
                    runtime: str = "faust", redis_url: str | None = None, workers: int = 1) -> tuple[float, float]:
    """(events per second, CPU microseconds per event) of `workers` dedicated workers (one consumer group)
    draining the topic, on the stack's Redis or on `redis_url`'s."""
    settings = ctx.settings
    env = {**os.environ, "METERLINE_HOME": str(settings.home), "METERLINE_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
           "METERLINE_REDIS_URL": redis_url or settings.redis_url, "METERLINE_DATABASE_URL": settings.database_url,
           "METERLINE_EVENTS_TOPIC": topic, "METERLINE_CONSUMER_GROUP": group, "PYTHONUNBUFFERED": "1",
           "METERLINE_AGGREGATOR_RUNTIME": runtime,
           "METERLINE_AGGREGATOR_METRICS_PORT": "0"}  # the stack's worker serves /metrics on the port
    log = open(settings.home / "log" / "bench-aggregator.log", "ab")  # noqa: SIM115 - closed in finally
    started = [subprocess.Popen([sys.executable, "-m", "meterline.cli", "aggregator"], env=env, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True) for _ in range(workers)]

    def cpu_s() -> float:
        return sum(_cpu_s(worker.pid) for worker in started)

    try:
        first: tuple[float, int, float] | None = None
        deadline = time.monotonic() + (120 if ctx.quick else 600)
        while time.monotonic() < deadline:
            for worker in started:
                if worker.poll() is not None:
                    raise RuntimeError(f"a bench aggregator exited ({worker.returncode}); see bench-aggregator.log")
            done = committed(settings, group, topic)
            now = time.monotonic()
            if done and first is None:
                first = (now, done, cpu_s())
            if done >= count:
                assert first is not None
                if now == first[0]:
                    raise RuntimeError("everything was committed at once: use more events")
                cpu_us = (cpu_s() - first[2]) * 1e6 / (done - first[1])
                return (done - first[1]) / (now - first[0]), cpu_us
            time.sleep(0.1)
        raise RuntimeError("the bench aggregator did not drain the topic in time")
    finally:
        for worker in started:
            os.killpg(worker.pid, signal.SIGTERM)
        for worker in started:
            try:
                worker.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(worker.pid, signal.SIGKILL)
                worker.wait()
        log.close()


def faust_floor(settings: Settings, topic: str, count: int) -> float:
    """Events per second of a do-nothing Faust worker (`python -m meterline.bench.bench_aggregator`)."""
    result = subprocess.run([sys.executable, "-m", "meterline.bench.bench_aggregator", topic,
                             f"bench-floor-{uuid.uuid4().hex[:8]}", str(count)], capture_output=True, text=True,
                            timeout=600, env={**os.environ, "METERLINE_KAFKA_BOOTSTRAP": settings.kafka_bootstrap})
    for line in (result.stdout + result.stderr).splitlines():
        if "FLOOR " in line:
            return float(line.split("FLOOR ", 1)[1].split()[0])
    raise RuntimeError(f"the Faust floor worker failed: {(result.stdout + result.stderr)[-2000:]}")


def _floor_worker(topic: str, group: str, count: int) -> None:
    """The aggregator's Faust settings and batching, with nothing done to the batches."""
    import faust

    from aggregator.app import create_app
    from aggregator.fetch_chunks import ChunkSchema

    settings = load_settings()
    app = create_app(Settings(**{**settings.__dict__, "events_topic": f"{topic}.unused", "consumer_group": group}))
    source = app.topic(topic, schema=ChunkSchema(), internal=False)
    seen: dict[str, float] = {"n": 0}

    @app.agent(source, concurrency=1)
    async def drain(stream: faust.StreamT) -> None:
        batches = cast(faust.Stream, stream).noack_take(settings.events_partitions,
                                                        within=settings.aggregator_batch_within_s)
        async for chunks in batches:
            events = sum(len(chunk.value) for chunk in chunks)
            for chunk in chunks:
                await stream.ack(chunk)
            if "t0" not in seen:
                seen["t0"], seen["n0"] = time.monotonic(), events
            seen["n"] += events
            if seen["n"] >= count:
                elapsed = time.monotonic() - seen["t0"]
                print(f"FLOOR {(seen['n'] - seen['n0']) / elapsed:.1f} events/s", flush=True)
                os._exit(0)

    sys.argv = [sys.argv[0], "worker", "-l", "warn", "--without-web"]
    app.main()


def redis_memory(redis_url: str, members: int) -> dict[str, float]:
    """Redis bytes of one subscription's MTU metric through the real Lua script, `members` distinct users in
    the open period (one event each): MEMORY USAGE of the unique set, per member, and of every key of the
    subscription (the set, its totals, the period's dedup marks), per event. Then the same number of events
    in a period whose retention is over (ended, and received, more than STATE_RETENTION_S ago): what the
    subscription keeps in Redis once its periods closed (its keys are gone)."""
    from datetime import date

    from aggregator.model import SubscriptionView
    from aggregator.planning import plan
    from core.clients import redis_client, sync_redis
    from core.domain.aggregation import Metric
    from core.domain.periods import BillingCycle
    from core.usage_state.keys import dedup_key
    from core.usage_state.ops import STATE_RETENTION_S, Planned
    from core.usage_state.redis_state import UsageState

    def view_of(scope_id: str) -> SubscriptionView:
        return SubscriptionView(
            id=scope_id, organization_id="00000000-0000-0000-0000-00000000bead", external_id=scope_id,
            status="active", cycle=BillingCycle("monthly", "calendar", date(2020, 1, 1), "UTC"),
            metrics_by_code={"mtu": Metric("m", "mtu", "unique_count_agg", "user_id")})

    async def fill(view: SubscriptionView, at_us: int) -> list[str]:
        """The subscription's keys after `members` events at `at_us` (received then too)."""
        redis = redis_client(redis_url, timeout_s=30)
        state = UsageState(redis)
        keys: set[str] = set()
        for start in range(0, members, 5000):
            batch = []
            for n in range(start, min(start + 5000, members)):
                event = Event(lago_id="x", organization_id=view.organization_id, transaction_id=f"t{n}", code="mtu",
                              external_subscription_id=view.external_id, timestamp_us=at_us, received_at_us=at_us,
                              properties={"user_id": f"user_{n}"})
                item = plan(event, view)
                assert isinstance(item, Planned)
                batch.append(item)
                keys.update(op.key for op in item.ops)
                keys.add(dedup_key(item.scope, item.period_key))
            await state.apply(batch)
        await redis.aclose()
        return sorted(keys)

    sync = sync_redis(redis_url, timeout_s=30)
    now_us = int(time.time()) * 1_000_000
    open_keys = asyncio.run(fill(view_of(f"bench-memory-{uuid.uuid4().hex[:8]}"), now_us))
    sizes = {key: int(sync.memory_usage(key, samples=0) or 0) for key in open_keys}
    unique = next(key for key in open_keys if key.endswith(":u"))
    assert sync.scard(unique) == members
    past_us = now_us - (STATE_RETENTION_S + 40 * 86_400) * 1_000_000  # a period ended over the retention ago
    closed_keys = asyncio.run(fill(view_of(f"bench-memory-{uuid.uuid4().hex[:8]}"), past_us))
    closed_bytes = sum(int(sync.memory_usage(key, samples=0) or 0) for key in closed_keys)
    for key in open_keys:
        sync.delete(key)
    sync.close()
    return {"redis_bytes_per_unique_member": sizes[unique] / members,
            "redis_bytes_per_event_with_mark": sum(sizes.values()) / members,
            "redis_bytes_per_dedup_mark": sum(size for key, size in sizes.items() if ":tx:" in key) / members,
            "redis_bytes_of_a_subscription_after_its_periods_closed": float(closed_bytes)}


def cleanup(settings: Settings, topic: str, group: str, organization_id: str, run: str) -> None:
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap})
    existing = admin.list_topics(timeout=30).topics
    doomed = [name for name in existing if name.startswith((topic, group, "bench-floor-"))]
    for future in (admin.delete_topics(doomed).values() if doomed else []):
        with contextlib.suppress(Exception):
            future.result()
    forget_subscriptions(settings, organization_id, f"bench-{run}-", [cluster_url(settings)])


def alerts_cost(ctx: BenchContext, topic: str, group: str, organization_id: str, run: str,
                subscriptions: list[str], count: int) -> dict[str, float]:
    """Throughput over every one of `subscriptions`, without alerts and with one on each, in turns (a
    drain without, then one with, ALERTS_DRAINS times: the archive growing, or a neighbour's load, weighs on
    both alike); each the median of its drains. Each drain reads a topic of its own with the same
    events (fresh transaction_ids as long as the others')."""
    plain = [f"{topic}.many{n}" for n in range(1, ALERTS_DRAINS + 1)]
    alerted = [f"{topic}.alerts{n}" for n in range(1, ALERTS_DRAINS + 1)]
    for n, (name, alerted_name) in enumerate(zip(plain, alerted, strict=True), 1):
        fill_topic(ctx.settings, name, organization_id, subscriptions, run, count, prefix=f"m{n}")
        fill_topic(ctx.settings, alerted_name, organization_id, subscriptions, run, count, prefix=f"a{n}")
    alerts_pid = running_pid(RunDir(ctx.settings.home), "alerts", "meterline.cli alerts")
    if alerts_pid is None:
        raise RuntimeError("the stack's alerts worker is not running: `meterline up` first")
    drains, alerted_drains, evaluations, catch_ups, alerts_cpu_s = [], [], 0, [], 0.0
    for n, (name, alerted_name) in enumerate(zip(plain, alerted, strict=True), 1):
        drains.append(aggregator_rate(ctx, name, f"{group}-many{n}", count))
        alerts_on(ctx, organization_id, subscriptions)
        try:
            before, cpu_before = alerts_evaluated(ctx.settings), _cpu_s(alerts_pid)
            alerted_drains.append(aggregator_rate(ctx, alerted_name, f"{group}-alerts{n}", count))
            drained_at = time.monotonic()
            alerts_caught_up(ctx.settings)
            catch_ups.append(time.monotonic() - drained_at)
            alerts_cpu_s += _cpu_s(alerts_pid) - cpu_before
            evaluations += alerts_evaluated(ctx.settings) - before
        finally:
            alerts_off(ctx, organization_id, run)
    # each drain touches every subscription at least once
    if evaluations < ALERTS_DRAINS * len(subscriptions):
        raise RuntimeError(f"the drains with alerts evaluated {evaluations} alerts: were they loaded?")
    rate, cpu_us = sorted(drains)[ALERTS_DRAINS // 2]
    alerted_rate, alerted_cpu_us = sorted(alerted_drains)[ALERTS_DRAINS // 2]
    alerts_cpu_us = alerts_cpu_s * 1e6 / (ALERTS_DRAINS * count)
    return {"aggregator_many_subscriptions_events_per_s": rate,
            "aggregator_many_subscriptions_cpu_us_per_event": cpu_us,
            "aggregator_events_per_s_with_alerts": alerted_rate,
            "aggregator_cpu_us_per_event_with_alerts": alerted_cpu_us,
            "aggregator_with_alerts_ratio": alerted_rate / rate,
            "aggregator_alert_evaluations_per_event": evaluations / (ALERTS_DRAINS * count),
            "aggregator_subscriptions_with_alerts": float(len(subscriptions)),
            # the alerts worker evaluating those drains' touched pairs, beside the aggregator
            "alerts_worker_cpu_us_per_event": alerts_cpu_us,
            "alerts_worker_catch_up_s": statistics.median(catch_ups),
            "aggregator_and_alerts_cpu_us_per_event_with_alerts": alerted_cpu_us + alerts_cpu_us}


def alerts_caught_up(settings: Settings, timeout_s: float = 120.0) -> None:
    """Wait until the stack's alerts worker committed every touched pair published so far."""
    wait_caught_up(settings.kafka_bootstrap, settings.alerts_group, settings.touched_topic,
                   time.monotonic() + timeout_s, poll_s=0.05)


def run(ctx: BenchContext) -> dict[str, float]:
    settings = ctx.settings
    count = 150_000 if ctx.quick else 400_000  # quick still spans several commits (one a second)
    run_id = uuid.uuid4().hex[:8]
    topic, group = f"bench.aggregator.{run_id}", f"bench-aggregator-{run_id}"
    organization_id = ctx.organization_id()
    everyone = create_subscriptions(ctx, run_id)
    subscriptions = everyone[:SUBSCRIPTIONS]
    # fresh transaction_ids per drain: a drain of events already counted would measure duplicates
    drained = [topic] + [f"{topic}.{n}" for n in range(2, DRAINS + 1)]
    try:
        for n, name in enumerate(drained, 1):
            fill_topic(settings, name, organization_id, subscriptions, run_id, count, prefix=f"tx{n}")
        fill_topic(settings, f"{topic}.loop", organization_id, subscriptions, run_id, count, prefix="loop")
        raw = ceiling(settings, topic, count)
        prefetch = ceiling(settings, topic, count, config=NO_FETCH_PAUSE)
        drains = sorted(aggregator_rate(ctx, name, f"{group}-{n}", count) for n, name in enumerate(drained, 1))
        rate, cpu_us = drains[len(drains) // 2]
        floor = faust_floor(settings, topic, count)
        loop_rate, loop_cpu_us = aggregator_rate(ctx, f"{topic}.loop", f"{group}-loop", count, runtime="kafka")
        with_alerts = alerts_cost(ctx, topic, group, organization_id, run_id, everyone,
                                  ALERTS_EVENTS // 2 if ctx.quick else ALERTS_EVENTS)
        on_cluster = cluster_rates(ctx, topic, group, organization_id, subscriptions, run_id, count)
        archive_bytes = archive_bytes_per_event(settings, organization_id, run_id)
    finally:
        cleanup(settings, topic, group, organization_id, run_id)
    figures = {"aggregator_events_per_s": rate, "aggregator_slowest_drain_events_per_s": drains[0][0],
               "aggregator_ceiling_events_per_s": raw,
               "aggregator_prefetch_ceiling_events_per_s": prefetch,
               "aggregator_ceiling_ratio": rate / raw if raw else 0.0, "aggregator_cpu_us_per_event": cpu_us,
               "aggregator_faust_floor_events_per_s": floor,
               "aggregator_kafka_loop_events_per_s": loop_rate, "aggregator_kafka_loop_cpu_us_per_event": loop_cpu_us,
               "aggregator_kafka_loop_ceiling_ratio": loop_rate / raw if raw else 0.0, **with_alerts, **on_cluster,
               "archive_bytes_per_event": archive_bytes}
    members = 100_000 if ctx.quick else 1_000_000
    figures.update(redis_memory(settings.redis_url, members))
    figures.update({f"cluster_{name}": value for name, value in redis_memory(cluster_url(settings), members).items()})
    return figures


def archive_bytes_per_event(settings: Settings, organization_id: str, run: str) -> float:
    """PostgreSQL bytes per archived event, indexes included: the run's events (`events` and `event_keys`
    rows) copied into fresh tables of the same definition, measured, dropped (the archive's own tables also
    hold other runs' rows and the free space of deleted ones)."""
    pattern = f"bench-{run}-%"
    with psycopg.connect(settings.database_url) as conn:
        conn.execute("CREATE TEMP TABLE bench_events (LIKE events INCLUDING ALL)")
        conn.execute("CREATE TEMP TABLE bench_event_keys (LIKE event_keys INCLUDING ALL)")
        conn.execute("INSERT INTO bench_events SELECT * FROM events WHERE organization_id = %s "
                     "AND external_subscription_id LIKE %s", (organization_id, pattern))
        conn.execute("INSERT INTO bench_event_keys SELECT * FROM event_keys WHERE organization_id = %s "
                     "AND external_subscription_id LIKE %s", (organization_id, pattern))
        row = conn.execute("SELECT pg_total_relation_size('bench_events') + pg_total_relation_size('bench_event_keys'),"
                           " (SELECT count(*) FROM bench_event_keys)").fetchone()
        conn.rollback()
    assert row is not None and row[1], "the run archived no event"
    return float(row[0]) / float(row[1])


def cluster_url(settings: Settings) -> str:
    """The Redis Cluster the cluster figures are measured on: the stack's when it runs on one, else the local
    one (`METERLINE_LOCAL_REDIS=cluster`'s, started here when it is not running)."""
    if is_cluster(settings.redis_url):
        return settings.redis_url
    redis_cluster.ensure_running(RunDir(settings.home))
    return redis_cluster.URL


def cluster_rates(ctx: BenchContext, topic: str, group: str, organization_id: str, subscriptions: list[str],
                  run: str, count: int) -> dict[str, float]:
    """The throughput workload drained on the Redis Cluster by one aggregator, then by two in one consumer group
    (fresh events each), as the stack's `METERLINE_AGGREGATORS=2` runs them."""
    url = cluster_url(ctx.settings)
    figures: dict[str, float] = {}
    for workers in (1, 2):
        name = f"{topic}.cluster{workers}"
        fill_topic(ctx.settings, name, organization_id, subscriptions, run, count, prefix=f"cluster{workers}")
        rate, cpu_us = aggregator_rate(ctx, name, f"{group}-cluster{workers}", count, redis_url=url, workers=workers)
        figures[f"aggregator_cluster_{workers}_worker_events_per_s"] = rate
        figures[f"aggregator_cluster_{workers}_worker_cpu_us_per_event"] = cpu_us
    figures["aggregator_cluster_2_workers_ratio"] = (figures["aggregator_cluster_2_worker_events_per_s"]
                                                     / figures["aggregator_cluster_1_worker_events_per_s"])
    return figures


if __name__ == "__main__":
    _floor_worker(sys.argv[1], sys.argv[2], int(sys.argv[3]))
