"""The aggregator under faults, against the running processes and real Kafka, Redis and PostgreSQL:
kill -9 mid-stream, Redis flushed then rebuilt, PostgreSQL stopped during ingestion, and an
unknown subscription's event rejected then replayed. Every test asserts exact units and cents."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import orjson
import psycopg
import pytest
import redis
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from core.clients import is_cluster, sync_redis
from meterline.stack.proc import RunDir, running_pid
from schemas.events import Event, event_to_message
from tests.builders import api, customer_body, wait_for
from tests.conftest import HOME, ROOT, STACK_PROCESSES, Services
from tests.e2e.ingest_support import private_ingest
from tests.kafka_reading import end_offsets

MARKERS = {p.name: p.marker for p in STACK_PROCESSES}
CALLS = {"name": "API calls", "code": "api_calls", "aggregation_type": "sum_agg", "field_name": "calls"}
SEATS = {"name": "Seats", "code": "seats", "aggregation_type": "unique_count_agg", "field_name": "seat"}


def meterline(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([sys.executable, "-m", "meterline.cli", *args], cwd=ROOT, capture_output=True,
                            text=True, timeout=timeout, env={**os.environ, "METERLINE_HOME": str(HOME)})
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def seed(client: httpx.Client, unique: str, subscribe: bool = True) -> tuple[str, str]:
    for metric in (CALLS, SEATS):
        assert client.post("/billable_metrics", json={"billable_metric": metric}).status_code == 200
    plan = {"name": "Usage", "code": "usage", "interval": "monthly", "amount_cents": 0, "amount_currency": "USD",
            "charges": [
                {"billable_metric_code": "api_calls", "charge_model": "standard", "properties": {"amount": "0.05"}},
                {"billable_metric_code": "seats", "charge_model": "standard", "properties": {"amount": "2"}},
            ]}
    assert client.post("/plans", json={"plan": plan}).status_code == 200
    customer_id, subscription_id = f"cust-{unique}", f"sub-{unique}"
    assert client.post("/customers", json=customer_body(customer_id)).status_code == 200
    if subscribe:
        subscribe_to(client, customer_id, subscription_id)
    return customer_id, subscription_id


def subscribe_to(client: httpx.Client, customer_id: str, subscription_id: str) -> None:
    body = {"subscription": {"external_customer_id": customer_id, "plan_code": "usage", "external_id": subscription_id}}
    response = client.post("/subscriptions", json=body)
    assert response.status_code == 200, response.text


def workload(subscription_id: str, distinct: int) -> tuple[list[dict[str, Any]], int, int]:
    """`distinct` events (calls 1..5, 40 seats), then 20% of them again with the same transaction_id,
    interleaved. Returns the events to send, the expected calls and the expected seats."""
    now = int(time.time())
    events = []
    for n in range(distinct):
        code, properties = ("seats", {"seat": f"seat-{n % 40}"}) if n % 10 == 0 else \
            ("api_calls", {"calls": n % 5 + 1})
        events.append({"transaction_id": f"tx-{n}", "code": code, "external_subscription_id": subscription_id,
                       "timestamp": now, "properties": properties})
    calls = sum(e["properties"]["calls"] for e in events if e["code"] == "api_calls")
    seats = len({e["properties"]["seat"] for e in events if e["code"] == "seats"})
    mixed: list[dict[str, Any]] = []
    for n, event in enumerate(events):
        mixed.append(event)
        if n % 5 == 4:  # a repeat of a random earlier event: 20% of the traffic is repeated
            mixed.append(dict(events[(n * 7919) % (n + 1)]))
    return mixed, calls, seats


def barrier(subscription_id: str) -> dict[str, Any]:
    """One new API call: sent after copies of earlier events, its arrival in usage shows they went through."""
    return {"transaction_id": f"barrier-{uuid.uuid4()}", "code": "api_calls",
            "external_subscription_id": subscription_id, "timestamp": int(time.time()), "properties": {"calls": 1}}


def send(ingest: httpx.Client, events: list[dict[str, Any]], deadline_s: float = 120) -> None:
    """Send in batches of 100; a batch refused (503) or not answered is sent again, like a client would."""
    deadline = time.monotonic() + deadline_s
    for start in range(0, len(events), 100):
        while True:
            try:
                response = ingest.post("/events/batch", json={"events": events[start:start + 100]})
                if response.status_code == 200:
                    break
                assert response.status_code in (429, 503), response.text
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the ingest did not accept events again"
            time.sleep(0.2)


def stream_in_background(ingest: httpx.Client, events: list[dict[str, Any]], pause_s: float,
                         copies_until: threading.Event | None = None) -> threading.Thread:
    """A started thread sending the events in batches of 100, pausing between batches; then, with
    `copies_until`, sending them all again (copies, which change nothing) until it is set."""
    def paced() -> None:
        copies = False  # the first round sends the events; the next ones, copies of them
        while not copies or (copies_until is not None and not copies_until.is_set()):
            for start in range(0, len(events), 100):
                if copies and copies_until is not None and copies_until.is_set():
                    break
                send(ingest, events[start:start + 100])
                time.sleep(pause_s)
            copies = True

    sender = threading.Thread(target=paced)
    sender.start()
    return sender


def usage_of(client: httpx.Client, customer_id: str, subscription_id: str) -> dict[str, Any]:
    response = client.get(f"/customers/{customer_id}/current_usage",
                          params={"external_subscription_id": subscription_id})
    assert response.status_code == 200, response.text
    return response.json()["customer_usage"]


def lines(usage: dict[str, Any]) -> dict[str, tuple[str, int, int]]:
    return {line["billable_metric"]["code"]: (line["units"], line["events_count"], line["amount_cents"])
            for line in usage["charges_usage"]}


def settle(client: httpx.Client, customer_id: str, subscription_id: str, calls: int, seats: int,
           timeout_s: float = 120) -> dict[str, Any]:
    """Wait until both charges reach the expected units, then a little more: a double count would show."""
    deadline = time.monotonic() + timeout_s
    usage: dict[str, Any] = {}
    while time.monotonic() < deadline:
        usage = usage_of(client, customer_id, subscription_id)
        found = lines(usage)
        if float(found["api_calls"][0]) >= calls and float(found["seats"][0]) >= seats:
            time.sleep(2.0)
            return usage_of(client, customer_id, subscription_id)
        time.sleep(0.2)
    raise AssertionError(f"usage never reached {calls} calls and {seats} seats: {lines(usage)}")


def assert_exact(usage: dict[str, Any], calls: int, calls_events: int, seats: int) -> None:
    assert lines(usage) == {
        "api_calls": (f"{calls}.0", calls_events, calls * 5),  # $0.05 a call
        "seats": (f"{seats}.0", seats, seats * 200),  # $2 a seat
    }
    assert usage["amount_cents"] == calls * 5 + seats * 200


def archived(services: Services, subscription_id: str) -> tuple[int, int]:
    with psycopg.connect(services.database_url) as conn:
        row = conn.execute("SELECT count(*), count(DISTINCT transaction_id) FROM events "
                           "WHERE external_subscription_id = %s", (subscription_id,)).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def pid_of(name: str) -> int | None:
    return running_pid(RunDir(HOME), name, MARKERS.get(name, {"redis": "redis-server"}.get(name, "postgres")))


AGGREGATORS = [process.name for process in STACK_PROCESSES if process.command == "aggregator"]


def aggregator_pids() -> list[int]:
    """The pids of the stack's aggregators, every one running."""
    pids = [pid_of(name) for name in AGGREGATORS]
    assert pids and None not in pids, pids
    return [pid for pid in pids if pid is not None]


