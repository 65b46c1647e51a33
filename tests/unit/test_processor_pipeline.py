"""BatchProcessor and its Pipeline: every batch reaches Redis before the archive, batches are archived
one at a time and in order while the next one is applied, a batch is finished (acknowledged) only
after its archive step, transient failures are retried and a bug stops everything.

The stores are recording fakes (the real ones are covered by tests/integration and the e2e fault
tests); what is tested here is the processor's own ordering logic.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import NoReturn

import orjson
import psycopg
import pytest
import redis.exceptions

from aggregator import processor as processor_module
from aggregator.archive import Stored
from aggregator.copy_text import copy_text
from aggregator.model import SubscriptionView
from aggregator.processor import (
    YIELD_EVERY,
    BatchProcessor,
    BatchResult,
    Pipeline,
    TransientError,
    process_until_done,
    transient_errors,
)
from aggregator.touched import TouchedPair
from core.domain.aggregation import Metric
from core.domain.periods import BillingCycle
from core.domain.thresholds import Alert, Threshold
from core.usage_state.ops import Planned
from schemas.events import Event, event_from_message, event_to_message

ORG = "00000000-0000-0000-0000-0000000000aa"
VIEW = SubscriptionView(id="sub-1", organization_id=ORG, external_id="s1", status="active",
                        cycle=BillingCycle("monthly", "calendar", date(2020, 1, 1), "UTC"),
                        metrics_by_code={"calls": Metric("m1", "calls", "count_agg", None)})
NOW_US = 1_795_000_000_000_000


def message(tx: str, subscription: str = "s1", timestamp_us: int = NOW_US) -> bytes:
    return event_to_message(Event(lago_id="x", organization_id=ORG, transaction_id=tx, code="calls",
                                  external_subscription_id=subscription, timestamp_us=timestamp_us,
                                  received_at_us=NOW_US, properties={}))


WATCHED = replace(VIEW, id="sub-2", external_id="s2",
                  alerts=(Alert("alert-1", "billable_metric_current_usage_units", "m1", (Threshold(Decimal(10)),)),))


class Catalog:
    async def lookup(self, scopes):  # noqa: ANN001, ANN201
        return {scope: {(ORG, "s1"): VIEW, (ORG, "s2"): WATCHED}.get(scope) for scope in scopes}


class Journal:
    """Redis and the archive in one: records what each received, in order, and slows each call a
    little so that the two stages overlap."""

    def __init__(self, fail_archive_call: int | None = None):
        self.entries: list[tuple[str, list[str]]] = []
        self.fail_archive_call = fail_archive_call
        self.applied_txs: set[str] = set()
        self.new_to_redis: list[list[bool]] = []  # what each archive call was told Redis applied
        self.archived_keys: set[tuple[str, str, str]] = set()  # what the archive has (committed)
        self.lookups: list[list[str]] = []  # the transaction_ids each batch asked the archive about
        self.prepared: list[tuple[str, str] | None] = []  # the COPY text each archive call was handed

    async def apply(self, planned: Sequence[Planned]) -> list[bool]:
        txs = [item.transaction_id for item in planned]
        self.entries.append(("redis-begin", txs))
        await asyncio.sleep(0.002)
        marks = [f"{item.transaction_id}@{item.period_key}" for item in planned]  # a period's marks, as Redis's
        fresh = [mark not in self.applied_txs for mark in marks]
        self.applied_txs.update(marks)
        self.entries.append(("redis-end", txs))
        return fresh

    async def store(self, batch: Sequence[Event], owners: Sequence[tuple[str, str]],
                    new_to_redis: Sequence[bool] = (), prepared: tuple[str, str] | None = None) -> Stored:
        txs = [event.transaction_id for event in batch]
        self.new_to_redis.append(list(new_to_redis))
        self.prepared.append(prepared)
        calls = sum(1 for kind, _ in self.entries if kind == "archive-begin")
        self.entries.append(("archive-begin", txs))
        await asyncio.sleep(0.003)
        if calls == self.fail_archive_call:
            raise OSError("connection refused")  # a transient failure: PostgreSQL unreachable
        self.entries.append(("archive-end", txs))
        keys = {(e.organization_id, e.external_subscription_id, e.transaction_id) for e in batch}
        new = keys - self.archived_keys
        self.archived_keys |= keys
        return Stored(len(new), [], 0)

    async def archived(self, identities: Sequence[tuple[str, str, str]]) -> set[tuple[str, str, str]]:
        self.lookups.append([tx for _, _, tx in identities])
        return {identity for identity in identities if identity in self.archived_keys}

    async def announce(self, pairs: Sequence[TouchedPair]) -> None:
        self.entries.append(("announce", [f"{p.subscription_id}@{p.period_key}" for p in pairs]))


def assert_rejected(rejected: list[tuple[bytes, bytes]], payload: bytes, reason: str, detail: str) -> None:
    """`rejected` holds exactly this one message for events.rejected: its original key, the reason and the event."""
    [(key, value)] = rejected
    event = orjson.loads(payload)
    assert key == f"{event['organization_id']}:{event['external_subscription_id']}".encode()
    assert orjson.loads(value) == {"reason": reason, "detail": detail, "event": event}


def reraise(size: int, exc: BaseException) -> NoReturn:
    raise exc


def make(journal: Journal, rejected: list[tuple[bytes, bytes]]) -> BatchProcessor:
    async def reject(messages: Sequence[tuple[bytes, bytes]]) -> None:
        rejected.extend(messages)

    return BatchProcessor(Catalog(), journal, journal, reject, journal.announce)  # type: ignore[arg-type]


def test_one_batch_is_applied_then_archived_and_its_copies_and_rejects_go_nowhere_else() -> None:
    journal, rejected = Journal(), list[tuple[bytes, bytes]]()
    payloads = [message(f"t{n}") for n in range(4)] + [message("t2"), message("u1", subscription="nope")]
    result = asyncio.run(process_until_done(make(journal, rejected), payloads))

    assert (result.applied, result.archived, result.duplicates) == (4, 4, 1)
    assert result.rejected == {"unknown_subscription": 1}
    assert_rejected(rejected, payloads[-1], "unknown_subscription", "no active subscription 'nope'")
    assert [kind for kind, _ in journal.entries] == ["redis-begin", "redis-end", "archive-begin", "archive-end"]
    assert journal.entries[0][1] == ["t0", "t1", "t2", "t3"]
    assert journal.new_to_redis == [[True, True, True, True]]  # the archive may copy them without conflict checks
    # and it gets their COPY text, made while Redis ran the scripts
    assert journal.prepared == [copy_text([event_from_message(payload) for payload in payloads[:4]])]


def test_the_watched_pairs_a_batch_touched_are_announced_beside_its_archive_once_each_before_it_finishes() -> None:
    journal, rejected = Journal(), list[tuple[bytes, bytes]]()
    finished: list[BatchResult] = []
    payloads = [message("t1"), message("w1", "s2"), message("w2", "s2"), message("t2")]
    period = WATCHED.cycle.period_at(datetime.fromtimestamp(NOW_US / 1e6, UTC))
    assert period is not None

    async def run() -> None:
        pipeline = Pipeline(make(journal, rejected), reraise)
        await pipeline.submit(payloads, finished_after(journal, finished))
        await pipeline.drain()

    asyncio.run(run())
    assert len(finished) == 1
    kinds = [kind for kind, _ in journal.entries]
    assert kinds == ["redis-begin", "redis-end", "archive-begin", "announce", "archive-end", "finished"]
    assert journal.entries[3] == ("announce", [f"sub-2@{period.key}"])  # s1 has no alert: not watched


def test_a_batch_whose_pairs_kafka_did_not_take_is_retried_whole_and_not_finished_until_they_are() -> None:
    journal, rejected = Journal(), list[tuple[bytes, bytes]]()
    finished: list[BatchResult] = []
    refusals = [TransientError("Kafka did not acknowledge touched pairs")]

    async def announce(pairs: Sequence[TouchedPair]) -> None:
        if refusals:
            raise refusals.pop()
        await journal.announce(pairs)

    processor = BatchProcessor(Catalog(), journal, journal, make(journal, rejected).reject, announce)  # type: ignore[arg-type]

    async def run() -> None:
        pipeline = Pipeline(processor, reraise)
        await pipeline.submit([message("w1", "s2")], finished_after(journal, finished))
        await pipeline.drain()

    asyncio.run(run())
    assert [kind for kind, _ in journal.entries] == ["redis-begin", "redis-end", "archive-begin", "archive-end",
                                                     "archive-begin", "announce", "archive-end", "finished"]
    assert len(finished) == 1


def finished_after(journal: Journal, finished: list[BatchResult]):  # noqa: ANN201
    async def done(result: BatchResult) -> None:
        journal.entries.append(("finished", []))
        finished.append(result)
    return done


def test_the_pipeline_overlaps_one_batch_s_archive_with_the_next_apply_and_finishes_batches_in_order() -> None:
    journal, rejected = Journal(), list[tuple[bytes, bytes]]()
    finished: list[tuple[int, int]] = []

    def failed(size: int, exc: BaseException) -> NoReturn:
        raise AssertionError(f"no batch may fail here: {exc!r}")

    async def run() -> None:
        pipeline = Pipeline(make(journal, rejected), failed)
        for number in range(3):
            async def done(result: BatchResult, number: int = number) -> None:
                finished.append((number, result.archived))
                journal.entries.append(("finished", [str(number)]))
            await pipeline.submit([message(f"b{number}-{n}") for n in range(3)], done)
        assert pipeline.archiving == 3
        await pipeline.drain()
        assert pipeline.archiving == 0

    asyncio.run(run())
    assert finished == [(0, 3), (1, 3), (2, 3)]
    order = [(kind, txs[0][:2]) for kind, txs in journal.entries]
    for number in range(3):
        batch = f"b{number}"
        assert order.index(("redis-end", batch)) < order.index(("archive-begin", batch))
        assert order.index(("archive-end", batch)) < order.index(("finished", str(number)))
    for number in range(2):  # one archive at a time, in order; the next batch applied meanwhile
        assert order.index(("finished", str(number))) < order.index(("archive-begin", f"b{number + 1}"))
        assert order.index(("redis-begin", f"b{number + 1}")) < order.index(("archive-end", f"b{number}"))


def test_a_failing_archive_is_retried_and_the_batch_finishes_once() -> None:
    journal, rejected = Journal(fail_archive_call=0), list[tuple[bytes, bytes]]()
    payloads = [message(f"t{n}") for n in range(3)] + [message("u1", subscription="nope")]
    results: list[BatchResult] = []

    async def run() -> None:
        pipeline = Pipeline(make(journal, rejected), reraise)

        async def done(result: BatchResult) -> None:
            results.append(result)
        await pipeline.submit(payloads, done)
        await pipeline.drain()

    asyncio.run(run())
    assert [kind for kind, _ in journal.entries].count("archive-begin") == 2
    assert len(results) == 1
    assert (results[0].applied, results[0].archived, results[0].duplicates) == (3, 3, 0)
    assert results[0].rejected == {"unknown_subscription": 1}
    # rejects go out once, with the archive step that went through
    assert_rejected(rejected, payloads[-1], "unknown_subscription", "no active subscription 'nope'")


def test_a_bug_in_the_archive_step_goes_to_failed_without_finishing_the_batch() -> None:
    journal, rejected = Journal(), list[tuple[bytes, bytes]]()
    failures: list[tuple[int, str]] = []
    finished: list[BatchResult] = []

    class Broken(Journal):
        async def store(self, batch: Sequence[Event], owners: Sequence[tuple[str, str]],
                        new_to_redis: Sequence[bool] = (), prepared: tuple[str, str] | None = None) -> Stored:
            raise KeyError("a bug")

    async def run() -> None:
        def failed(size: int, exc: BaseException) -> NoReturn:
            failures.append((size, repr(exc)))
            raise RuntimeError("the worker leaves")  # abandon() exits the process instead

        processor = BatchProcessor(Catalog(), journal, Broken(), make(journal, rejected).reject,  # type: ignore[arg-type]
                                   journal.announce)
        pipeline = Pipeline(processor, failed)

        async def done(result: BatchResult) -> None:
            finished.append(result)
        await pipeline.submit([message("t1"), message("t2")], done)
        with pytest.raises(RuntimeError, match="the worker leaves"):
            await pipeline.drain()

    asyncio.run(run())
    assert failures == [(2, "KeyError('a bug')")]
    assert finished == []


def test_a_batch_redelivered_after_its_archive_reaches_neither_store_and_is_counted_as_duplicates() -> None:
    journal, rejected = Journal(), list[tuple[bytes, bytes]]()
    payloads = [message(f"t{n}") for n in range(5)]
    processor = make(journal, rejected)
    first = asyncio.run(process_until_done(processor, payloads))
    second = asyncio.run(process_until_done(processor, payloads))
    assert (first.applied, first.archived, first.duplicates) == (5, 5, 0)
    assert (second.applied, second.archived, second.duplicates) == (0, 0, 5)  # the archive had them all
    txs = ["t0", "t1", "t2", "t3", "t4"]
    assert journal.lookups == [txs, txs]  # one lookup per batch
    # no event reaches either store again
    assert journal.entries[4:] == [("redis-begin", []), ("redis-end", []), ("archive-begin", []), ("archive-end", [])]


def test_a_batch_redelivered_after_redis_only_counts_what_redis_had_as_duplicates_and_archives_them() -> None:
    """A crash between Redis and the archive: the archive does not have them, Redis's marks decide."""
    journal, rejected = Journal(), list[tuple[bytes, bytes]]()
    payloads = [message(f"t{n}") for n in range(5)]
    period = VIEW.cycle.period_at(datetime.fromtimestamp(NOW_US / 1e6, UTC))
    assert period is not None
    journal.applied_txs.update(f"t{n}@{period.key}" for n in range(5))  # what the crashed try left in Redis
    result = asyncio.run(process_until_done(make(journal, rejected), payloads))
    assert (result.applied, result.archived, result.duplicates) == (0, 5, 5)
    # the archive is told none was new to Redis: it inserts them with conflict checks
    assert journal.new_to_redis == [[False] * 5]


