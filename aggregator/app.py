"""The Faust worker. The agent body only batches, retries transient failures and logs."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Sequence
from typing import Any, NoReturn, cast

import faust

from aggregator.archive import EventArchive
from aggregator.behind import BehindFlag, backlog
from aggregator.catalog import SubscriptionCatalog
from aggregator.fetch_chunks import ChunkSchema, mark_archived, use_chunks
from aggregator.heap import collect_regularly, settle
from aggregator.processor import BatchProcessor, BatchResult, Finished, Pipeline
from aggregator.stats import Totals, batch_done
from aggregator.touched import TouchedPair, touched_messages
from core.clients import database, redis_client
from core.db.catalog_changes import CatalogChanges
from core.logs import logging_config, work_id
from core.settings import Settings
from core.usage_state.redis_state import UsageState

log = logging.getLogger("meterline.aggregator")


def worker_app(settings: Settings, app_id: str, **options: Any) -> faust.App:
    """A Faust app of the stack's workers (the aggregator, the alerts worker): raw bytes in and out, every
    offset committed by the agent itself once its work is done, `options` added."""
    return faust.App(
        app_id,
        broker=f"kafka://{settings.kafka_bootstrap}",
        store="memory://",
        value_serializer="raw",
        key_serializer="raw",
        web_enabled=False,
        topic_replication_factor=1,
        topic_partitions=settings.events_partitions,
        consumer_auto_offset_reset="earliest",
        # the agent commits each batch once it is done (`CommitSoon`): this is a safety net
        broker_commit_interval=settings.aggregator_commit_interval_s,
        producer_acks=-1,
        # A worker killed with SIGKILL leaves its group membership behind until the session times
        # out; a short session lets its replacement take the partitions over in seconds.
        broker_session_timeout=10.0,
        broker_heartbeat_interval=1.0,
        # Faust would wait for a held-back batch (e.g. PostgreSQL down) before a rebalance or a
        # stop completes; not waiting is safe: an unfinished batch is never committed (`abandon`)
        # and whoever processes it again does so exactly once.
        stream_wait_empty=False,
        **options,
    )


def create_app(settings: Settings) -> faust.App:
    app = worker_app(
        settings, settings.consumer_group,
        # Faust counts chunks (aggregator/fetch_chunks.py): the events of one partition in one fetch
        broker_commit_every=settings.events_partitions,
        # Chunks fetched ahead of the agent. Faust stops fetching a partition once the buffer is
        # 80% full, and starts again when it is down to 40%: with 2 chunks per partition the agent
        # found it empty, waiting on a fetch, for ~30% of a backlog's drain (38k events/s); with 16
        # it keeps ~50 chunks, ~200,000 events (~80 MB) ahead at most, and drains at 47k events/s.
        stream_buffer_maxsize=16 * settings.events_partitions,
        broker_max_poll_records=settings.aggregator_batch_size,  # events per fetch, all partitions together
    )
    use_chunks(app)
    events = app.topic(settings.events_topic, schema=ChunkSchema(), internal=False)
    rejected = app.topic(settings.rejected_topic, value_type=bytes, key_type=bytes, internal=False)
    touched = app.topic(settings.touched_topic, value_type=bytes, key_type=bytes, internal=False)
    resources: dict[str, Any] = {}

    async def reject(messages: Sequence[tuple[bytes, bytes]]) -> None:
        deliveries = [await rejected.send(key=key or None, value=value) for key, value in messages]
        await asyncio.gather(*deliveries)  # every reject acknowledged before the batch commits

    async def announce(pairs: Sequence[TouchedPair]) -> None:
        deliveries = [await touched.send(value=value, partition=partition)
                      for partition, value in touched_messages(pairs, settings.events_partitions)]
        await asyncio.gather(*deliveries)  # acknowledged before the batch commits

    @app.task
    async def open_stores() -> None:
        engine = database(settings, pool_size=4)
        redis = redis_client(settings.redis_url, timeout_s=5)
        resources["redis"] = redis
        catalog = SubscriptionCatalog(engine, changes=CatalogChanges(engine), read_alerts=False)
        resources["processor"] = BatchProcessor(catalog, UsageState(redis),
                                                EventArchive(engine), reject, announce)

    @app.task
    async def collect_garbage() -> None:
        await collect_regularly()  # aggregator/heap.py: the agent's `settle()` leaves collecting to this clock

    @app.agent(events, concurrency=1)
    async def aggregate(stream: faust.StreamT) -> None:
        while "processor" not in resources:
            await asyncio.sleep(0.05)
        settle()
        pipeline = Pipeline(resources["processor"], abandon)
        totals = Totals()
        submitted = 0
        commit_soon = CommitSoon(app)
        behind = BehindFlag(resources["redis"])

        def on_archived(events: Sequence[faust.EventT], size: int, began: float) -> Finished:
            async def finished(result: BatchResult) -> None:
                for event in events:  # only now may Faust commit the batch's offsets
                    mark_archived(event.message)
                    await stream.ack(event)
                commit_soon()
                await behind.update(past(events), done=True)
                await batch_done(resources["redis"], totals, result, size, time.monotonic() - began)
            return finished

        def past(events: Sequence[faust.EventT]) -> int:
            """Events in Kafka past these chunks."""
            return backlog({event.message.tp: event.message.offset for event in events}, highwater)

        def highwater(tp: Any) -> int | None:
            try:
                return cast(int | None, app.consumer.highwater(tp))
            except Exception:  # noqa: BLE001 - a hint only: the partition went to another worker, not started...
                return None

        # Each event of the stream is a chunk, one partition's fetched values (aggregator/fetch_chunks.py).
        # noack_take: the agent acknowledges a batch itself, once the pipeline archived it. Up to four
        # chunks per partition: in a live stream a fetch brings ~100 events per partition, and batches of
        # one chunk each (~600 events at 10,000 events/s) cost more per event than the stream brought, so
        # the buffer filled up and events waited in it ~1.2 s; a backlog's fetches are full (up to
        # `aggregator_batch_size` events) and leave a batch as soon as the buffer holds this many.
        batches = cast(faust.Stream, stream).noack_take(4 * settings.events_partitions,
                                                        within=settings.aggregator_batch_within_s)
        batch: list[bytes] = []
        try:
            async for events in batches:
                batch = [value for event in events for value in event.value]
                submitted += 1
                work_id.set(f"batch-{os.getpid()}-{submitted}")  # on every log line of this batch
                await behind.update(len(batch) + past(events), done=False)
                await pipeline.submit(batch, on_archived(events, len(batch), time.monotonic()))
                batch = []
            await pipeline.drain()  # the stream ended (the worker stops): finish the batch in the archive
        except asyncio.CancelledError as exc:  # the worker stops
            if batch or pipeline.archiving:
                abandon(len(batch) + pipeline.archiving, exc)
            raise
        except BaseException as exc:  # noqa: BLE001 - a bug: Faust would restart the agent on the same stream
            abandon(len(batch) + pipeline.archiving, exc)

    return app


class CommitSoon:
    """Commit what the agent acknowledged now, beside its work: Faust's own commit comes with its next
    fetch (none once a backlog is drained) or its interval, which left up to a second of finished
    batches to redo after a crash, and in the lag that ops teams watch."""

    def __init__(self, app: faust.App):
        self.app = app
        self._committing: set[asyncio.Future[None]] = set()

    def __call__(self) -> None:
        commit = asyncio.ensure_future(self._commit_now())
        self._committing.add(commit)
        commit.add_done_callback(self._committed)

    async def _commit_now(self) -> None:
        # A commit already in flight makes commit() wait for it and return False: that one may
        # have read the offsets before this batch's, so once more (nothing is sent when nothing
        # is new).
        if not await self.app.consumer.commit():
            await self.app.consumer.commit()

    def _committed(self, commit: asyncio.Future[None]) -> None:
        self._committing.discard(commit)
        if not commit.cancelled() and commit.exception() is not None:
            log.warning("committing a finished batch failed, the periodic commit will retry: %r", commit.exception())


def abandon(size: int, exc: BaseException, what: str = "events") -> NoReturn:
    """Leave at once, without acknowledging the batches in progress.

    A worker stopped (SIGTERM) or failing while a batch is held back (an outage) or in the
    pipeline leaves without committing anything more; the next worker gets those batches again
    from the last commit, and the dedup marks and the archive's key make the replay exact. (Plain
    `take()` would be wrong here: it acknowledges a batch's events when its consumer goes away,
    and Faust's shutdown then commits them.)
    """
    if isinstance(exc, asyncio.CancelledError):
        log.warning("stopping with %d %s in flight: leaving them uncommitted for the next worker", size, what)
        code = 0
    else:
        log.critical("processing failed with %d %s in flight, leaving them uncommitted", size, what, exc_info=exc)
        code = 70
    logging.shutdown()
    os._exit(code)


def run_worker(settings: Settings) -> None:
    app = create_app(settings)
    worker = faust.Worker(app, loglevel="INFO", quiet=True, logging_config=logging_config("aggregator"))
    worker.execute_from_commandline()
