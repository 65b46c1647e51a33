"""Reading the events topic in tests: remember where it ends, later read everything written since."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

from confluent_kafka import Consumer, TopicPartition


@dataclass(frozen=True)
class Record:
    partition: int
    offset: int
    key: bytes
    value: bytes


def _consumer(bootstrap: str) -> Consumer:
    return Consumer({"bootstrap.servers": bootstrap, "group.id": f"test-{uuid.uuid4().hex}",
                     "enable.auto.commit": False, "enable.partition.eof": False, "log_level": 3})


def end_offsets(bootstrap: str, topic: str, timeout_s: float = 30) -> dict[int, int]:
    consumer = _consumer(bootstrap)
    try:
        partitions = consumer.list_topics(topic, timeout=timeout_s).topics[topic].partitions
        return {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout_s)[1]
                for p in partitions}
    finally:
        consumer.close()


def read_since(bootstrap: str, topic: str, start: dict[int, int], timeout_s: float = 60) -> list[Record]:
    """Every record written after `start` (from end_offsets) up to the topic's current end."""
    stop = end_offsets(bootstrap, topic)
    wanted = {p: end for p, end in stop.items() if end > start.get(p, 0)}
    consumer = _consumer(bootstrap)
    records: list[Record] = []
    try:
        consumer.assign([TopicPartition(topic, p, start.get(p, 0)) for p in wanted])
        positions = {p: start.get(p, 0) for p in wanted}
        deadline = time.monotonic() + timeout_s
        while any(positions[p] < wanted[p] for p in wanted):
            if time.monotonic() > deadline:
                raise AssertionError(f"could not read the topic up to {wanted}, reached {positions}")
            for message in consumer.consume(1000, timeout=1.0):
                if message.error():
                    continue
                partition, offset = message.partition(), message.offset()
                if offset < wanted[partition]:
                    records.append(Record(partition, offset, message.key(), message.value()))
                positions[partition] = max(positions[partition], offset + 1)
    finally:
        consumer.close()
    return records
