"""Faust hands the aggregator each partition's fetched records as one stream event.

Why: Faust moves every Kafka message through its conductor, a channel queue and the stream
iterator, and its fetch loop waits on each delivery with two fresh tasks (`Service.wait_first`).
Profiled on the development machine that was ~75 us of CPU per message, a ceiling of ~13,000
messages/s for an agent that does nothing (bench_aggregator's `aggregator_faust_floor_events_per_s`;
with chunks it is above the raw consume ceiling).
The aggregator processes messages in batches anyway, so the per-message hop buys it nothing.

What changes: `ChunkConsumer._drain_messages` (the Faust fetch loop, otherwise kept as Faust wrote
it: flow control, generation checks, rebalances, commits) takes the records of one fetch (what
Faust's `getmany` reads, without building a Faust message per record) and delivers each
partition's records as a single `ConsumerMessage`: its offset is their last offset and its value
the list of their values. `ChunkSchema` passes that list through undecoded. The agent still reads
the topic as a Faust stream, in batches of chunks (`noack_take`, aggregator/app.py).

This overrides Faust internals of faust-streaming 0.15.3 (pinned in pyproject.toml): an upgrade must
re-read `Consumer._drain_messages`, `getmany`, `_new_offset`, `perform_seek`, `on_buffer_drop`,
`_wait_next_records`, `_new_consumer_thread` and `AIOKafkaConsumerThread._create_worker_consumer`
against these, and an aiokafka upgrade (0.14.0, pinned too) `AIOKafkaConsumer._fetch_max_wait_ms`.

Offsets stay exact: `ChunkLedger` decides what Faust commits. A partition's offsets are committed
up to the end of the chunks the agent marked archived (`mark_archived`), in delivery order.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict, deque
from collections.abc import Iterable, Sequence
from typing import Any, cast

import aiokafka.consumer.fetcher as aiokafka_fetcher
import faust
from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers import aiokafka as aiokafka_driver
from faust.types import TP, ConsumerMessage, Message
from mode import Service, ServiceT

# How long Kafka may hold a fetch of partitions that have nothing new (Faust asks for 1,500 ms).
# aiokafka keeps one fetch in flight per broker, and leaves out of it the partitions whose records
# still wait to be handed over: when those were the ones with a backlog, the fetch held only
# caught-up partitions, and the backlog waited out the broker's whole wait. Draining a backlog that
# showed as 200-660 ms without a batch, a few times a run (600,000 events drained at 63-75k events/s,
# against 75-78k at 100 ms); in a live stream, as up to 1.5 s more between an event and its usage.
# The price: a caught-up worker sends about ten fetches a second per broker instead of one.
FETCH_MAX_WAIT_MS = 100


class ChunkMessage(ConsumerMessage):
    """A chunk: the last record's position, the values of all of them. `archived` is set by the
    agent alone (`mark_archived`), once every event of the chunk is applied and archived; Faust's
    own `acked` is not trusted for commits, as Faust also acknowledges messages it skips or drops."""

    __slots__ = ("archived",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.archived = False


def chunk_message(tp: TP, records: Sequence[Any], generation_id: int | None) -> ChunkMessage:
    """One message standing for consecutive records of one partition (None values, i.e.
    tombstones, are left out). A record is read for its offset, timestamp, timestamp type and value
    only: aiokafka's own records of a batch are handed over as they are (FetchedRecords)."""
    last = records[-1]
    values = [record.value for record in records if record.value is not None]
    timestamp = last.timestamp / 1000.0 if last.timestamp is not None else cast(float, None)
    return ChunkMessage(tp.topic, tp.partition, last.offset, timestamp, last.timestamp_type, None, None,
                        cast(Any, values), None, 0, sum(len(value) for value in values), tp,
                        generation_id=generation_id)


def mark_archived(message: Message) -> None:
    """The chunk's events are applied and archived: its offsets may be committed."""
    cast(ChunkMessage, message).archived = True


class ChunkSchema(faust.Schema):
    """Keys and values as they came: a chunk's value is already the list of raw values."""

    def loads_key(self, app: Any, message: Message, *, loads: Any = None, serializer: Any = None) -> Any:
        return message.key

    def loads_value(self, app: Any, message: Message, *, loads: Any = None, serializer: Any = None) -> Any:
        return message.value


