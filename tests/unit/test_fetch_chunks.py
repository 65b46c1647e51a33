"""What the Faust worker may commit when each partition's fetched records reach it as one chunk
(aggregator/fetch_chunks.py): the ledger's decisions, the chunk message itself, and how soon a fetch
held back by a full buffer goes on."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import pytest
from faust.types import TP

from aggregator.fetch_chunks import ChunkConsumer, ChunkLedger, chunk_message, mark_archived

EVENTS = TP("events", 0)
OTHER = TP("events", 1)


@dataclass
class Chunk:  # what the ledger reads of a delivered chunk message
    offset: int
    archived: bool = False


def test_offsets_are_committable_only_through_the_chunks_acknowledged_in_delivery_order() -> None:
    ledger = ChunkLedger()
    first, second, third = Chunk(199), Chunk(299), Chunk(399)
    for chunk in (first, second, third):
        ledger.delivered(EVENTS, 7, chunk)  # type: ignore[arg-type]

    assert ledger.committable(EVENTS, 7) is None
    second.archived = True  # archived before the chunk delivered ahead of it: vouches for nothing yet
    assert ledger.committable(EVENTS, 7) is None
    first.archived = True
    assert ledger.committable(EVENTS, 7) == 300
    assert ledger.committable(EVENTS, 7) == 300  # offered again (Faust skips it once committed)
    third.archived = True
    assert ledger.committable(EVENTS, 7) == 400
    assert ledger.committable(EVENTS, 8) is None  # a rebalance since: nothing of generation 7 counts
    assert ledger.committable(OTHER, 7) is None


def test_an_acknowledgement_from_before_a_rebalance_counts_for_nothing() -> None:
    ledger = ChunkLedger()
    stale = Chunk(299)
    ledger.delivered(EVENTS, 7, stale)  # type: ignore[arg-type]
    fresh = Chunk(350)  # the partition was read again from the committed offset 200 after the rebalance
    ledger.delivered(EVENTS, 8, fresh)  # type: ignore[arg-type]

    stale.archived = True  # its batch was archived late, after the rebalance
    assert ledger.committable(EVENTS, 8) is None  # not 300, and never 351 before `fresh` is acknowledged
    fresh.archived = True
    assert ledger.committable(EVENTS, 8) == 351


def test_a_seek_forgets_what_was_delivered_before_it() -> None:
    ledger = ChunkLedger()
    before = Chunk(299, archived=True)
    ledger.delivered(EVENTS, 7, before)  # type: ignore[arg-type]
    ledger.delivered(OTHER, 7, Chunk(10, archived=True))  # type: ignore[arg-type]
    ledger.forget([EVENTS])
    assert ledger.committable(EVENTS, 7) is None
    assert ledger.committable(OTHER, 7) == 11
    ledger.delivered(OTHER, 7, Chunk(20, archived=True))  # type: ignore[arg-type]
    ledger.forget()
    assert ledger.committable(OTHER, 7) is None


@dataclass
class Record:  # the fields of aiokafka's batch records (no topic, no partition) a chunk is made of
    offset: int
    value: bytes | None
    timestamp: int | None = 1_795_000_000_123
    timestamp_type: int = 0


def test_a_chunk_is_the_last_record_s_position_and_every_value_but_tombstones() -> None:
    records = [Record(40, b"a"), Record(41, None), Record(42, b"bc")]
    chunk = chunk_message(EVENTS, records, 7)
    assert (chunk.topic, chunk.partition, chunk.offset, chunk.tp) == ("events", 0, 42, EVENTS)
    assert chunk.value == [b"a", b"bc"]
    assert chunk.timestamp == 1_795_000_000.123
    assert chunk.generation_id == 7
    assert chunk.serialized_value_size == 3
    assert chunk.archived is False
    mark_archived(chunk)
    assert chunk.archived is True
    assert chunk.acked is False  # Faust's own acknowledgement is a different flag


def test_the_fetcher_hands_over_its_own_records_once_the_app_uses_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    import aiokafka.consumer.fetcher

    from aggregator.app import create_app
    from aggregator.fetch_chunks import FetchedRecords
    from core.settings import Settings

    # aiokafka's own class, as before any app of this process used chunks (put back after the test)
    monkeypatch.setattr(aiokafka.consumer.fetcher, "PartitionRecords", FetchedRecords.__base__)
    create_app(Settings.from_env({}))
    assert aiokafka.consumer.fetcher.PartitionRecords is FetchedRecords  # what the fetcher builds per fetch


def test_the_worker_s_kafka_consumer_waits_at_most_fetch_max_wait_ms_for_partitions_with_nothing_new() -> None:
    from aggregator.app import create_app
    from aggregator.fetch_chunks import FETCH_MAX_WAIT_MS, ChunkConsumerThread
    from core.settings import Settings

    async def built() -> int:
        app = create_app(Settings.from_env({}))
        thread = app.consumer._new_consumer_thread()  # type: ignore[attr-defined]
        assert isinstance(thread, ChunkConsumerThread)
        consumer = thread._create_worker_consumer(app.transport)  # not started: no broker needed
        return int(consumer._fetch_max_wait_ms)

    assert asyncio.run(built()) == FETCH_MAX_WAIT_MS < 1_500  # Faust's own consumer would wait 1,500 ms


def held_back_consumer(active: set[TP], buffered: set[TP]) -> ChunkConsumer:
    """The flow-control state of a ChunkConsumer (Faust's on_buffer_full/on_buffer_drop read and
    write only these), without the Faust app a whole consumer needs."""
    consumer = object.__new__(ChunkConsumer)
    consumer._active_partitions = set(active)
    consumer._paused_partitions = set()
    consumer._buffered_partitions = set(buffered)
    consumer._buffer_dropped = asyncio.Event()
    return consumer


def test_a_fetch_held_back_by_the_full_buffer_goes_on_as_soon_as_the_buffer_drops() -> None:
    async def scenario() -> None:
        consumer = held_back_consumer(active=set(), buffered={EVENTS, OTHER})
        waiting = asyncio.ensure_future(consumer._held_back(timeout=5.0))
        await asyncio.sleep(0.05)
        assert not waiting.done()  # every partition is held back: nothing to fetch yet

        began = time.monotonic()
        consumer.on_buffer_drop(OTHER)
        assert await waiting is False
        assert time.monotonic() - began < 1.0  # not Faust's one-second sleep
        assert consumer._get_active_partitions() == {OTHER}

    asyncio.run(scenario())


def test_a_fetch_is_held_back_at_most_its_timeout_and_never_when_a_partition_may_be_fetched() -> None:
    async def held_back(active: set[TP], buffered: set[TP], timeout: float) -> bool:
        return await held_back_consumer(active, buffered)._held_back(timeout)

    assert asyncio.run(held_back(set(), {EVENTS}, timeout=0.05)) is True  # still full after the timeout
    assert asyncio.run(held_back({OTHER}, {EVENTS}, timeout=30.0)) is False
    assert asyncio.run(held_back(set(), set(), timeout=30.0)) is False  # nothing buffered: not flow control
