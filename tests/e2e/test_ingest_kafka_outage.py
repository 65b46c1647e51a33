"""Accepted means durable: with the stack's Kafka broker stopped the ingest answers 503 within the
bound (never 200, never hangs), recovers on its own when the broker is back, and every event that
got a 200 is in the topic exactly once, exactly as sent.

This test stops and restarts the broker of the stack under test (its pid file in $METERLINE_HOME/run),
so it needs a stack started by `make up`, not services given by URL only.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import pytest

from core.settings import Settings, load_settings
from meterline.stack import kafka
from meterline.stack.proc import RunDir, running_pid, stop
from meterline.stack.up import ensure_process
from tests.conftest import STACK_PROCESSES, Services, Stack
from tests.e2e.ingest_support import Org, new_org
from tests.kafka_reading import end_offsets, read_since

TOPIC = "events"
REJECTED = "events.rejected"
BOUND_S = 10.0  # the contract: a client gets its answer within 10 s whatever Kafka does
SENDERS = 4


@dataclass(frozen=True)
class Outcome:
    sent: list[dict[str, Any]]
    began: float
    elapsed: float
    status: int | None  # None: no HTTP answer at all (connection refused/reset, timeout)
    body: Any
    retry_after: str | None


class Load:
    """Threads posting small batches of unique events continuously, recording every outcome."""

    def __init__(self, url: str, key: str):
        self.url, self.key = url, key
        self.outcomes: list[Outcome] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._send, args=(n,), daemon=True) for n in range(SENDERS)]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)

    def _send(self, worker: int) -> None:
        headers = {"Authorization": f"Bearer {self.key}"}
        with httpx.Client(base_url=self.url, headers=headers, timeout=30) as client:
            n = 0
            while not self._stop.is_set():
                sent = [{"transaction_id": f"w{worker}-{n}-{i}", "code": "api_calls",
                         "external_subscription_id": f"sub-{(worker + i) % 3}", "timestamp": 1_781_049_600 + n,
                         "properties": {"worker": worker, "n": n, "i": i}} for i in range(5)]
                began = time.monotonic()
                try:
                    response = httpx.Response(0)
                    response = client.post("/api/v1/events/batch", json={"events": sent})
                    status, body = response.status_code, response.json()
                except httpx.HTTPError:
                    status, body = None, None
                self.outcomes.append(Outcome(sent, began, time.monotonic() - began, status, body,
                                             response.headers.get("retry-after")))
                n += 1
                time.sleep(0.05)

    def wait_for(self, check: Any, timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while not check(list(self.outcomes)):
            assert time.monotonic() < deadline, f"{what} did not happen within {timeout_s:.0f}s"
            time.sleep(0.2)


def wait_for_pipeline(services: Services, stack: Stack, timeout_s: float = 180) -> None:
    """The aggregator consumes again: an event of an unknown subscription reaches `events.rejected`."""
    start = end_offsets(services.kafka_bootstrap, REJECTED)
    marker = f"after-outage-{time.time_ns()}"
    with httpx.Client(base_url=stack.ingest_url, headers={"Authorization": f"Bearer {stack.api_key}"}) as client:
        deadline = time.monotonic() + timeout_s
        while client.post("/api/v1/events", json={"event": {"transaction_id": marker, "code": "none",
                                                             "external_subscription_id": marker}},
                           timeout=15).status_code != 200:
            assert time.monotonic() < deadline, "the ingest does not accept events after the outage"
            time.sleep(1)
    while not any(marker.encode() in record.value
                  for record in read_since(services.kafka_bootstrap, REJECTED, start)):
        assert time.monotonic() < deadline, "the aggregator did not resume after the outage"
        time.sleep(1)


@pytest.fixture
def stack_settings(services: Services, stack: Stack) -> Iterator[Settings]:
    settings = load_settings()
    rundir = RunDir(settings.home)
    if running_pid(rundir, "kafka", kafka.MARKER) is None:
        pytest.fail(f"no Kafka broker started by `make up` under {settings.home}: this test stops and restarts it")
    running = [process for process in STACK_PROCESSES if running_pid(rundir, process.name, process.marker)]
    try:
        yield settings
    finally:  # whatever happened, leave the stack as it was: broker first, then any process that died with it
        kafka.ensure_running(rundir, settings)
        for process in running:
            ensure_process(rundir, settings, process, lambda _: None)
        if any(process.command == "aggregator" for process in running):
            wait_for_pipeline(services, stack)  # the next tests find a working pipeline, not one catching up


def test_kafka_outage_answers_503_in_time_recovers_and_loses_no_accepted_event(
        stack_settings: Settings, services: Services, stack: Stack, unique: str) -> None:
    org: Org = new_org(services, f"test-outage-{unique}")
    rundir = RunDir(stack_settings.home)
    start = end_offsets(services.kafka_bootstrap, TOPIC)

    with Load(stack.ingest_url, org.key) as load:
        load.wait_for(lambda seen: sum(o.status == 200 for o in seen) >= 10, 30, "10 batches accepted")
        assert stop(rundir, "kafka", kafka.MARKER, timeout_s=60)
        stopped_at = time.monotonic()
        load.wait_for(lambda seen: sum(o.status == 503 and o.began > stopped_at for o in seen) >= 2 * SENDERS,
                      60, "503s while the broker is down")
        kafka.ensure_running(rundir, stack_settings)
        restarted_at = time.monotonic()
        load.wait_for(lambda seen: sum(o.status == 200 and o.began > restarted_at for o in seen) >= 10, 90,
                      "recovery after the broker came back")

    outcomes = load.outcomes
    assert [o for o in outcomes if o.status not in (200, 503)] == []  # no 5xx but 503, no hang, no reset
    assert max(o.elapsed for o in outcomes) <= BOUND_S
    unavailable = [o for o in outcomes if o.status == 503]
    assert len(unavailable) >= 2 * SENDERS
    for outcome in unavailable:
        assert outcome.body["status"] == 503
        assert outcome.body["error"] == "Service Unavailable"
        assert outcome.body["code"] == "service_unavailable"
        assert outcome.body["message"].startswith("events were not stored, retry")
        assert outcome.retry_after == "1"
    # while the broker was really down (after stop() returned, before the restart) nothing got a 200
    assert [o for o in outcomes
            if o.status == 200 and o.began > stopped_at and o.began + o.elapsed < restarted_at] == []

    accepted = [o for o in outcomes if o.status == 200]
    records: dict[str, list[dict[str, Any]]] = {}
    for record in read_since(services.kafka_bootstrap, TOPIC, start):
        if record.key.startswith(f"{org.id}:".encode()):
            message = orjson.loads(record.value)
            assert record.key == f"{org.id}:{message['external_subscription_id']}".encode()
            records.setdefault(message["lago_id"], []).append(message)
    for outcome in accepted:
        for sent, echoed in zip(outcome.sent, outcome.body["events"], strict=True):
            assert len(records.get(echoed["lago_id"], [])) == 1, f"accepted event {sent} not in the topic once"
            [message] = records[echoed["lago_id"]]
            assert {k: message[k] for k in ("organization_id", "transaction_id", "code", "external_subscription_id",
                                            "properties", "timestamp_us")} == {
                "organization_id": org.id, "transaction_id": sent["transaction_id"], "code": sent["code"],
                "external_subscription_id": sent["external_subscription_id"], "properties": sent["properties"],
                "timestamp_us": sent["timestamp"] * 1_000_000}
