"""Consumer lag per partition: the group's committed offset against the partition's end offset.

`LagReader` is the thin Kafka adapter; `LagSample` and `rates` are pure, so the table, the
Prometheus gauge and the ops page all compute the same numbers.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from confluent_kafka import Consumer, KafkaException, TopicPartition


@dataclass(frozen=True)
class PartitionLag:
    topic: str
    partition: int
    committed: int  # -1 when the group has committed nothing yet
    end: int

    @property
    def lag(self) -> int:
        start = self.committed if self.committed >= 0 else 0
        return max(self.end - start, 0)


@dataclass(frozen=True)
class LagSample:
    taken_at: float  # time.monotonic()
    group: str
    partitions: tuple[PartitionLag, ...]

    @property
    def total_lag(self) -> int:
        return sum(p.lag for p in self.partitions)

    @property
    def total_end(self) -> int:
        return sum(p.end for p in self.partitions)


def rates(previous: LagSample | None, current: LagSample) -> dict[int, float]:
    """Events per second committed by the group on each partition since the previous sample."""
    if previous is None or current.taken_at <= previous.taken_at:
        return {p.partition: 0.0 for p in current.partitions}
    elapsed = current.taken_at - previous.taken_at
    before = {p.partition: max(p.committed, 0) for p in previous.partitions}
    return {p.partition: max(max(p.committed, 0) - before.get(p.partition, 0), 0) / elapsed
            for p in current.partitions}


class LagReader:
    """Reads committed and end offsets without joining the group (no subscription, no rebalance)."""

    def __init__(self, bootstrap: str, group: str, topic: str, timeout_s: float = 5.0):
        self.group = group
        self.topic = topic
        self.timeout_s = timeout_s
        self._consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                                   "enable.auto.commit": False, "log_level": 3})

    def read(self) -> LagSample:
        metadata = self._consumer.list_topics(self.topic, timeout=self.timeout_s).topics.get(self.topic)
        if metadata is None or metadata.error is not None:
            raise KafkaException(f"topic {self.topic!r} not found")
        partitions = [TopicPartition(self.topic, p) for p in sorted(metadata.partitions)]
        committed = self._consumer.committed(partitions, timeout=self.timeout_s)
        rows = []
        for tp in committed:
            _, end = self._consumer.get_watermark_offsets(TopicPartition(self.topic, tp.partition),
                                                          timeout=self.timeout_s, cached=False)
            rows.append(PartitionLag(self.topic, tp.partition, tp.offset if tp.offset >= 0 else -1, end))
        return LagSample(time.monotonic(), self.group, tuple(rows))

    def close(self) -> None:
        self._consumer.close()


def wait_caught_up(bootstrap: str, group: str, topic: str, deadline: float, poll_s: float = 0.02) -> None:
    """Return once `group` has committed everything in `topic` so far; TimeoutError at `deadline` (monotonic)."""
    reader = LagReader(bootstrap, group, topic)
    try:
        while reader.read().total_lag > 0:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{group} did not catch up on {topic}")
            time.sleep(poll_s)
    finally:
        reader.close()


def table_rows(sample: LagSample, per_partition_rate: dict[int, float]) -> Sequence[tuple[str, ...]]:
    rows = [
        (str(p.partition), str(p.committed) if p.committed >= 0 else "-", str(p.end), str(p.lag),
         f"{per_partition_rate.get(p.partition, 0.0):,.0f}/s")
        for p in sample.partitions
    ]
    rows.append(("total", "", str(sample.total_end), str(sample.total_lag),
                 f"{sum(per_partition_rate.values()):,.0f}/s"))
    return rows