def two_batches(journal: Journal, first: list[bytes], second: list[bytes]) -> list[BatchResult]:
    """The results of two batches through one Pipeline, the second submitted while the first is archived."""
    results: list[BatchResult] = []

    def failed(size: int, exc: BaseException) -> NoReturn:
        raise AssertionError(f"no batch may fail here: {exc!r}")

    async def run() -> None:
        pipeline = Pipeline(make(journal, []), failed)

        async def done(result: BatchResult) -> None:
            results.append(result)
        await pipeline.submit(first, done)
        assert pipeline.archiving == len(first)
        await pipeline.submit(second, done)
        await pipeline.drain()

    asyncio.run(run())
    return results


def test_a_copy_of_an_event_of_the_batch_being_archived_counts_once_whatever_its_timestamp() -> None:
    """Batch 2 is planned while batch 1 is archived (not committed yet): a copy of one of batch 1's events
    with a timestamp in another period (other dedup marks in Redis) is a duplicate all the same."""
    journal = Journal()
    results = two_batches(journal, [message("a"), message("b")],
                          [message("b", timestamp_us=NOW_US - 40 * 86_400_000_000), message("c")])
    assert [(r.applied, r.duplicates, r.archived) for r in results] == [(2, 0, 2), (1, 1, 1)]
    assert [txs for kind, txs in journal.entries if kind == "redis-begin"] == [["a", "b"], ["c"]]


