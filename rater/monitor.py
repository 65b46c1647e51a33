"""The API's view of the whole pipeline: consumer lag (the aggregators' on the events, the alerts workers' on the
touched pairs) and the workers' totals, refreshed every few seconds.

Feeds `/metrics` (pipeline-wide series) and the ops page's `/ops/data`. Reading Kafka offsets is
blocking, so it runs in a thread; a failed refresh keeps the last good sample and records the error.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

import orjson
from redis.asyncio import Redis

from core.lag import LagReader, LagSample, rates
from core.metrics import RECENT_ALERTS, RECENT_ALERTS_KEY, STATS_KEY

log = logging.getLogger("meterline.monitor")


def _int_stats(raw: Mapping[bytes | str, bytes | str]) -> dict[str, int]:
    stats = {}
    for key, value in raw.items():
        try:
            stats[key.decode() if isinstance(key, bytes) else key] = int(value)
        except ValueError:
            continue
    return stats


def throughput(history: deque[tuple[float, int, int]]) -> dict[str, float]:
    """Events/s accepted into the topic and applied by the aggregators, over the kept history."""
    if len(history) < 2:
        return {"accepted_per_s": 0.0, "applied_per_s": 0.0}
    (t0, end0, applied0), (t1, end1, applied1) = history[0], history[-1]
    elapsed = max(t1 - t0, 1e-9)
    return {"accepted_per_s": max(end1 - end0, 0) / elapsed, "applied_per_s": max(applied1 - applied0, 0) / elapsed}


class PipelineMonitor:
    def __init__(self, reader_factory: Callable[[], LagReader], redis: Redis, interval_s: float = 2.0,
                 alerts_reader_factory: Callable[[], LagReader] | None = None):
        self._reader_factory = reader_factory
        self._reader: LagReader | None = None
        self._alerts_reader_factory = alerts_reader_factory
        self._alerts_reader: LagReader | None = None
        self.alerts_lag: LagSample | None = None
        self.redis = redis
        self.interval_s = interval_s
        self.previous: LagSample | None = None
        self.lag: LagSample | None = None
        self.stats: dict[str, int] = {}
        self.recent_alerts: list[dict[str, Any]] = []
        self.error: str | None = None
        self.refreshed_at: float | None = None
        self.history: deque[tuple[float, int, int]] = deque(maxlen=6)

    def snapshot(self) -> tuple[LagSample | None, dict[str, int], LagSample | None]:
        return self.lag, self.stats, self.alerts_lag

    async def refresh(self) -> None:
        try:
            if self._reader is None:
                self._reader = await asyncio.to_thread(self._reader_factory)
            sample = await asyncio.to_thread(self._reader.read)
            stats = _int_stats(await self.redis.hgetall(STATS_KEY))
            recent = [orjson.loads(raw) for raw in await self.redis.lrange(RECENT_ALERTS_KEY, 0, RECENT_ALERTS - 1)]
        except Exception as exc:  # any outage of Kafka or Redis: keep the last sample, say why
            self.error = f"{type(exc).__name__}: {exc}"
            return
        self.previous, self.lag, self.stats, self.error = self.lag, sample, stats, None
        try:  # on its own: the events' lag and the totals go on without it
            if self._alerts_reader is None and self._alerts_reader_factory is not None:
                self._alerts_reader = await asyncio.to_thread(self._alerts_reader_factory)
            self.alerts_lag = await asyncio.to_thread(self._alerts_reader.read) if self._alerts_reader else None
        except Exception as exc:  # the alerts worker's topic missing, Kafka away: shown as unknown
            log.warning("the alerts workers' lag could not be read: %r", exc)
            self.alerts_lag = None
        self.recent_alerts = recent
        self.refreshed_at = time.time()
        self.history.append((sample.taken_at, sample.total_end, stats.get("applied", 0)))

    async def run(self) -> None:
        while True:
            await self.refresh()
            await asyncio.sleep(self.interval_s)

    def close(self) -> None:
        for reader in (self._reader, self._alerts_reader):
            if reader is not None:
                reader.close()

    def ops_data(self) -> dict[str, Any]:
        per_partition = rates(self.previous, self.lag) if self.lag else {}
        partitions = [
            {"partition": p.partition, "committed": p.committed, "end": p.end, "lag": p.lag,
             "rate_per_s": round(per_partition.get(p.partition, 0.0), 1)}
            for p in (self.lag.partitions if self.lag else ())
        ]
        rejected = {k.split(":", 1)[1]: v for k, v in self.stats.items() if k.startswith("rejected:")}
        return {
            "refreshed_at": self.refreshed_at,
            "error": self.error,
            "group": self.lag.group if self.lag else None,
            "partitions": partitions,
            "total_lag": self.lag.total_lag if self.lag else None,
            "throughput": {k: round(v, 1) for k, v in throughput(self.history).items()},
            "events": {"accepted": self.lag.total_end if self.lag else None,
                       "applied": self.stats.get("applied", 0),
                       "deduplicated": self.stats.get("deduplicated", 0)},
            "rejected": rejected,
            "alerts": {"evaluated": self.stats.get("alerts_evaluated", 0), "fired": self.stats.get("alerts_fired", 0),
                       # touched pairs' messages the alerts workers have not committed yet
                       "lag": self.alerts_lag.total_lag if self.alerts_lag else None,
                       "recent": self.recent_alerts},
            "last_invoice_run": {
                "at": self.stats.get("biller_last_run_at"),
                "invoices": self.stats.get("biller_last_run_invoices"),
                "runs": self.stats.get("biller_runs", 0),
            },
        }
