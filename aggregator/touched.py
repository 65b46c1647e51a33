"""What a batch tells the alerts worker: the (subscription, period) pairs whose usage it changed.

The aggregator publishes them to the `usage.touched` topic before it acknowledges the batch
(aggregator/processor.py, step 4), and the alerts worker evaluates them (aggregator/alerts_app.py).
Only watched subscriptions' pairs are sent: those with alerts or progressive billing thresholds.

A message carries many pairs: one message per pair cost the aggregator a producer call per
subscription a batch touched (thousands). Every pair of an external_id goes to the same partition
(its alerts belong to it, whichever subscription of its chain the events counted for), so one alerts
worker evaluates it at a time (a rebalance aside, which the firing's row lock covers:
core/db/thresholds.py). The topic has as many partitions as the events topic (meterline/stack/topics.py
checks). Pure.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from dataclasses import dataclass

import orjson


@dataclass(frozen=True, order=True)
class TouchedPair:
    organization_id: str
    external_id: str  # the subscription's external_id: how the catalog finds it
    subscription_id: str  # which subscription of that external_id's chain the events counted for
    period_key: str

    @property
    def scope(self) -> tuple[str, str]:
        return self.organization_id, self.external_id


def partition_of(organization_id: str, external_id: str, partitions: int) -> int:
    return zlib.crc32(f"{organization_id}:{external_id}".encode()) % partitions


def touched_messages(pairs: Iterable[TouchedPair], partitions: int) -> list[tuple[int, bytes]]:
    """(partition, message value) for these pairs: one message per partition that has any."""
    by_partition: dict[int, list[tuple[str, str, str, str]]] = {}
    for pair in pairs:
        by_partition.setdefault(partition_of(pair.organization_id, pair.external_id, partitions), []).append(
            (pair.organization_id, pair.external_id, pair.subscription_id, pair.period_key))
    return [(partition, orjson.dumps(rows)) for partition, rows in sorted(by_partition.items())]


def read_touched(value: bytes) -> set[TouchedPair]:
    """The pairs of one message (ValueError if it is not one of `touched_messages`)."""
    try:
        return {TouchedPair(*(str(part) for part in row)) for row in orjson.loads(value)}
    except (orjson.JSONDecodeError, TypeError) as exc:
        raise ValueError(f"not a usage.touched message: {value[:200]!r}") from exc