def stop_aggregators(sig: signal.Signals) -> None:
    """Every aggregator of the stack signalled and gone: with two (`make test-cluster`), either may own the
    partition of the events a test sends."""
    victims = aggregator_pids()
    for victim in victims:
        os.kill(victim, sig)
    for victim in victims:
        wait_gone(victim)
    assert all(pid_of(name) is None for name in AGGREGATORS)


def started_every_aggregator(up_output: str) -> bool:
    return all(f"started {name}" in up_output for name in AGGREGATORS)


@contextmanager
def aggregators_paused() -> Iterator[None]:
    """Every aggregator of the stack stopped (SIGSTOP) meanwhile: with several (`make test-cluster` runs
    two), any of them may own the partition of the events a test sends."""
    pids = aggregator_pids()
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)


def wait_gone(pid: int, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        state = process_state(pid)
        if state in (None, "Z"):  # gone, or a zombie its parent has not reaped
            return
        time.sleep(0.1)
    raise AssertionError(f"process {pid} still runs after {timeout_s} s ({process_state(pid)})")


def process_state(pid: int) -> str | None:
    """The process's state letter, None once it is gone (it may go between any two reads of /proc)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None


@pytest.fixture
def restore_stack() -> Iterator[None]:
    """Whatever a fault test stopped is running again afterwards."""
    yield
    meterline("up")


def test_kill_9_mid_stream_then_restart_counts_exactly_once(
        client: httpx.Client, ingest: httpx.Client, unique: str, services: Services, restore_stack: None) -> None:
    customer_id, subscription_id = seed(client, unique)
    events, calls, seats = workload(subscription_id, 6000)
    sender = stream_in_background(ingest, events, 0.03)  # 72 batches: about 3 s
    time.sleep(1.0)  # mid-stream: the aggregator is busy with the first batches
    assert sender.is_alive()
    stop_aggregators(signal.SIGKILL)
    time.sleep(1.0)  # events keep arriving while no aggregator runs
    assert started_every_aggregator(meterline("up").stdout)
    sender.join(timeout=180)
    assert not sender.is_alive()

    usage = settle(client, customer_id, subscription_id, calls, seats)

    assert_exact(usage, calls, 5400, seats)
    assert archived(services, subscription_id) == (6000, 6000)


def test_redis_flush_then_rebuild_restores_identical_usage(
        client: httpx.Client, ingest: httpx.Client, unique: str, services: Services) -> None:
    customer_id, subscription_id = seed(client, unique)
    events, calls, seats = workload(subscription_id, 3000)
    send(ingest, events)
    before = settle(client, customer_id, subscription_id, calls, seats)
    assert_exact(before, calls, 2700, seats)

    sync_redis(services.redis_url).flushdb()  # on a cluster, every master's
    emptied = usage_of(client, customer_id, subscription_id)
    assert lines(emptied) == {"api_calls": ("0.0", 0, 0), "seats": ("0.0", 0, 0)}

    result = meterline("rebuild", "--subscription", subscription_id)

    assert "3000 archived events read, 3000 restored" in result.stdout
    assert usage_of(client, customer_id, subscription_id) == before
    # rebuilding again is a no-op: the dedup marks came back with the state
    again = meterline("rebuild", "--subscription", subscription_id)
    assert "3000 archived events read, 0 restored" in again.stdout
    assert usage_of(client, customer_id, subscription_id) == before
    # and the aggregator still refuses the old copies: a new event sent after them (same partition,
    # so counted after them) shows when they went through
    send(ingest, events[:500] + [barrier(subscription_id)])
    after = settle(client, customer_id, subscription_id, calls + 1, seats)
    assert_exact(after, calls + 1, 2701, seats)


def postmaster_pid() -> int:
    """The postgres server process (the pid file names the `runuser` wrapper when run as root)."""
    wrapper = pid_of("postgres")
    assert wrapper is not None, "PostgreSQL of this stack is not running"
    children = Path(f"/proc/{wrapper}/task/{wrapper}/children").read_text().split()
    return int(children[0]) if children else wrapper


def offsets(services: Services, topic: str = "events",
            group: str = "meterline-aggregator") -> tuple[dict[int, int], dict[int, int]]:
    """(end offset, offset the group committed) of each partition of the topic (by default, the
    stack's aggregator on `events`)."""
    ends = end_offsets(services.kafka_bootstrap, topic)
    consumer = Consumer({"bootstrap.servers": services.kafka_bootstrap, "group.id": group,
                         "enable.auto.commit": False})
    try:
        committed = consumer.committed([TopicPartition(topic, p) for p in ends], timeout=5)
        return ends, {tp.partition: tp.offset for tp in committed}
    finally:
        consumer.close()


def test_postgres_stopped_during_ingestion_and_worker_stopped_meanwhile_loses_and_doubles_nothing(
        client: httpx.Client, org_key: str, unique: str, services: Services, restore_stack: None) -> None:
    """Through an ingest of one worker: while PostgreSQL is down, a worker accepts only the keys it has
    seen, and of the stack's two, the one the first third reached may not get the second."""
    customer_id, subscription_id = seed(client, unique)
    with private_ingest(METERLINE_INGEST_WORKERS="1") as one_worker, api(one_worker.url, org_key) as ingest:
        events, calls, seats = workload(subscription_id, 4000)
        third = len(events) // 3
        send(ingest, events[:third])
        server = postmaster_pid()
        os.kill(server, signal.SIGINT)  # fast shutdown: connections are cut, as in a crash of the database
        wait_gone(server)
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(services.database_url, connect_timeout=2)
        ends_before, _ = offsets(services)
        send(ingest, events[third:2 * third])  # accepted into Kafka (or retried) while PostgreSQL is down
        time.sleep(5.0)  # the aggregator holds its batch and backs off meanwhile
        ends_after, committed = offsets(services)
        assert sum(ends_after.values()) - sum(ends_before.values()) >= third
        # none of the events it could not archive is committed (commits happen every second)
        assert all(committed[p] <= ends_before[p] for p in ends_before), (committed, ends_before)
        # a graceful stop while a batch is held back must not commit that batch (Faust acks a take()
        # buffer when its consumer goes away): the batch is processed by the next worker instead
        stop_aggregators(signal.SIGTERM)
        assert started_every_aggregator(meterline("up").stdout)  # and PostgreSQL
        send(ingest, events[2 * third:])

        usage = settle(client, customer_id, subscription_id, calls, seats)

        assert_exact(usage, calls, 3600, seats)
        assert archived(services, subscription_id) == (4000, 4000)


def rejected_messages(services: Services, organization_id: str) -> list[dict[str, Any]]:
    consumer = Consumer({"bootstrap.servers": services.kafka_bootstrap, "group.id": f"test-{uuid.uuid4()}",
                         "enable.auto.commit": False})
    try:
        topic = "events.rejected"
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in partitions}
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        found, done = [], {p for p, end in ends.items() if end == 0}
        deadline = time.monotonic() + 30
        while len(done) < len(ends) and time.monotonic() < deadline:
            message = consumer.poll(1.0)
            if message is None or message.error():
                continue
            body = orjson.loads(message.value())
            if isinstance(body.get("event"), dict) and body["event"].get("organization_id") == organization_id:
                found.append(body)
            if message.offset() + 1 >= ends[message.partition()]:
                done.add(message.partition())
        return found
    finally:
        consumer.close()


def test_unknown_subscription_is_rejected_then_replayed_once(
        client: httpx.Client, ingest: httpx.Client, unique: str, services: Services) -> None:
    customer_id, subscription_id = seed(client, unique, subscribe=False)
    since = time.time() - 1
    event = {"transaction_id": "late-1", "code": "api_calls", "external_subscription_id": subscription_id,
             "timestamp": int(time.time()), "properties": {"calls": 7}}
    send(ingest, [event, event])
    organization_id = ""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with psycopg.connect(services.database_url) as conn:
            row = conn.execute("SELECT organization_id FROM customers WHERE external_id = %s",
                               (customer_id,)).fetchone()
        assert row is not None
        organization_id = str(row[0])
        found = rejected_messages(services, organization_id)
        if len(found) >= 2:
            break
        time.sleep(0.5)
    assert [(m["reason"], m["event"]["transaction_id"], m["event"]["properties"]) for m in found] == \
        [("unknown_subscription", "late-1", {"calls": 7})] * 2
    assert archived(services, subscription_id) == (0, 0)

    subscribe_to(client, customer_id, subscription_id)
    meterline("replay-rejected", "--reason", "unknown_subscription", "--since", str(since))
    usage = settle(client, customer_id, subscription_id, 7, 0)
    assert_exact(usage, 7, 1, 0)
    # replaying again (both copies again) bills nothing more
    meterline("replay-rejected", "--reason", "unknown_subscription", "--since", str(since))
    send(ingest, [barrier(subscription_id)])  # counted after the replayed copies (same partition)
    assert_exact(settle(client, customer_id, subscription_id, 8, 0), 8, 2, 0)
    assert archived(services, subscription_id) == (2, 2)


def test_redis_stopped_during_ingestion_loses_and_doubles_nothing(
        client: httpx.Client, ingest: httpx.Client, unique: str, services: Services, restore_stack: None) -> None:
    if is_cluster(services.redis_url):
        pytest.skip("a single Redis stopped: on a cluster, tests/e2e/test_redis_cluster.py kills a master instead")
    customer_id, subscription_id = seed(client, unique)
    events, calls, seats = workload(subscription_id, 3000)
    half = len(events) // 2
    send(ingest, events[:half])
    server = pid_of("redis")
    assert server is not None
    os.kill(server, signal.SIGTERM)  # shutdown saves the dataset (the stack runs Redis with save points)
    wait_gone(server)
    with pytest.raises(redis.exceptions.ConnectionError):
        redis.Redis.from_url(services.redis_url, socket_connect_timeout=1).ping()
    send(ingest, events[half:])  # the aggregator cannot apply these: it holds the batch and backs off
    time.sleep(4.0)
    meterline("up")  # starts Redis again

    usage = settle(client, customer_id, subscription_id, calls, seats)

    assert_exact(usage, calls, 2700, seats)
    assert archived(services, subscription_id) == (3000, 3000)


def test_a_second_worker_joining_and_the_first_leaving_mid_stream_counts_exactly_once(
        client: httpx.Client, ingest: httpx.Client, unique: str, services: Services, restore_stack: None) -> None:
    """Scaling out and back in: two rebalances of the consumer group while events stream to every
    partition (six subscriptions), and batches in flight in both workers at each of them."""
    customer_id, first = seed(client, unique)
    subscriptions = [first] + [f"sub-{unique}-{n}" for n in range(1, 6)]
    for subscription_id in subscriptions[1:]:
        subscribe_to(client, customer_id, subscription_id)
    loads = {subscription_id: workload(subscription_id, 1500) for subscription_id in subscriptions}
    mixed = [event for batch in zip(*(events for events, _, _ in loads.values()), strict=True) for event in batch]

    cut = 2 * len(mixed) // 3
    left = threading.Event()
    # 72 batches over 7 s, then copies of them until the first worker leaves: however long the second takes
    # to join, events stream through both rebalances
    sender = stream_in_background(ingest, mixed[:cut], 0.1, copies_until=left)
    time.sleep(1.5)
    log = (HOME / "log" / f"test-aggregator-{unique}.log").open("ab")
    second = subprocess.Popen([sys.executable, "-m", "meterline.cli", "aggregator"], cwd=ROOT, stdout=log,
                              stderr=subprocess.STDOUT, start_new_session=True,
                              env={**os.environ, "METERLINE_HOME": str(HOME), "METERLINE_AGGREGATOR_METRICS_PORT": "0"})
    second_log = HOME / "log" / f"test-aggregator-{unique}.log"
    assigned = "Executing _on_partitions_assigned"
    try:
        wait_for(lambda: assigned in second_log.read_text(), 60, "the group to rebalance over both workers")
        first_worker = pid_of("aggregator-1")
        assert first_worker is not None
        os.kill(first_worker, signal.SIGTERM)  # the first leaves mid-stream: the second takes everything
        left.set()
        rest = stream_in_background(ingest, mixed[cut:], 0.1)
        wait_gone(first_worker)
        for thread in (sender, rest):
            thread.join(timeout=180)
            assert not thread.is_alive()

        for subscription_id, (_, calls, seats) in loads.items():
            usage = settle(client, customer_id, subscription_id, calls, seats)
            assert_exact(usage, calls, 1350, seats)
            assert archived(services, subscription_id) == (1500, 1500)
        assert second.poll() is None
        assert second_log.read_text().count(assigned) >= 2  # it joined beside the first, then took over
    finally:
        left.set()  # the copies stop, whatever failed
        second.terminate()
        second.wait(60)
        log.close()


def organization_of(services: Services, subscription_id: str) -> str:
    with psycopg.connect(services.database_url) as conn:
        row = conn.execute("SELECT organization_id FROM subscriptions WHERE external_id = %s",
                           (subscription_id,)).fetchone()
    assert row is not None
    return str(row[0])


def test_a_finished_batch_is_committed_at_once_not_at_the_commit_interval(
        client: httpx.Client, unique: str, services: Services) -> None:
    """Offsets follow the archive: the last batch of a backlog is committed as soon as it is archived,
    though the worker's periodic commit is set ten minutes away (before, it waited for it)."""
    _, subscription_id = seed(client, unique)
    organization_id = organization_of(services, subscription_id)
    topic, group = f"test.commit.{unique}", f"test-commit-{unique}"
    admin = AdminClient({"bootstrap.servers": services.kafka_bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=4, replication_factor=1)])[topic].result(30)
    producer = Producer({"bootstrap.servers": services.kafka_bootstrap})
    now_us = int(time.time()) * 1_000_000
    for n in range(300):
        event = Event(lago_id=str(uuid.uuid4()), organization_id=organization_id, transaction_id=f"tx-{n}",
                      code="api_calls", external_subscription_id=subscription_id, timestamp_us=now_us,
                      received_at_us=now_us, properties={"calls": 1})
        producer.produce(topic, key=f"k{n % 8}".encode(), value=event_to_message(event))
    assert producer.flush(30) == 0

    log = (HOME / "log" / f"test-aggregator-{unique}.log").open("ab")
    worker = subprocess.Popen(
        [sys.executable, "-m", "meterline.cli", "aggregator"], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True,
        env={**os.environ, "METERLINE_HOME": str(HOME), "METERLINE_AGGREGATOR_METRICS_PORT": "0",
             "METERLINE_EVENTS_TOPIC": topic, "METERLINE_CONSUMER_GROUP": group,
             "METERLINE_AGGREGATOR_COMMIT_INTERVAL_S": "600"})
    try:
        wait_for(lambda: archived(services, subscription_id) == (300, 300), 90, "the worker to archive the events")
        def committed_to_the_end() -> bool:
            ends, committed = offsets(services, topic, group)
            return committed == ends and sum(ends.values()) == 300

        # far below the 600 s interval: every partition committed to its end (300 events in all)
        wait_for(committed_to_the_end, 30, "the offsets of the last batch to be committed")
        assert worker.poll() is None
    finally:
        worker.terminate()
        worker.wait(60)
        log.close()
        admin.delete_topics([topic])