class ChunkLedger:
    """Which offset of each partition may be committed: one past the last of the chunks delivered
    in the current consumer generation that were all archived, oldest first.

    Faust's own bookkeeping (a list of acknowledged offsets, gaps for offsets never delivered) is
    not used for chunks: a chunk stands for many offsets, and an acknowledgement arriving late, from
    before a rebalance or a seek, could otherwise vouch for offsets of chunks nobody processed.
    Here only the agent's mark counts, only for the very chunk it belongs to, in delivery order, and
    chunks of an older generation (or from before a seek) are forgotten: their events are read and
    processed again, which the dedup marks and the archive's key make harmless.
    """

    def __init__(self) -> None:
        self._delivered: dict[TP, deque[tuple[int | None, ChunkMessage]]] = defaultdict(deque)
        self._ready: dict[TP, tuple[int | None, int]] = {}  # (generation, offset): offered until committed

    def delivered(self, tp: TP, generation_id: int | None, chunk: ChunkMessage) -> None:
        self._delivered[tp].append((generation_id, chunk))

    def forget(self, tps: Iterable[TP] | None = None) -> None:
        for tp in list(self._delivered) if tps is None else tps:
            self._delivered.pop(tp, None)
        for tp in list(self._ready) if tps is None else tps:
            self._ready.pop(tp, None)

    def committable(self, tp: TP, generation_id: int | None) -> int | None:
        """The offset to commit: the same again until a later one is ready (Faust skips an offset
        it already committed, and retries one whose commit failed)."""
        pending = self._delivered.get(tp)
        while pending:
            generation, chunk = pending[0]
            if generation != generation_id:
                pending.popleft()  # delivered before a rebalance: read again since
            elif chunk.archived:
                self._ready[tp] = (generation, chunk.offset + 1)
                pending.popleft()
            else:
                break
        ready = self._ready.get(tp)
        return ready[1] if ready is not None and ready[0] == generation_id else None


