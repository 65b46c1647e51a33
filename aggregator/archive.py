"""The durable event archive in PostgreSQL: idempotent batch inserts, first copy wins.

An event's key goes into `event_keys` (primary key: organization, subscription, transaction_id)
and only an event whose key was new goes into the monthly partitioned `events` table (see
migration 0005 for why the key lives in its own table). Partitions are created the first time a
month is seen (`meterline_events_partition`). A batch takes one of two ways in:
- COPY (aggregator/copy_text.py) for the events Redis's dedup marks took for new
  (`new_to_redis`): no JSON to parse, no conflict check per row, half of PostgreSQL's CPU per
  event. Their keys are expected to be new to the archive too (the processor looked the batch up in
  it first, `archived`); when one is not (a copy that met its original's batch in another worker
  during a rebalance, aggregator/processor.py), the COPY fails on the primary key, the transaction is
  rolled back and the whole batch is inserted again the careful way. A duplicate is never written.
- INSERT ... ON CONFLICT DO NOTHING (INSERT_SQL) for the others: copies Redis had already counted
  but the archive had not (a crash came between Redis and the archive: the processor's lookup let them
  through), and rows of a closed period. One statement per batch: the rows travel as one JSON document
  (`jsonb_to_recordset`), so the statement is the same for every batch size and planned once.

Closed periods are decided here, inside PostgreSQL, not from the catalog's cached views: every row
carries its subscription id and period key, and a row whose (subscription, period) is in
`closed_periods` is not archived; its key comes back (`Stored.closed`) for the processor to reject
as `period_closed`. The biller closes a period and reads the usage it invoices in one transaction
holding the subscription's EXCLUSIVE advisory lock (core.db.locks); this transaction holds
the SHARED lock of each subscription of the batch, taken in its own statement *before* the closed
periods are read (in READ COMMITTED a statement's snapshot is taken when it starts, so it sees a
close that committed while we waited for the lock). Rows of a closed (subscription, period) are
never copied: they go through INSERT_SQL. So a row is either committed before the biller's read
(it is on the invoice) or checked after the close committed (it is rejected): never neither.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

import orjson
import psycopg
import psycopg.errors
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from aggregator.copy_text import EVENT_COLUMNS, KEY_COLUMNS, copy_text
from core.db.locks import lock_subscriptions_shared
from schemas.events import Event, epoch_us, moment_of

log = logging.getLogger("meterline.aggregator")


@dataclass(frozen=True)
class Stored:
    """What one batch did to the archive."""

    archived: int  # rows new to the archive
    # (organization, subscription, transaction_id) refused: period closed, and never archived before
    closed: list[tuple[str, str, str]]
    already_closed: int  # rows of a closed period whose transaction_id was archived before it closed

INSERT_SQL = """
WITH input AS (
  SELECT * FROM jsonb_to_recordset(%(rows)s::jsonb)
    AS i(o uuid, s text, t text, l uuid, c text, ts bigint, p jsonb, a text, r bigint, sid uuid, pk text)
), shut AS (
  SELECT c.subscription_id AS sid, c.period_key AS pk
  FROM (SELECT DISTINCT sid, pk FROM input) d
  JOIN closed_periods c ON c.subscription_id = d.sid AND c.period_key = d.pk
), open AS (
  SELECT i.* FROM input i LEFT JOIN shut USING (sid, pk) WHERE shut.sid IS NULL
), fresh AS (
  INSERT INTO event_keys (organization_id, external_subscription_id, transaction_id, "timestamp")
  SELECT o, s, t, 'epoch'::timestamptz + ts * interval '1 microsecond' FROM open
  ON CONFLICT DO NOTHING
  RETURNING organization_id AS o, external_subscription_id AS s, transaction_id AS t
), written AS (
  INSERT INTO events (organization_id, external_subscription_id, transaction_id, lago_id, code, "timestamp",
                      properties, precise_total_amount_cents, received_at)
  SELECT i.o, i.s, i.t, i.l, i.c, 'epoch'::timestamptz + i.ts * interval '1 microsecond', i.p, i.a,
         'epoch'::timestamptz + i.r * interval '1 microsecond'
  FROM open i JOIN fresh f USING (o, s, t)
  RETURNING 1
)
SELECT (SELECT count(*) FROM written) AS archived,
       (SELECT coalesce(jsonb_agg(jsonb_build_array(i.o, i.s, i.t)), '[]'::jsonb) FROM input i JOIN shut USING (sid, pk)
        WHERE NOT EXISTS (SELECT 1 FROM event_keys k WHERE k.organization_id = i.o
                          AND k.external_subscription_id = i.s AND k.transaction_id = i.t)) AS closed,
       (SELECT count(*) FROM input i JOIN shut USING (sid, pk)) AS shut
