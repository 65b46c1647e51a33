"""The aggregators first: while an aggregator has a backlog, the alerts workers evaluate less.

An aggregator with more than BEHIND_EVENTS events still to count (in Kafka past a batch it takes, and that
batch; a backlog, not a live stream's batch and next fetch) says so before it processes the batch (and so
before the alerts workers hear of its pairs), says it again as each batch is done, and takes it back once it
is done with a batch that leaves no more than that (a drain's tail is its last batches, processed after the
last one was taken: taking a batch never takes it back). While any aggregator says it, the alerts workers
evaluate within a smaller share of their time (aggregator/alerts_app.py).

Each aggregator has its own entry in the Redis sorted set BEHIND_KEY (member: the worker; score: when its
word lapses, in ms), so one that caught up takes back only its own. A word lapses BEHIND_TTL_MS after it was
last said: longer than a backlog's batch takes (over a second when it touches 10,000 subscriptions; with 1 s
the word lapsed halfway through such batches), and the most an aggregator that died behind holds the alerts
workers back. Best effort both ways: a Redis error never holds back a batch nor an evaluation.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, Hashable, Mapping
from typing import TypeVar

from core.clients import REDIS_FAILED, AnyRedis, once_more_on_connection_error

log = logging.getLogger("meterline.aggregator")
BEHIND_KEY = "ml:aggregators:behind"
BEHIND_EVENTS = 5_000
BEHIND_TTL_MS = 5_000

Partition = TypeVar("Partition", bound=Hashable)


def backlog(last_offsets: Mapping[Partition, int], highwater: Callable[[Partition], int | None]) -> int:
    """Events waiting in Kafka past a batch: on each of its partitions, the end Kafka reported with the last
    fetch (`highwater`, None when unknown) past the batch's last offset there. Pure."""
    ends = {partition: highwater(partition) for partition in last_offsets}
    return sum(max(end - offset - 1, 0) for partition, offset in last_offsets.items()
               if (end := ends[partition]) is not None)


def _now_ms() -> int:
    return int(time.time() * 1000)


class BehindFlag:
    """What one aggregator tells the alerts workers, batch by batch."""

    def __init__(self, client: AnyRedis, key: str = BEHIND_KEY, worker: str | None = None):
        self.client = client
        self.key = key
        self.worker = worker or f"{socket.gethostname()}:{os.getpid()}"
        self.said = False

    async def update(self, waiting: int, *, done: bool) -> None:
        """`waiting` events are still to count: when a batch is taken (`done` False), that batch's and those in
        Kafka past it (`backlog`); when one is done, those past it. Only a batch done takes the word back."""
        behind = waiting > BEHIND_EVENTS
        if not behind and not (self.said and done):
            return

        async def write() -> None:
            if behind:
                now = _now_ms()
                async with self.client.pipeline(transaction=True) as pipe:
                    pipe.zadd(self.key, {self.worker: now + BEHIND_TTL_MS})
                    pipe.zremrangebyscore(self.key, "-inf", now)  # words of aggregators gone
                    pipe.pexpire(self.key, BEHIND_TTL_MS)
                    await pipe.execute()
            else:
                await self.client.zrem(self.key, self.worker)

        try:
            await once_more_on_connection_error(write)
            self.said = behind
        except REDIS_FAILED as exc:
            log.warning("could not tell the alerts workers whether the aggregator is behind: %s", exc)


async def aggregators_behind(client: AnyRedis, key: str = BEHIND_KEY) -> bool:
    """Whether an aggregator says it has a backlog now; not when Redis cannot say."""
    try:
        return bool(await client.zcount(key, _now_ms(), "+inf"))
    except REDIS_FAILED:
        return False
