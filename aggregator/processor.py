"""One batch of the events topic, start to finish.

Order of side effects for a batch, and what a crash between two steps does:
1. plan every event (pure: decode, dedup inside the batch, look up the subscription, find the period),
   and read which of the batch's transaction_ids the archive already has (one statement for the batch,
   `EventArchive.archived`): those are duplicates, whatever their timestamp: Redis's dedup marks are
   kept per period and go with the period's state (core.usage_state.redis_state), so a copy sent after
   its marks went, or with a timestamp in another period, is known only there. A copy of an event of
   the batch still being archived (`Pipeline`'s `in_flight`: not committed yet) waits for that archive
   step to finish and is looked up then (its original may yet be refused as `period_closed`);
   - crash during 1: nothing was written anywhere;
2. apply the planned events to Redis: one atomic Lua script per subscription marks transaction_ids
   (in their period's set) and updates usage together;
   - crash after 2: offsets are not committed, the batch is redelivered; the dedup marks make the
     Redis step a no-op for every event already applied;
3. insert the same events into the PostgreSQL archive, first copy wins: those step 2 applied are
   copied in without conflict checks, the others go through ON CONFLICT DO NOTHING
   (aggregator/archive.py); except those whose billing period is closed by then: PostgreSQL decides
   it under the subscription's lock, and those events join the rejects as `period_closed`. Their
   Redis apply in step 2 stays, harmlessly: a closed period's Redis state is read by nothing —
   invoices come from the archive, current usage reads only the period containing now (which a
   biller closes only once it has ended or the subscription was terminated, after which events are
   refused at planning), and `meterline rebuild` re-applies only archived events;
   - crash after 3: on redelivery step 1 finds every event in the archive: neither store is written
     again, exactly once in both;
   - crash between 2 and 3: on redelivery step 2 finds every event marked, so step 3 inserts them
     all with conflict checks: each is archived once;
   - Redis's marks lost (a flush) for events already archived: step 1 finds them in the archive, so a
     redelivered batch is not applied to Redis again; `meterline rebuild` after a flush re-applies the
     archive through the same marks, so each transaction_id counts once;
4. publish rejected events to `events.rejected`, and the (subscription, period) pairs the batch touched
   whose subscription is watched (alerts, progressive billing) to `usage.touched` (beside step 3), and
   wait for Kafka's acknowledgement of all of them;
   - crash after 4: the rejects are published again on redelivery (at least once; `replay-rejected`
     is idempotent because replayed events keep their transaction_id), and so are the touched pairs:
     the alerts worker evaluates them again, which fires nothing twice (aggregator/alerts_app.py);
   - crash before 4: the pairs were not all published, but the batch is not acknowledged either, and
     its redelivery touches the same pairs (every planned event counts, one counted before too);
5. return; the Faust agent acknowledges the messages and their offsets are committed.
   - crash before the commit: everything above is redone, and every step is a no-op the second time
     (step 1 now finds the batch's events in the archive: none reaches Redis again, and their touched
     pairs are announced again).

Bounded marks and the archive's part: an event's mark lives as long as its period's state, at least
STATE_RETENTION_S after the event was received, so a batch applied to Redis and not archived (a crash
between 2 and 3) finds its marks on redelivery for that long; after that, only archived events can come
back, and step 1 finds them. One window is left: a rebalance while a batch is archived. The worker that
lost the partition may still be archiving batch N (uncommitted) when the new owner plans the next one; a
copy of an event of N carrying another timestamp (another period's marks) is then counted in Redis
again, in that other period, while the archive keeps one (the copy's COPY fails on the key and the batch
is inserted again with conflict checks). Current usage and alerts read that period one event high until its
state expires; invoices, computed from the archive, are exact.

While Redis runs step 2, `apply` also makes the COPY text step 3 will load (no side effect: the
archive uses it only when it copies every event of the batch: all new to Redis, no period closed).

Steps 1-2 (`apply`) and 3-4 (`archive`) are separate calls so that `Pipeline` can overlap them
across batches: batch N+1 is planned and applied to Redis while PostgreSQL archives batch N. That
changes none of the above: each batch still reaches Redis before the archive, batches are archived
one at a time and in order, and a batch is acknowledged only after its own step 4, so a commit
never covers a batch that was not archived. A crash with two batches in flight redoes both.

Error kinds: an unusable event is *rejected* (routed, then committed), and so is an event whose
planning raised (a bug: `malformed`, replayable once fixed, instead of a worker that crash-loops
on it); Redis or PostgreSQL being unreachable is *transient* (`TransientError`: nothing is
committed, the agent backs off and retries the same batch); anything else is a bug and ends the
worker without committing (aggregator/app.py `abandon`), which then replays from the last commit.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Container, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, replace
from typing import NoReturn, TypeVar

import orjson
import psycopg
import sqlalchemy.exc

from aggregator.archive import EventArchive
from aggregator.catalog import SubscriptionCatalog
from aggregator.copy_text import copy_text
from aggregator.model import Rejected, SubscriptionView
from aggregator.planning import plan
from aggregator.touched import TouchedPair
from core.clients import REDIS_UNAVAILABLE
from core.usage_state.ops import Planned
from core.usage_state.redis_state import UsageState
from schemas.events import Event, event_from_message

log = logging.getLogger("meterline.aggregator")
MAX_BACKOFF_S = 5.0
# events decoded or planned between two yields to the event loop: a batch is ~100 ms of CPU, during
# which neither the previous batch's archive nor Faust's fetch loop could move on. Each of the
# archive's steps (lock, closed periods, two COPYs in several writes, commit) waits for the loop's
# next turn: at 1,000 events (~7 ms) a turn, the archive of a batch took as long as the next
# batch's apply and held it back; at 200, ~15% less.
YIELD_EVERY = 200
T = TypeVar("T")
U = TypeVar("U")
Identity = tuple[str, str, str]  # an event's (organization id, subscription external id, transaction_id)
RejectSink = Callable[[Sequence[tuple[bytes, bytes]]], Awaitable[None]]  # [(key, value)] -> all acknowledged
TouchedSink = Callable[[Sequence[TouchedPair]], Awaitable[None]]  # -> all published and acknowledged


async def in_turns(items: Sequence[T]) -> AsyncIterator[Sequence[T]]:
    """The items YIELD_EVERY at a time, the loop getting a turn before each slice."""
    for start in range(0, len(items), YIELD_EVERY):
        await asyncio.sleep(0)
        yield items[start:start + YIELD_EVERY]


async def _nothing() -> None:
    return None


class TransientError(RuntimeError):
    """A store is unreachable: retry the same batch later, commit nothing."""


@dataclass
class BatchResult:
    applied: int = 0  # events that changed Redis state (one the archive then refused is also in `rejected`)
    duplicates: int = 0  # copies of a transaction_id already counted (in this batch or before)
    archived: int = 0  # rows new to the archive (more than `applied` when a batch is redelivered)
    rejected: dict[str, int] = field(default_factory=dict)  # reason -> events sent to events.rejected
    visible_at: float = 0.0  # when the batch's usage became readable (Redis applied), Unix seconds
    received_at_us: list[int] = field(default_factory=list)  # ingest acceptance time of each applied candidate


@dataclass
class Applied:
    """A batch after steps 1-2: what the archive gets, and the rejects found so far."""

    result: BatchResult = field(default_factory=BatchResult)
    accepted: list[Event] = field(default_factory=list)
    owners: list[tuple[str, str]] = field(default_factory=list)  # each accepted event's (subscription id, period key)
    new_to_redis: list[bool] = field(default_factory=list)  # whether step 2 applied each accepted event
    # the message of each accepted event, by (organization, subscription, transaction_id): also what
    # tells a later copy in the batch that it is one
    payload_of: dict[Identity, bytes] = field(default_factory=dict)
    rejects: list[tuple[bytes, Rejected]] = field(default_factory=list)
    copy: tuple[str, str] | None = None  # the accepted events' COPY text (copy_text), made for the archive
    # the (subscription, period) pairs the batch touched whose subscription has alerts or progressive
    # billing thresholds (every planned event counts, one Redis already had too: step 4)
    watched: dict[tuple[str, str], SubscriptionView] = field(default_factory=dict)


async def copy_text_in_slices(events: Sequence[Event]) -> tuple[str, str]:
    """`copy_text(events)`, made YIELD_EVERY events at a time: between slices the loop moves on (the
    Redis scripts being sent, the previous batch's archive)."""
    keys: list[str] = []
    rows: list[str] = []
    async for some in in_turns(events):
        some_keys, some_rows = copy_text(some)
        keys.append(some_keys)
        rows.append(some_rows)
    return "".join(keys), "".join(rows)


def rejection_message(payload: bytes, rejection: Rejected) -> bytes:
    """What `events.rejected` carries: the reason, a human detail and the original message as sent."""
    try:
        original = orjson.loads(payload)
    except orjson.JSONDecodeError:
        original = payload.decode(errors="replace")
    return orjson.dumps({"reason": rejection.reason, "detail": rejection.detail, "event": original})


def rejection_key(payload: bytes) -> bytes:
    """The original partition key (organization:subscription) when the payload has one."""
    try:
        data = orjson.loads(payload)
        return f"{data['organization_id']}:{data['external_subscription_id']}".encode()
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return b""


class BatchProcessor:
    def __init__(self, catalog: SubscriptionCatalog, state: UsageState, archive: EventArchive,
                 reject: RejectSink, announce: TouchedSink):
        self.catalog = catalog
        self.state = state
        self.archive_store = archive
        self.reject = reject
        self.announce = announce

    async def apply(self, payloads: Sequence[bytes], in_flight: Container[Identity] = (),
                    settle: Callable[[], Awaitable[None]] = _nothing) -> Applied:
        """Steps 1-2. `in_flight`: the events of a batch before this one whose archive step has not finished;
        `settle()` waits until it has."""
        with transient_errors():
            return await self._apply(payloads, in_flight, settle)

    async def archive(self, applied: Applied) -> BatchResult:
        """Steps 3-4, for a batch `apply` went through."""
        with transient_errors():
            return await self._archive(applied)

    async def _apply(self, payloads: Sequence[bytes], in_flight: Container[Identity],
                     settle: Callable[[], Awaitable[None]]) -> Applied:
        applied = Applied()
        result, rejects = applied.result, applied.rejects
        decoded: list[tuple[bytes, Event, Identity]] = []
        keep = decoded.append
        async for some in in_turns(payloads):
            for payload in some:
                try:
                    event = event_from_message(payload)
                except ValueError as exc:
                    rejects.append((payload, Rejected("malformed", str(exc))))
                    continue
                keep((payload, event, (event.organization_id, event.external_subscription_id, event.transaction_id)))

        views = await self.catalog.lookup({identity[:2] for _, _, identity in decoded})
        # step 1b: the transaction_ids the archive already has, whatever their period (Redis's marks go with
        # their period); those of the batch still being archived (`in_flight`) are asked once it is done
        repeated = await self.archive_store.archived(
            [identity for _, _, identity in decoded if views.get(identity[:2]) is not None])
        planned: list[Planned] = []
        # the first accepted copy of each transaction; a rejected copy wins nothing
        first_copies = applied.payload_of
        watched = applied.watched
        candidates: list[tuple[Event, SubscriptionView, Planned, Identity]] = []
        later: list[Identity] = []  # copies of events of the batch being archived
        async for some_decoded in in_turns(decoded):
            for payload, event, identity in some_decoded:
                view = views.get(identity[:2])
                if view is not None:
                    view = view.at(event.timestamp_us)
                try:
                    outcome = plan(event, view)
                except Exception as exc:  # noqa: BLE001 - a planning bug must not stop the stream on this event
                    outcome = Rejected("malformed", f"the aggregator could not plan this event: {exc!r}")
                if isinstance(outcome, Rejected):
                    rejects.append((payload, outcome))
                    continue
                if identity in first_copies:
                    result.duplicates += 1
                    continue
                first_copies[identity] = payload
                candidates.append((event, view, outcome, identity))  # type: ignore[arg-type]  # planned: a view
                if identity in in_flight:
                    later.append(identity)
        if later:
            # a copy of an event of the batch still being archived: that batch may yet refuse its original (a
            # period closed meanwhile), so its archive is awaited and asked, rather than the copy dropped
            await settle()
            repeated = repeated | await self.archive_store.archived(later)
        accept, own, to_apply = applied.accepted.append, applied.owners.append, planned.append
        for event, view, outcome, identity in candidates:
            if view.watched:  # announced even when counted before, as on a redelivery (step 4)
                watched[(view.id, outcome.period_key)] = view
            if identity in repeated:  # counted before: neither applied nor archived again
                result.duplicates += 1
                continue
            to_apply(outcome)
            accept(event)
            own((view.id, outcome.period_key))

        redis_step = asyncio.ensure_future(self._apply_to_redis(planned))  # step 2
        try:
            # made while Redis runs the batch's scripts, on the guess that every accepted event is new
            # to it (in a redelivered batch some are not: the archive then makes its own)
            applied.copy = await copy_text_in_slices(applied.accepted)
        except BaseException:
            # scripts Redis ran already stay applied, each whole (their marks make the redo a no-op)
            redis_step.cancel()
            with suppress(BaseException):  # its outcome read: the batch fails either way
                await redis_step
            raise
        applied.new_to_redis, result.visible_at = await redis_step
        result.applied = sum(applied.new_to_redis)
        result.received_at_us = [event.received_at_us for event in applied.accepted]
        result.duplicates += len(planned) - result.applied
        return applied

    async def _apply_to_redis(self, planned: Sequence[Planned]) -> tuple[list[bool], float]:
        """Step 2: whether each event was new, and when the batch's usage became readable."""
        applied = await self.state.apply(planned)
        return applied, time.time()

    async def _archive(self, applied: Applied) -> BatchResult:
        result, rejects = replace(applied.result), list(applied.rejects)  # a retry starts from the same
        # step 3, and beside it the first half of step 4: what the batch touched, for the alerts worker
        storing = self.archive_store.store(applied.accepted, applied.owners, applied.new_to_redis, applied.copy)
        if applied.watched:
            touched = [TouchedPair(view.organization_id, view.external_id, subscription_id, period_key)
                       for (subscription_id, period_key), view in applied.watched.items()]
            stored, _ = await both(storing, self.announce(touched))
        else:
            stored = await storing
        result.archived = stored.archived
        result.duplicates += stored.already_closed
        for identity in stored.closed:  # closed while this batch was in flight: refused by the archive
            rejects.append((applied.payload_of[identity], Rejected(
                "period_closed", "the billing period of this event was invoiced before it was archived")))
        if rejects:  # step 4
            await self.reject([(rejection_key(payload), rejection_message(payload, rejection))
                               for payload, rejection in rejects])
        result.rejected = {}
        for _, rejection in rejects:
            result.rejected[rejection.reason] = result.rejected.get(rejection.reason, 0) + 1
        return result


async def both(first: Awaitable[T], second: Awaitable[U]) -> tuple[T, U]:
    """Run two steps concurrently and wait for both to end, even when one fails (a retry of the batch must
    not start while a step of the failed try still runs); then the first failure is raised."""
    done = await asyncio.gather(first, second, return_exceptions=True)
    for outcome in done:
        if isinstance(outcome, BaseException):
            raise outcome
    return done[0], done[1]  # type: ignore[return-value]


@contextmanager
def transient_errors() -> Iterator[None]:
    """A store that cannot be reached is a TransientError: retried, never skipped."""
    try:
        yield
    except REDIS_UNAVAILABLE as exc:
        raise TransientError(f"Redis unavailable: {exc}") from exc
    except (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError, OSError,
            psycopg.OperationalError, psycopg.InterfaceError) as exc:  # psycopg's own: the archive's COPY
        raise TransientError(f"PostgreSQL unavailable: {exc}") from exc


async def until_done(step: Callable[[], Awaitable[T]], size: int) -> T:
    """Run a step of a batch, retrying transient failures with backoff: the batch is never skipped,
    and nothing is committed (it is not acknowledged) until it went through."""
    backoff = 0.1
    while True:
        try:
            return await step()
        except TransientError as exc:
            log.warning("batch of %d held back, retrying in %.1fs: %s", size, backoff, exc)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF_S)