def test_a_copy_of_an_event_the_batch_being_archived_then_refuses_as_closed_is_counted() -> None:
    """Batch 1's original is refused by its archive step (its period closed meanwhile): the copy in batch 2, with
    a timestamp in an open period, waited for that archive step and counts, once."""
    class Closing(Journal):
        async def store(self, batch: Sequence[Event], owners: Sequence[tuple[str, str]],
                        new_to_redis: Sequence[bool] = (), prepared: tuple[str, str] | None = None) -> Stored:
            stored = await super().store(batch, owners, new_to_redis, prepared)
            if [event.transaction_id for event in batch] == ["a", "b"]:  # batch 1's b: its period closed
                self.archived_keys.discard((ORG, "s1", "b"))
                return Stored(stored.archived - 1, [(ORG, "s1", "b")], 0)
            return stored

    journal = Closing()
    results = two_batches(journal, [message("a"), message("b")],
                          [message("b", timestamp_us=NOW_US + 40 * 86_400_000_000), message("c")])
    assert [(r.applied, r.duplicates, r.archived, r.rejected) for r in results] == [
        (2, 0, 1, {"period_closed": 1}), (2, 0, 2, {})]
    assert journal.lookups[-1] == ["b"]  # asked again once batch 1 was archived


def test_events_the_archive_refuses_as_closed_are_rejected_with_their_original_message() -> None:
    journal, rejected = Journal(), list[tuple[bytes, bytes]]()

    class Closing(Journal):  # the period of t1 was closed while the batch was in flight; t2's key was archived
        async def store(self, batch: Sequence[Event], owners: Sequence[tuple[str, str]],
                        new_to_redis: Sequence[bool] = (), prepared: tuple[str, str] | None = None) -> Stored:
            return Stored(1, [(ORG, "s1", "t1")], 1)

    payloads = [message("t0"), message("t1"), message("t2")]
    processor = BatchProcessor(Catalog(), journal, Closing(), make(journal, rejected).reject,  # type: ignore[arg-type]
                               journal.announce)
    result = asyncio.run(process_until_done(processor, payloads))

    assert (result.applied, result.archived, result.duplicates) == (3, 1, 1)
    assert result.rejected == {"period_closed": 1}
    assert_rejected(rejected, payloads[1], "period_closed",
                    "the billing period of this event was invoiced before it was archived")