class ChunkConsumerThread(aiokafka_driver.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        """Faust's aiokafka consumer, with FETCH_MAX_WAIT_MS (read when the consumer starts)."""
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS
        return consumer


class ChunkConsumer(aiokafka_driver.Consumer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.ledger = ChunkLedger()
        self._buffer_dropped = asyncio.Event()

    def _new_consumer_thread(self) -> aiokafka_driver.AIOKafkaConsumerThread:
        return ChunkConsumerThread(self, loop=self.loop, beacon=self.beacon)

    def _new_offset(self, tp: TP) -> int | None:
        """The offset to commit (Faust asks before each commit): from the ledger. Faust's list of
        acknowledged offsets, which its acks still fill, is emptied here and not used."""
        self._acked[tp].clear()
        self._acked_index[tp].clear()
        return self.ledger.committable(tp, self.app.consumer_generation_id)

    async def perform_seek(self) -> None:
        self.ledger.forget()
        await super().perform_seek()

    async def seek(self, partition: TP, offset: int) -> None:
        self.ledger.forget([partition])
        await super().seek(partition, offset)

    def on_buffer_drop(self, tp: TP) -> None:
        super().on_buffer_drop(tp)
        self._buffer_dropped.set()

    async def _held_back(self, timeout: float) -> bool:
        """When the full buffer holds every partition back, wait (at most `timeout`) until it drops;
        whether they are all still held back. False at once when some partition may be fetched."""
        if not self._buffered_partitions or self._get_active_partitions():
            return False
        self._buffer_dropped.clear()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._buffer_dropped.wait(), timeout)
        return not self._get_active_partitions()

    async def _fetch(self, timeout: float) -> tuple[list[tuple[TP, Sequence[Any]]], int | None]:
        """Faust's `getmany`, by partition instead of by record: the records fetched for each
        partition, without building a Faust message per record.

        When every partition is held back because the stream's buffer is full (Faust's flow
        control: `on_buffer_full`), Faust's fetch sleeps a whole second before it looks again,
        though the agent empties the buffer in a fraction of that; draining a backlog, those
        seconds were ~30% of the time. Here the fetch waits for the buffer to drop instead."""
        if await self._held_back(timeout):
            return [], self.app.consumer_generation_id
        records, active_partitions = await self._wait_next_records(timeout)
        generation_id = self.app.consumer_generation_id
        if records is None or self.should_stop:
            return [], generation_id
        if not self.flow_active:  # as getmany: a rebalance stopped the flow, go back to the commits
            try:
                await self.perform_seek()
            except Exception as exc:  # noqa: BLE001 - Faust's own handling of this case
                self.log.warning(f"exception performing seek when flow not active {exc}")
            return [], generation_id
        fetched: list[tuple[TP, Sequence[Any]]] = []
        for tp, partition_records in records.items():
            if partition_records and (active_partitions is None or tp in active_partitions
                                      or tp in self._buffered_partitions):
                self.app.monitor.track_tp_end_offset(tp, self.highwater(tp))
                fetched.append((tp, partition_records))
        return fetched, generation_id

    async def _drain_messages(self, fetcher: ServiceT) -> None:  # pragma: no cover - driven by Faust
        consumer_should_stop = cast(Service, self)._stopped.is_set
        fetcher_should_stop = cast(Service, fetcher)._stopped.is_set
        read_offset = self._read_offset
        try:
            while not (consumer_should_stop() or fetcher_should_stop()):
                self.diag.set_flag(CONSUMER_FETCHING)
                await self.sleep(0)
                if self.should_stop:
                    continue
                fetched, generation_id = await self._fetch(timeout=1.0)
                for tp, records in fetched:
                    if self._commit_every is not None and self._n_acked >= self._commit_every:
                        self._n_acked = 0
                        await self.commit()
                    # nothing awaited from this check until the chunk is handed over
                    if not self.flow_active or self.app.consumer_generation_id != generation_id:
                        break  # a rebalance began: Faust seeks back to the committed offsets
                    last_read = read_offset.get(tp)
                    if last_read is not None and records[0].offset < last_read:  # Faust's own test
                        records = [record for record in records if record.offset >= last_read]
                        if not records:
                            continue
                    chunk = chunk_message(tp, records, generation_id)
                    self.ledger.delivered(tp, generation_id, chunk)
                    delivery = self.callback(chunk)
                    outcome = await self.wait_first(delivery, self.suspend_flow.wait())
                    if delivery not in outcome.done:
                        break  # a rebalance interrupted the delivery: the chunk is read again after it
                    read_offset[tp] = chunk.offset
                self.diag.unset_flag(CONSUMER_FETCHING)
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                self.log.info("Broker stopped consumer, shutting down...")
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                self.log.info("Consumer shutting down for user cancel.")
                return
            raise
        except Exception as exc:
            self.log.exception("Drain messages raised: %r", exc)
            raise
        finally:
            self.diag.unset_flag(CONSUMER_FETCHING)


class FetchedRecords(aiokafka_fetcher.PartitionRecords):
    """aiokafka's records of one partition's fetch, each handed over as the record batch yields it
    (offset, timestamp, timestamp_type, key, value), not copied into a ConsumerRecord: that copy,
    a Python object per message, was ~1 us of the worker's CPU per event, in the consumer thread
    that shares the GIL with the agent. The worker's consumer has no deserializers to apply.
    aiokafka internals (aiokafka 0.14.0, pinned in pyproject.toml): `PartitionRecords`, created
    by the Fetcher under that module name, and its `_consumer_record`."""

    def _consumer_record(self, tp: Any, record: Any) -> Any:
        return record


class ChunkTransport(aiokafka_driver.Transport):
    Consumer = ChunkConsumer


def use_chunks(app: faust.App) -> None:
    """Make the app's consumer deliver chunks (before the app starts or declares topics). The
    aiokafka records are the fetcher's own (FetchedRecords), for every aiokafka consumer of the
    process: the worker has no other."""
    aiokafka_fetcher.PartitionRecords = FetchedRecords  # type: ignore[misc]
    app.transport = ChunkTransport(app.conf.broker_consumer, app)