"""
# which of the batch's (subscription, period) pairs are closed: 1-based positions in the arrays
CLOSED_SQL = """
SELECT o.n FROM unnest(%(sids)s::uuid[], %(keys)s::text[]) WITH ORDINALITY AS o(sid, pk, n)
JOIN closed_periods c ON c.subscription_id = o.sid AND c.period_key = o.pk
"""
# which of a batch's transaction_ids the archive has, per subscription: its ids in one array each, probed with
# `= ANY` (one index scan per subscription: a third of the time of joining the batch's rows one by one)
ARCHIVED_SQL = """
SELECT g.n, k.transaction_id
FROM jsonb_to_recordset(%(groups)s::jsonb) AS g(n int, o uuid, s text, t text[])
JOIN LATERAL (SELECT transaction_id FROM event_keys
              WHERE organization_id = g.o AND external_subscription_id = g.s AND transaction_id = ANY(g.t)) k ON true
"""
COPY_KEYS_SQL = "COPY event_keys ({}) FROM STDIN".format(", ".join(f'"{c}"' for c in KEY_COLUMNS))
COPY_EVENTS_SQL = "COPY events ({}) FROM STDIN".format(", ".join(f'"{c}"' for c in EVENT_COLUMNS))
PARTITION_SQL = "SELECT meterline_events_partition('epoch'::timestamptz + %(us)s * interval '1 microsecond')"

def month_of(moment_us: int) -> tuple[int, int]:
    moment = moment_of(moment_us)
    return moment.year, moment.month


def rows_document(batch: Sequence[Event], owners: Sequence[tuple[str, str]]) -> str:
    """The batch as one JSON array of rows (INSERT_SQL's recordset): one orjson call for the whole
    batch, parsed by PostgreSQL in C; the properties travel as JSON, never re-encoded as text.
    `owners[n]` is event n's (subscription id, period key)."""
    return orjson.dumps([
        {"o": e.organization_id, "s": e.external_subscription_id, "t": e.transaction_id, "l": e.lago_id,
         "c": e.code, "ts": e.timestamp_us, "p": e.properties, "a": e.precise_total_amount_cents,
         "r": e.received_at_us, "sid": sid, "pk": pk}
        for e, (sid, pk) in zip(batch, owners, strict=True)
    ]).decode()


class EventArchive:
    def __init__(self, engine: AsyncEngine):
        self.engine = engine
        self._months: set[tuple[int, int]] = set()
        # the month of the last timestamp seen, as a [start, start + 31 days) micros window: most
        # batches never leave it, so the month check costs two comparisons per event
        self._window = (0, 0)

    def _new_months(self, batch: Sequence[Event]) -> dict[tuple[int, int], int]:
        low, high = self._window
        wanted: dict[tuple[int, int], int] = {}
        for event in batch:
            if low <= event.timestamp_us < high:
                continue
            month = month_of(event.timestamp_us)
            if month not in self._months:
                wanted.setdefault(month, event.timestamp_us)
        return wanted

    async def _ensure_partitions(self, batch: Sequence[Event]) -> None:
        wanted = self._new_months(batch)
        if wanted:
            async with self.engine.begin() as conn:
                for moment_us in wanted.values():
                    await conn.exec_driver_sql(PARTITION_SQL, {"us": moment_us})
            self._months.update(wanted)
        if batch:
            year, month = month_of(batch[-1].timestamp_us)
            start = epoch_us(datetime(year, month, 1, tzinfo=UTC))
            end_year, end_month = (year + 1, 1) if month == 12 else (year, month + 1)
            end = epoch_us(datetime(end_year, end_month, 1, tzinfo=UTC))
            self._window = (start, end)

    async def archived(self, identities: Sequence[tuple[str, str, str]]) -> set[tuple[str, str, str]]:
        """Which of these (organization id, subscription external id, transaction_id) the archive has: one
        statement for a whole batch (an index scan of `event_keys` per subscription), outside any transaction."""
        if not identities:
            return set()
        groups: dict[tuple[str, str], list[str]] = {}
        for organization_id, subscription_id, transaction_id in identities:
            groups.setdefault((organization_id, subscription_id), []).append(transaction_id)
        scopes = list(groups)
        document = orjson.dumps([{"n": n, "o": o, "s": s, "t": groups[(o, s)]}
                                 for n, (o, s) in enumerate(scopes)]).decode()
        async with self.engine.connect() as conn:
            result = await conn.exec_driver_sql(ARCHIVED_SQL, {"groups": document})
            return {(*scopes[n], transaction_id) for n, transaction_id in result}

    async def store(self, batch: Sequence[Event], owners: Sequence[tuple[str, str]],
                    new_to_redis: Sequence[bool] = (), prepared: tuple[str, str] | None = None) -> Stored:
        """Archive a batch (owners[n]: event n's subscription id and period key; new_to_redis[n]:
        whether Redis's marks took event n for new, when known), skipping the rows of closed
        periods; what was new, and what was refused as closed. `prepared`: the whole batch's COPY
        text (`copy_text(batch)`), when the caller made it already; used only when every event is
        copied (`_Rows`)."""
        if not batch:
            return Stored(0, [], 0)
        await self._ensure_partitions(batch)
        # all of them, mostly (a batch seen for the first time): counted in C, not by a loop per event
        everyone = len(new_to_redis) == len(batch) and all(new_to_redis)
        copied = list(range(len(batch))) if everyone else [n for n, new in enumerate(new_to_redis) if new]
        try:
            return await self._store(batch, owners, copied, prepared)
        except psycopg.errors.UniqueViolation:
            log.warning("a batch of %d events held keys the archive already had but Redis had not: "
                        "inserted again with conflict checks", len(batch))
            return await self._store(batch, owners, [])

    async def _store(self, batch: Sequence[Event], owners: Sequence[tuple[str, str]], copied: list[int],
                     prepared: tuple[str, str] | None = None) -> Stored:
        rows = _Rows(batch, owners, copied, prepared)  # made before the transaction, where PostgreSQL would wait
        pairs = set(owners)  # the batch's (subscription, period) pairs: a few, for thousands of events
        async with self.engine.begin() as conn:
            await lock_subscriptions_shared(conn, [sid for sid, _ in pairs])
            if copied:  # the pairs of all rows are checked: those not copied are checked again by INSERT_SQL
                closed = await closed_pairs(conn, pairs)
                if closed:  # rare: a batch that met a close; its rows of the closed periods are checked
                    rows = _Rows(batch, owners, [n for n in copied if owners[n] not in closed])
                if rows.copy is not None:
                    await copy_rows(conn, *rows.copy)
            archived, closed_keys, shut = len(rows.copied), [], 0
            if rows.inserted:
                result = await conn.exec_driver_sql(INSERT_SQL, {"rows": rows.document})
                more, closed_keys, shut = result.one()
                archived += int(more)
            return Stored(archived, [(o, s, t) for o, s, t in closed_keys], int(shut) - len(closed_keys))


class _Rows:
    """A batch split between the two ways in: COPY text for the `copied` events, the JSON document
    of INSERT_SQL for the others (`inserted`)."""

    def __init__(self, batch: Sequence[Event], owners: Sequence[tuple[str, str]], copied: list[int],
                 prepared: tuple[str, str] | None = None):
        self.copied = copied
        if len(copied) == len(batch):  # every one of them (`copied` holds each position once)
            self.inserted: list[int] = []
            # the caller's text, when it holds a key row per event (a cheap check, in C)
            fits = prepared is not None and prepared[0].count("\n") == len(batch)
            self.copy = prepared if fits else copy_text(batch)
        else:
            taken = set(copied)
            self.inserted = [n for n in range(len(batch)) if n not in taken]
            self.copy = copy_text([batch[n] for n in copied]) if copied else None
        self.document = rows_document([batch[n] for n in self.inserted], [owners[n] for n in self.inserted])


async def closed_pairs(conn: AsyncConnection, pairs: set[tuple[str, str]]) -> set[tuple[str, str]]:
    """Which of these (subscription id, period key) pairs are closed."""
    ordered = list(pairs)
    result = await conn.exec_driver_sql(CLOSED_SQL, {"sids": [sid for sid, _ in ordered],
                                                     "keys": [key for _, key in ordered]})
    return {ordered[n - 1] for (n,) in result}


async def copy_rows(conn: AsyncConnection, keys: str, events: str) -> None:
    """COPY rows into `event_keys` and `events`, inside the connection's transaction."""
    driver = cast(psycopg.AsyncConnection[Any], (await conn.get_raw_connection()).driver_connection)
    async with driver.cursor() as cursor:
        async with cursor.copy(COPY_KEYS_SQL) as keys_copy:
            await keys_copy.write(keys)
        async with cursor.copy(COPY_EVENTS_SQL) as events_copy:
            await events_copy.write(events)