async def process_until_done(processor: BatchProcessor, batch: Sequence[bytes]) -> BatchResult:
    """One batch through all four steps, transient failures retried."""
    applied = await until_done(lambda: processor.apply(batch), len(batch))
    return await until_done(lambda: processor.archive(applied), len(batch))


Finished = Callable[[BatchResult], Awaitable[None]]


class Pipeline:
    """Batches through `apply` and `archive`, the archive of one overlapping the apply of the next.

    `submit` returns once its batch is applied (Redis), leaving the batch's archive step running;
    it first waits for the previous batch's archive, so at most one batch is being archived and
    batches finish in order. `finished(result)` runs after a batch's step 4: that is where the
    caller acknowledges it. A failure other than a transient one (a bug) goes to `failed`, which
    must not return (the worker leaves without acknowledging what is in flight).
    """

    def __init__(self, processor: BatchProcessor, failed: Callable[[int, BaseException], NoReturn]):
        self.processor = processor
        self.failed = failed
        self._archiving: asyncio.Future[None] | None = None
        self._archiving_size = 0
        self._archiving_events: dict[Identity, bytes] = {}

    @property
    def archiving(self) -> int:
        """Events of the batch being archived (0 when none is)."""
        return self._archiving_size if self._archiving is not None and not self._archiving.done() else 0

    async def submit(self, batch: Sequence[bytes], finished: Finished) -> None:
        # the batch being archived is not in the archive's committed rows yet: its events are passed along, so
        # that a copy of one in this batch (a timestamp in another period: other marks) counts once
        in_flight = self._archiving_events if self.archiving else {}
        applied = await until_done(lambda: self.processor.apply(batch, in_flight, self.drain), len(batch))
        await self.drain()
        self._archiving = asyncio.ensure_future(self._archive(applied, len(batch), finished))
        self._archiving_size = len(batch)
        self._archiving_events = applied.payload_of

    async def drain(self) -> None:
        """Wait until the batch being archived, if any, is finished."""
        if self._archiving is not None:
            await asyncio.shield(self._archiving)

    async def _archive(self, applied: Applied, size: int, finished: Finished) -> None:
        try:
            result = await until_done(lambda: self.processor.archive(applied), size)
            await finished(result)
        except BaseException as exc:  # noqa: BLE001 - a stop or a bug in the middle of a batch
            self.failed(size, exc)
