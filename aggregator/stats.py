"""Counting what the aggregator and the alerts worker do: their Prometheus series and the pipeline-wide totals.

The totals go to the Redis hash `core.metrics.STATS_KEY` (applied, deduplicated, rejected:<reason> from
the aggregators; alerts_evaluated, alerts_fired from the alerts workers), summed over every worker, which
the API's /metrics and /ops pages read; what alerts fired last goes to the list `RECENT_ALERTS_KEY` (the
ops page's).
They are counted after a batch went through, best effort: a Redis hiccup here never holds back a
batch whose usage is already applied and archived (it only leaves the counters a batch short). A
connection Redis dropped meanwhile (a restart, a failover) is not a hiccup: the write is run once more
on a new one (core.clients.once_more_on_connection_error).
"""

from __future__ import annotations

import logging
import time
from bisect import bisect_right
from collections.abc import Sequence
from typing import Any

import orjson
from prometheus_client import Histogram

from aggregator.alerts import Evaluated
from aggregator.processor import BatchResult
from core.clients import REDIS_FAILED, AnyRedis, once_more_on_connection_error
from core.metrics import (
    AGGREGATOR_APPLY_LATENCY,
    AGGREGATOR_BATCH_SIZE,
    AGGREGATOR_EVENTS,
    EVENT_TO_VISIBLE,
    RECENT_ALERTS,
    RECENT_ALERTS_KEY,
    STATS_KEY,
)

log = logging.getLogger("meterline.aggregator")
LOG_EVERY_S = 10.0
SLOW_EVALUATION_S = 0.5  # an evaluation taking longer is logged


def observe_latencies(histogram: Histogram, now_us: float, moments_us: Sequence[int]) -> None:
    """`histogram.observe(max(now_us - m, 0.0) / 1_000_000)` for every moment m, with no Python step
    per moment: sorted latest first, the moments' latencies are in ascending order, so each bucket's
    count is one bisection (C) and the sum one subtraction. A batch has thousands of events, and
    observe() takes a lock and scans the bounds per call. Reaches into prometheus-client's
    Histogram (`_upper_bounds`, `_buckets`, `_sum`; pinned in pyproject.toml), so a unit test holds
    it to the very buckets observe() fills."""
    if not moments_us:
        return
    latest_first = sorted(moments_us, reverse=True)

    def latency(moment_us: int) -> float:
        return max(now_us - moment_us, 0.0) / 1_000_000

    counted = 0
    for bucket, bound in zip(histogram._buckets, histogram._upper_bounds, strict=True):
        within = bisect_right(latest_first, bound, key=latency)
        if within > counted:
            bucket.inc(within - counted)
            counted = within
    past = latest_first[bisect_right(latest_first, 0.0, key=latency):]  # a moment after now adds 0
    if past:  # sum(now_us - m): the part in whole microseconds summed exactly, as integers
        latest = past[0]
        histogram._sum.inc((len(past) * (now_us - latest) + (len(past) * latest - sum(past))) / 1_000_000)


def stats_increments(result: BatchResult) -> dict[str, int]:
    """The `ml:stats` fields a batch adds to (pure)."""
    fields = {"applied": result.applied, "deduplicated": result.duplicates}
    fields.update({f"rejected:{reason}": count for reason, count in result.rejected.items()})
    return {name: count for name, count in fields.items() if count}


async def record(client: AnyRedis, result: BatchResult, batch_size: int, seconds: float) -> None:
    AGGREGATOR_BATCH_SIZE.observe(batch_size)
    AGGREGATOR_APPLY_LATENCY.observe(seconds)
    AGGREGATOR_EVENTS.labels("applied", "").inc(result.applied)
    AGGREGATOR_EVENTS.labels("deduplicated", "").inc(result.duplicates)
    for reason, count in result.rejected.items():
        AGGREGATOR_EVENTS.labels("rejected", reason).inc(count)
    # acceptance at the ingest -> readable in current usage
    observe_latencies(EVENT_TO_VISIBLE, result.visible_at * 1_000_000, result.received_at_us)
    await _add_totals(client, stats_increments(result), [], f"a batch of {batch_size}")


async def alerts_done(client: AnyRedis, report: Evaluated, seconds: float) -> None:
    """The pipeline totals of one evaluation by the alerts worker (its own series: aggregator/alerts.py)."""
    if report.fired or seconds > SLOW_EVALUATION_S:
        log.info("evaluated %d alerts and threshold sets, %d fired, in %.3f s", report.evaluated, report.fired, seconds)
    increments = {"alerts_evaluated": report.evaluated, "alerts_fired": report.fired}
    await _add_totals(client, {name: count for name, count in increments.items() if count}, report.recent,
                      "an evaluation")


async def _add_totals(client: AnyRedis, increments: dict[str, int], recent: list[dict[str, Any]], what: str) -> None:
    if not increments:
        return
    # one pipeline per key, so each goes to one node of a cluster: all of it runs or none (see
    # once_more_on_connection_error)
    async def add() -> None:
        async with client.pipeline(transaction=False) as pipe:
            for name, count in increments.items():
                pipe.hincrby(STATS_KEY, name, count)
            await pipe.execute()

    async def push() -> None:  # newest first, the last RECENT_ALERTS kept
        async with client.pipeline(transaction=False) as pipe:
            pipe.lpush(RECENT_ALERTS_KEY, *(orjson.dumps(fired) for fired in recent))
            pipe.ltrim(RECENT_ALERTS_KEY, 0, RECENT_ALERTS - 1)
            await pipe.execute()

    try:
        await once_more_on_connection_error(add)
        if recent:
            await once_more_on_connection_error(push)
    except REDIS_FAILED as exc:  # any: this write never holds back a batch (an OOM or READONLY answer included)
        log.warning("pipeline totals not updated for %s: %s", what, exc)


class Totals:
    """Running counts since start of this worker, logged at most every LOG_EVERY_S."""

    def __init__(self) -> None:
        self.result = BatchResult()
        self.events = 0
        self.batches = 0
        self._logged = time.monotonic()

    def add(self, result: BatchResult) -> None:
        self.batches += 1
        self.events += result.applied + result.duplicates + sum(result.rejected.values())
        self.result.applied += result.applied
        self.result.duplicates += result.duplicates
        self.result.archived += result.archived
        for reason, count in result.rejected.items():
            self.result.rejected[reason] = self.result.rejected.get(reason, 0) + count

    def maybe_log(self) -> None:
        if time.monotonic() - self._logged >= LOG_EVERY_S:
            self._logged = time.monotonic()
            counts = self.result
            log.info("since start: batches=%d events=%d applied=%d duplicates=%d archived=%d rejected=%s",
                     self.batches, self.events, counts.applied, counts.duplicates, counts.archived, counts.rejected)


async def batch_done(client: AnyRedis, totals: Totals, result: BatchResult, size: int, seconds: float) -> None:
    """Everything counted once a batch went through (either runtime): metrics, pipeline totals, logs."""
    await record(client, result, size, seconds)
    totals.add(result)
    if result.rejected:
        log.info("batch of %d: %d events rejected: %s", size, sum(result.rejected.values()), result.rejected)
    totals.maybe_log()
