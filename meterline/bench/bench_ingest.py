"""Ingest throughput: `/events/batch` (100 distinct events per request) against the raw Kafka ceiling.

1. Start the standalone ingest (`meterline ingest`, the command the stack runs, with the configured
   number of worker processes) on a free port, publishing to a topic of its own (`bench.ingest`,
   as many partitions as `events`) on the stack's broker: the aggregator does not consume it, so
   it neither competes for the CPU nor sees junk events.
2. Load generators in separate processes keep persistent HTTP/1.1 connections busy with pre-built
   request bytes (a minimal client: what is measured is the ingest, not an HTTP library), after a
   warm-up; every 200 counts 100 events, the latency of each request is kept for the p99.
3. The ceiling, in the same run: confluent-kafka with the ingest's producer settings producing the
   very messages the ingest produced (same values, same keys) straight to the same topic.

Figures: `ingest_events_per_s`, `ingest_ceiling_events_per_s`, `ingest_p99_ms`, `ingest_ceiling_ratio`.
Profiling the ingest while this runs: `py-spy record --subprocesses -o ingest.svg --pid <ingest pid>`.

Where the time goes (py-spy, one worker at ~60k events/s, Python threads; Nov 2026): validating
the batch 15% (+5% lago_ids), building the topic messages 11%, produce_batch into librdkafka 8%,
delivery reports 6%, the response (echo dicts 8%, orjson 6%, socket write 9%), parsing the body
5%, uvicorn/Starlette/asyncio the rest. librdkafka's own thread adds ~1.5 µs per event (lz4,
protocol); all in, ~9-10 µs of CPU per event. Two workers beat one on 2 cores (A/B, same run).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import queue
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from core.settings import Settings
from ingest.publisher import producer_config
from meterline.bench.run import BenchContext, percentile
from schemas.events import event_to_message, parse_event

ORDER = 10
TOPIC = "bench.ingest"
EVENTS_PER_REQUEST = 100
SUBSCRIPTIONS = 500


@dataclass(frozen=True)
class Plan:
    generators: int  # load generator processes
    connections: int  # concurrent connections per generator
    bodies: int  # distinct request bodies per generator
    warmup_s: float
    measure_s: float


FULL = Plan(generators=2, connections=12, bodies=200, warmup_s=3, measure_s=20)
QUICK = Plan(generators=2, connections=8, bodies=50, warmup_s=1, measure_s=4)


def batch_body(generator: int, n: int) -> bytes:
    """100 distinct events, as a client posts them: ids unique across generators and bodies."""
    events = [{"transaction_id": f"bench-{generator}-{n}-{i}", "code": "monthly_tracked_users",
               "external_subscription_id": f"bench-sub-{(n * EVENTS_PER_REQUEST + i) % SUBSCRIPTIONS}",
               "timestamp": 1_781_049_600 + n, "properties": {"user_id": f"user-{generator}-{n}-{i}"}}
              for i in range(EVENTS_PER_REQUEST)]
    return orjson.dumps({"events": events})


def http_request(host: str, port: int, key: str, body: bytes) -> bytes:
    head = (f"POST /api/v1/events/batch HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {key}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n")
    return head.encode() + body


async def _connection(host: str, port: int, requests: list[bytes], offset: int, warm_until: float,
                      stop_at: float, latencies: list[float], failures: list[int]) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    index = offset
    try:
        while True:
            began = time.perf_counter()
            if began >= stop_at:
                return
            writer.write(requests[index % len(requests)])
            index += 1
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            await reader.readexactly(length)
            if began >= warm_until:
                if head[9:12] == b"200":
                    latencies.append(time.perf_counter() - began)
                else:
                    failures.append(int(head[9:12]))
    finally:
        writer.close()


def _generator(args: tuple[str, int, str, int, Plan, float, Any]) -> None:
    host, port, key, generator, plan, start_at, results = args
    requests = [http_request(host, port, key, batch_body(generator, n)) for n in range(plan.bodies)]
    latencies: list[float] = []
    failures: list[int] = []

    async def main() -> None:
        await asyncio.sleep(max(0.0, start_at - time.time()))  # every generator starts together
        warm_until = time.perf_counter() + plan.warmup_s
        stop_at = warm_until + plan.measure_s
        await asyncio.gather(*(_connection(host, port, requests, c * 7, warm_until, stop_at, latencies, failures)
                               for c in range(plan.connections)))

    try:
        import uvloop

        uvloop.run(main())
    except ImportError:
        asyncio.run(main())
    results.put((latencies, failures))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _topic(settings: Settings) -> None:
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap, "log_level": 3})
    if TOPIC in admin.list_topics(timeout=30).topics:
        return
    new = NewTopic(TOPIC, num_partitions=settings.events_partitions, replication_factor=1,
                   config={"retention.ms": str(3600 * 1000)})
    for future in admin.create_topics([new], request_timeout=30).values():
        future.result()
    # created is not yet led: reading its offsets at once failed (NOT_LEADER_FOR_PARTITION) on a fresh stack
    deadline = time.monotonic() + 30
    while True:
        partitions = admin.list_topics(TOPIC, timeout=30).topics[TOPIC].partitions.values()
        if partitions and all(p.leader >= 0 and p.error is None for p in partitions):
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"the partitions of {TOPIC} have no leader after 30 s")
        time.sleep(0.1)


def _start_ingest(ctx: BenchContext, port: int) -> subprocess.Popen[bytes]:
    settings = ctx.settings
    env = {**os.environ, "METERLINE_HOME": str(settings.home), "METERLINE_INGEST_PORT": str(port),
           "METERLINE_EVENTS_TOPIC": TOPIC, "METERLINE_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
           "METERLINE_DATABASE_URL": settings.database_url, "METERLINE_REDIS_URL": settings.redis_url,
           "METERLINE_INGEST_WORKERS": str(settings.ingest_workers)}
    log = open(settings.home / "log" / "bench-ingest.log", "ab")  # noqa: SIM115 - the child keeps it
    process = subprocess.Popen([sys.executable, "-m", "meterline.cli", "ingest"], env=env, stdout=log,
                               stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 60
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"the bench ingest exited at start; see {settings.home / 'log' / 'bench-ingest.log'}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError("the bench ingest did not answer /health within 60 s")
        time.sleep(0.2)


def _stop(process: subprocess.Popen[bytes]) -> None:
    os.killpg(process.pid, 15)
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, 9)
        process.wait(10)


def _load(ctx: BenchContext, port: int, plan: Plan) -> tuple[list[float], list[int]]:
    spawn = multiprocessing.get_context("spawn")
    results = spawn.Queue()
    start_at = time.time() + 2.0  # time for the spawned interpreters to build their bodies
    processes = [spawn.Process(target=_generator, args=(("127.0.0.1", port, ctx.api_key, g, plan, start_at,
                                                         results),)) for g in range(plan.generators)]
    for process in processes:
        process.start()
    latencies: list[float] = []
    failures: list[int] = []
    deadline = time.monotonic() + plan.warmup_s + plan.measure_s + 120
    for _ in processes:
        while True:
            try:
                found, failed = results.get(timeout=1.0)
                break
            except queue.Empty:
                if time.monotonic() > deadline or any(p.exitcode not in (None, 0) for p in processes):
                    raise RuntimeError("a load generator died or hung; see its traceback above") from None
        latencies += found
        failures += failed
    for process in processes:
        process.join(30)
    return latencies, failures


def _ceiling(settings: Settings, events: int) -> float:
    """Raw confluent-kafka: the same messages (value and key) as the ingest produces, same settings."""
    organization_id = str(uuid.uuid4())
    now_us = time.time_ns() // 1000
    messages = []
    for n in range(events // EVENTS_PER_REQUEST):
        for raw in orjson.loads(batch_body(9, n))["events"]:
            event = parse_event(raw, organization_id, now_us)
            messages.append((event_to_message(event), event.partition_key))
    producer = Producer(producer_config(settings.kafka_bootstrap, settings.publish_timeout_s))
    delivered = [0]

    def on_delivery(error: Any, _message: Any) -> None:
        if error is None:
            delivered[0] += 1

    producer.produce(TOPIC, b"{}", b"warm-up")  # metadata and the idempotent producer id, off the clock
    producer.flush(30)
    began = time.perf_counter()
    for value, key in messages:
        while True:
            try:
                producer.produce(TOPIC, value, key, on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.01)
        producer.poll(0)
    producer.flush(120)
    elapsed = time.perf_counter() - began
    if delivered[0] != len(messages):
        raise RuntimeError(f"the ceiling run delivered {delivered[0]} of {len(messages)} messages")
    return len(messages) / elapsed



def _messages_in_topic(settings: Settings) -> int:
    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap, "group.id": "meterline-bench-ingest",
                         "log_level": 3})
    try:
        partitions = consumer.list_topics(TOPIC, timeout=30).topics[TOPIC].partitions
        return sum(consumer.get_watermark_offsets(TopicPartition(TOPIC, p), timeout=30)[1] for p in partitions)
    finally:
        consumer.close()


def run(ctx: BenchContext) -> dict[str, float]:
    plan = QUICK if ctx.quick else FULL
    _topic(ctx.settings)
    before = _messages_in_topic(ctx.settings)
    port = _free_port()
    ingest = _start_ingest(ctx, port)
    try:
        latencies, failures = _load(ctx, port, plan)
    finally:
        _stop(ingest)
    if failures:
        raise RuntimeError(f"{len(failures)} requests failed during the ingest benchmark: {sorted(set(failures))}")
    if not latencies:
        raise RuntimeError("no request completed during the ingest benchmark")
    written = _messages_in_topic(ctx.settings) - before
    if written < len(latencies) * EVENTS_PER_REQUEST:  # a 200 means in the topic: check it holds
        raise RuntimeError(f"{len(latencies) * EVENTS_PER_REQUEST} events were accepted but only {written} written")
    events_per_s = len(latencies) * EVENTS_PER_REQUEST / plan.measure_s
    ceiling = _ceiling(ctx.settings, 200_000 if ctx.quick else 1_000_000)
    return {
        "ingest_events_per_s": round(events_per_s, 1),
        "ingest_ceiling_events_per_s": round(ceiling, 1),
        "ingest_ceiling_ratio": round(events_per_s / ceiling, 3),
        "ingest_p99_ms": round(percentile(latencies, 0.99) * 1000, 2),
        "ingest_p50_ms": round(percentile(latencies, 0.50) * 1000, 2),
        "ingest_workers": float(ctx.settings.ingest_workers),
    }