@pytest.mark.parametrize("error", [psycopg.OperationalError("server closed the connection unexpectedly"),
                                   psycopg.InterfaceError("the connection is closed")])
def test_psycopg_s_own_connection_errors_are_transient(error: Exception) -> None:
    # the archive's COPY runs on the driver's connection, so its failures are not SQLAlchemy's
    with pytest.raises(TransientError, match="^PostgreSQL unavailable: "), transient_errors():
        raise error


def test_redis_failing_while_the_copy_text_is_made_fails_the_apply_as_transient() -> None:
    class Unreachable(Journal):
        async def apply(self, planned: Sequence[Planned]) -> list[bool]:
            await asyncio.sleep(0)
            raise redis.exceptions.ConnectionError("Connection refused")

    async def run() -> list[asyncio.Task[object]]:
        # slices of COPY text still to make when Redis fails
        with pytest.raises(TransientError, match="^Redis unavailable: Connection refused"):
            await make(Unreachable(), []).apply([message(f"t{n}") for n in range(2 * YIELD_EVERY + 1)])
        return [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]

    assert asyncio.run(run()) == []


def test_a_failing_copy_text_leaves_no_redis_step_running(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(events: Sequence[Event]) -> tuple[str, str]:
        raise KeyError("a bug")

    monkeypatch.setattr(processor_module, "copy_text", broken)
    journal = Journal()

    async def run() -> list[asyncio.Task[object]]:
        with pytest.raises(KeyError):
            await make(journal, []).apply([message("t0"), message("t1")])
        return [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]

    assert asyncio.run(run()) == []  # the Redis step was cancelled and its outcome read, not left behind
    assert [kind for kind, _ in journal.entries] == ["redis-begin"]  # cancelled in its round trip
