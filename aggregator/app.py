"""The Faust worker. The agent body only batches, retries transient failures and logs."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import faust
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import create_async_engine

from aggregator.archive import EventArchive
from aggregator.catalog import SubscriptionCatalog
from aggregator.processor import BatchProcessor, TransientError
from aggregator.redis_state import UsageState
from meterline.settings import Settings

log = logging.getLogger("meterline.aggregator")
MAX_BACKOFF_S = 5.0


def create_app(settings: Settings) -> faust.App:
    app = faust.App(
        settings.consumer_group,
        broker=f"kafka://{settings.kafka_bootstrap}",
        store="memory://",
        value_serializer="raw",
        key_serializer="raw",
        web_enabled=False,
        topic_replication_factor=1,
        topic_partitions=settings.events_partitions,
        consumer_auto_offset_reset="earliest",
        broker_commit_every=settings.aggregator_batch_size,
        broker_commit_interval=1.0,
        stream_buffer_maxsize=max(4 * settings.aggregator_batch_size, 4096),
        producer_acks=-1,
        # A worker killed with SIGKILL leaves its group membership behind until the session times
        # out; a short session lets its replacement take the partitions over in seconds.
        broker_session_timeout=10.0,
        broker_heartbeat_interval=1.0,
    )
    events = app.topic(settings.events_topic, value_type=bytes, key_type=bytes, internal=False)
    rejected = app.topic(settings.rejected_topic, value_type=bytes, key_type=bytes, internal=False)
    resources: dict[str, Any] = {}

    async def reject(key: bytes, value: bytes) -> None:
        delivery = await rejected.send(key=key or None, value=value)
        await delivery

    @app.task
    async def open_stores() -> None:
        engine = create_async_engine(settings.sqlalchemy_url, pool_size=4, pool_pre_ping=True)
        redis = Redis.from_url(settings.redis_url, socket_timeout=5, socket_connect_timeout=3)
        resources["processor"] = BatchProcessor(SubscriptionCatalog(engine), UsageState(redis),
                                                EventArchive(engine), reject)

    @app.agent(events, concurrency=1)
    async def aggregate(stream: faust.StreamT) -> None:
        while "processor" not in resources:
            await asyncio.sleep(0.05)
        processor: BatchProcessor = resources["processor"]
        async for batch in stream.take(settings.aggregator_batch_size, within=settings.aggregator_batch_within_s):
            backoff = 0.1
            while True:
                try:
                    result = await processor.process(batch)
                    break
                except TransientError as exc:
                    log.warning("batch of %d held back, retrying in %.1fs: %s", len(batch), backoff, exc)
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, MAX_BACKOFF_S)
            log.debug("batch %d: applied=%d duplicates=%d rejected=%s", len(batch), result.applied,
                      result.duplicates, result.rejected)

    return app


def run_worker(settings: Settings) -> None:
    app = create_app(settings)
    worker = faust.Worker(app, loglevel="INFO", quiet=True)
    worker.execute_from_commandline()
