"""The ingest's Kafka publisher against the real broker: what lands in the topic, and how it fails."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
from confluent_kafka import KafkaError, Producer

from ingest.publisher import EventPublisher, PublishError
from schemas.events import event_from_message, event_to_message, parse_event
from tests.conftest import Services
from tests.kafka_reading import end_offsets, read_since

TOPIC = "events"


def events(organization_id: str, count: int, subscriptions: int = 7) -> list:
    now_us = time.time_ns() // 1000
    return [parse_event({"transaction_id": f"tr_{i}", "code": "api_calls",
                         "external_subscription_id": f"sub_{i % subscriptions}", "timestamp": 1_781_049_600 + i,
                         "properties": {"i": i, "user": f"u{i}"}},
                        organization_id, now_us) for i in range(count)]


def test_every_event_is_in_the_topic_keyed_by_org_and_subscription(services: Services) -> None:
    organization_id = str(uuid.uuid4())
    batch = events(organization_id, 250)
    start = end_offsets(services.kafka_bootstrap, TOPIC)

    async def publish() -> None:
        publisher = EventPublisher(services.kafka_bootstrap, TOPIC, timeout_s=8)
        try:
            await asyncio.gather(publisher.publish(batch[:100]), publisher.publish(batch[100:]))
        finally:
            assert publisher.close() == 0

    asyncio.run(publish())
    mine = [r for r in read_since(services.kafka_bootstrap, TOPIC, start)
            if r.key.startswith(organization_id.encode())]
    assert len(mine) == 250
    by_lago_id = {event_from_message(r.value).lago_id: r for r in mine}
    for event in batch:
        record = by_lago_id[event.lago_id]
        assert record.value == event_to_message(event)  # byte for byte as produced
        assert record.key == f"{organization_id}:{event.external_subscription_id}".encode()
        assert event_from_message(record.value) == event
    # one subscription, one partition: the aggregator sees a subscription's events in order
    partitions = {}
    for record in mine:
        partitions.setdefault(record.key, set()).add(record.partition)
    assert all(len(found) == 1 for found in partitions.values())
    # within a partition, a subscription's events keep the order they were sent in
    for key in partitions:
        sent = [e.lago_id for e in batch if f"{organization_id}:{e.external_subscription_id}".encode() == key]
        stored = [event_from_message(r.value).lago_id for r in sorted(mine, key=lambda r: r.offset) if r.key == key]
        assert stored == sent


def test_batched_produce_partitions_like_single_produce(services: Services) -> None:
    """produce_batch must hash keys as produce() does, or a subscription would straddle partitions."""
    organization_id = str(uuid.uuid4())
    batch = events(organization_id, 40, subscriptions=40)
    start = end_offsets(services.kafka_bootstrap, TOPIC)
    asyncio.run(_publish_and_close(services.kafka_bootstrap, batch))
    single = Producer({"bootstrap.servers": services.kafka_bootstrap, "enable.idempotence": True})
    for event in batch:
        single.produce(TOPIC, b"probe", event.partition_key)
    assert single.flush(10) == 0
    records = [r for r in read_since(services.kafka_bootstrap, TOPIC, start)
               if r.key.startswith(organization_id.encode())]
    assert len(records) == 80
    partitions: dict[bytes, set[int]] = {}
    for record in records:
        partitions.setdefault(record.key, set()).add(record.partition)
    assert len(partitions) == 40
    assert all(len(found) == 1 for found in partitions.values())


async def _publish_and_close(bootstrap: str, batch: list) -> None:
    publisher = EventPublisher(bootstrap, TOPIC, timeout_s=8)
    try:
        await publisher.publish(batch)
    finally:
        publisher.close()


def test_unreachable_broker_fails_within_the_timeout() -> None:
    async def publish() -> float:
        publisher = EventPublisher("127.0.0.1:1", TOPIC, timeout_s=2)
        began = time.monotonic()
        try:
            with pytest.raises(PublishError):
                await publisher.publish(events(str(uuid.uuid4()), 3))
            return time.monotonic() - began
        finally:
            publisher.close(timeout_s=0.1)

    elapsed = asyncio.run(publish())
    assert 1.5 < elapsed < 3.0


def test_close_flushes_what_is_still_queued(services: Services) -> None:
    """Graceful shutdown: events handed to the producer before close() are all delivered."""
    organization_id = str(uuid.uuid4())
    batch = events(organization_id, 500)
    start = end_offsets(services.kafka_bootstrap, TOPIC)

    async def publish_then_close_at_once() -> int:
        publisher = EventPublisher(services.kafka_bootstrap, TOPIC, timeout_s=8)
        tasks = [asyncio.create_task(publisher.publish(batch[i:i + 100])) for i in range(0, 500, 100)]
        await asyncio.sleep(0)  # every task has produced; none has its acknowledgement yet
        remaining = publisher.close()
        await asyncio.gather(*tasks)  # and every request would have been answered 200
        return remaining

    assert asyncio.run(publish_then_close_at_once()) == 0
    mine = [r for r in read_since(services.kafka_bootstrap, TOPIC, start)
            if r.key.startswith(organization_id.encode())]
    assert sorted(event_from_message(r.value).lago_id for r in mine) == sorted(e.lago_id for e in batch)


def test_a_fatal_producer_error_is_recovered_with_a_new_producer(services: Services) -> None:
    """librdkafka reports a fatal error (the idempotent producer's state is lost) through error_cb;
    the next publish replaces the producer instead of failing forever."""
    organization_id = str(uuid.uuid4())
    batch = events(organization_id, 10)
    start = end_offsets(services.kafka_bootstrap, TOPIC)

    async def scenario() -> bool:
        publisher = EventPublisher(services.kafka_bootstrap, TOPIC, timeout_s=8)
        try:
            await publisher.publish(batch[:5])
            broken = publisher._producer
            publisher._on_error(KafkaError(KafkaError._FATAL, "simulated fatal error", fatal=True))
            await publisher.publish(batch[5:])
            return publisher._producer is not broken
        finally:
            publisher.close()

    assert asyncio.run(scenario())
    mine = [r for r in read_since(services.kafka_bootstrap, TOPIC, start) if r.key.startswith(organization_id.encode())]
    assert sorted(event_from_message(r.value).lago_id for r in mine) == sorted(e.lago_id for e in batch)
