"""The aggregator without Faust: the same BatchProcessor driven by a plain confluent-kafka consumer.

Chosen with METERLINE_AGGREGATOR_RUNTIME=kafka (the default is `faust`). It takes up to
`aggregator_batch_size` messages per `consume()` call from librdkafka, in C, and runs its batches
one after the other (no pipeline); `make bench` measures it beside the Faust worker
(`aggregator_kafka_loop_events_per_s`) as a reference point for the Faust runtime's overhead.

Exactly once, as with Faust (aggregator/processor.py): a batch is processed (Redis, archive,
rejects) and only then are the offsets committed, synchronously. librdkafka runs rebalance
callbacks inside `consume()`, never while a batch is processed, so a commit always covers exactly
the processed messages. A transient failure retries the batch without consuming or committing; a
stop (SIGTERM/SIGINT) between batches commits and leaves, one in the middle of a batch leaves
without committing it (the next worker processes it again, as a no-op where it was applied).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Sequence
from functools import partial

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

from aggregator.archive import EventArchive
from aggregator.behind import BehindFlag, backlog
from aggregator.catalog import SubscriptionCatalog
from aggregator.heap import collect_regularly, settle
from aggregator.processor import BatchProcessor, TransientError, process_until_done
from aggregator.stats import Totals, batch_done
from aggregator.touched import TouchedPair, touched_messages
from core.clients import database, idempotent_producer_config, redis_client
from core.db.catalog_changes import CatalogChanges
from core.logs import work_id
from core.settings import Settings
from core.usage_state.redis_state import UsageState

log = logging.getLogger("meterline.aggregator")


def consumer_config(settings: Settings) -> dict[str, object]:
    return {
        "bootstrap.servers": settings.kafka_bootstrap, "group.id": settings.consumer_group,
        "enable.auto.commit": False, "auto.offset.reset": "earliest",
        # a worker killed with SIGKILL is replaced within seconds (as the Faust worker's settings)
        "session.timeout.ms": 10_000, "heartbeat.interval.ms": 1_000,
        # a batch held back by an outage does not poll: allow long outages before leaving the group
        "max.poll.interval.ms": 900_000, "log_level": 3,
    }


class Publisher:
    """Publishes a batch's rejected events and touched pairs, and waits until Kafka acknowledged them."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.producer = Producer(idempotent_producer_config(settings.kafka_bootstrap))

    async def reject(self, messages: Sequence[tuple[bytes, bytes]]) -> None:
        await self._publish("rejected events", [(self.settings.rejected_topic, key or None, None, value)
                                                for key, value in messages])

    async def announce(self, pairs: Sequence[TouchedPair]) -> None:
        await self._publish("touched pairs", [(self.settings.touched_topic, None, partition, value) for partition, value
                                              in touched_messages(pairs, self.settings.events_partitions)])

    async def _publish(self, what: str, messages: list[tuple[str, bytes | None, int | None, bytes]]) -> None:
        failures: list[str] = []

        def delivered(error: object, _message: object) -> None:
            if error is not None:
                failures.append(str(error))

        for topic, key, partition, value in messages:
            if partition is None:
                self.producer.produce(topic, key=key, value=value, on_delivery=delivered)
            else:
                self.producer.produce(topic, key=key, value=value, partition=partition, on_delivery=delivered)
        remaining = await asyncio.to_thread(self.producer.flush, 30)
        if remaining or failures:
            raise TransientError(f"Kafka did not acknowledge {what}: {failures[:3] or remaining}")


async def run_loop(settings: Settings) -> None:
    engine = database(settings, pool_size=4)
    redis = redis_client(settings.redis_url, timeout_s=5)
    publisher = Publisher(settings)
    catalog = SubscriptionCatalog(engine, changes=CatalogChanges(engine), read_alerts=False)
    processor = BatchProcessor(catalog, UsageState(redis), EventArchive(engine),
                               publisher.reject, publisher.announce)
    consumer = Consumer(consumer_config(settings))
    consumer.subscribe([settings.events_topic])
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    totals = Totals()
    behind = BehindFlag(redis)
    settle()
    collecting = asyncio.ensure_future(collect_regularly())
    log.info("Ready: consuming %s as group %s (confluent-kafka runtime)", settings.events_topic,
             settings.consumer_group)
    try:
        while not stopping.is_set():
            messages = await asyncio.to_thread(consumer.consume, settings.aggregator_batch_size,
                                               settings.aggregator_batch_within_s)
            payloads: list[bytes] = []
            last_offsets: dict[tuple[str, int], int] = {}  # of each partition, the batch's last
            for message in messages:
                value = message.value()
                if message.error() is not None:
                    log.warning("consumer error: %s", message.error())
                elif value is not None:
                    payloads.append(value)
                    last_offsets[(str(message.topic()), int(message.partition() or 0))] = int(message.offset() or 0)
            if not payloads:
                continue
            work_id.set(f"batch-{os.getpid()}-{totals.batches + 1}")
            await behind.update(len(payloads) + backlog(last_offsets, partial(cached_end, consumer)), done=False)
            began = loop.time()
            work = asyncio.ensure_future(process_until_done(processor, payloads))
            stop_wait = asyncio.ensure_future(stopping.wait())
            await asyncio.wait({work, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
            stop_wait.cancel()
            if not work.done():
                work.cancel()
                log.warning("stopping in the middle of a batch of %d: leaving it uncommitted", len(payloads))
                return
            result = work.result()
            try:
                consumer.commit(asynchronous=False)
            except KafkaException as exc:  # e.g. the partitions moved: their new owner redoes it as no-ops
                log.warning("offsets of a processed batch not committed: %s", exc)
            await behind.update(backlog(last_offsets, partial(cached_end, consumer)), done=True)
            await batch_done(redis, totals, result, len(payloads), loop.time() - began)
    finally:
        collecting.cancel()
        consumer.close()
        await redis.aclose()
        await engine.dispose()


def cached_end(consumer: Consumer, partition: tuple[str, int]) -> int | None:
    """A partition's end as the last fetch reported it (no request to the broker)."""
    topic, number = partition
    try:
        _, end = consumer.get_watermark_offsets(TopicPartition(topic, number), cached=True)
    except KafkaException:
        return None
    return end if end >= 0 else None


def run_kafka_loop(settings: Settings) -> None:
    asyncio.run(run_loop(settings))
