"""The durable event archive in PostgreSQL: idempotent batch inserts, first copy wins.

One statement per batch: the batch travels as one JSON document of rows (`jsonb_to_recordset`),
its keys go into `event_keys` (ON CONFLICT DO NOTHING), and only the rows whose key was new go
into the monthly partitioned `events` table (see migration 0005 for why the key lives in its own
table). One parameter keeps the statement the same for every batch size, so it is planned once;
building it is one orjson call, where per-column arrays cost psycopg ~30 us per event to dump.
Partitions are created the first time a month is seen (`meterline_events_partition`).

Closed periods are decided here, inside PostgreSQL, not from the catalog's 0.5 s cache: every row
carries its subscription id and period key, and a row whose (subscription, period) is in
`closed_periods` is not archived; its key comes back (`Stored.closed`) for the processor to reject
as `period_closed`. The biller closes a period and reads the usage it invoices in one transaction
holding the subscription's EXCLUSIVE advisory lock (rater.billing.locks); this transaction holds
the SHARED lock of each subscription of the batch, taken in its own statement *before* the insert
(in READ COMMITTED the insert's snapshot is taken when the insert starts, so it sees a close that
committed while we waited for the lock). So a row is either committed before the biller's read
(it is on the invoice) or checked after the close committed (it is rejected): never neither.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson
from sqlalchemy.ext.asyncio import AsyncEngine

from rater.billing.locks import lock_subscriptions_shared
from schemas.events import Event, moment_of


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
PARTITION_SQL = "SELECT meterline_events_partition('epoch'::timestamptz + %(us)s * interval '1 microsecond')"

def month_of(epoch_us: int) -> tuple[int, int]:
    moment = moment_of(epoch_us)
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
                for epoch_us in wanted.values():
                    await conn.exec_driver_sql(PARTITION_SQL, {"us": epoch_us})
            self._months.update(wanted)
        if batch:
            year, month = month_of(batch[-1].timestamp_us)
            start = int(datetime(year, month, 1, tzinfo=UTC).timestamp()) * 1_000_000
            end_year, end_month = (year + 1, 1) if month == 12 else (year, month + 1)
            end = int(datetime(end_year, end_month, 1, tzinfo=UTC).timestamp()) * 1_000_000
            self._window = (start, end)

    async def store(self, batch: Sequence[Event], owners: Sequence[tuple[str, str]]) -> Stored:
        """Archive a batch (owners[n]: event n's subscription id and period key), skipping the rows
        of closed periods; what was new, and what was refused as closed."""
        if not batch:
            return Stored(0, [], 0)
        await self._ensure_partitions(batch)
        rows = rows_document(batch, owners)  # before the transaction: PostgreSQL would wait for it
        async with self.engine.begin() as conn:
            await lock_subscriptions_shared(conn, [sid for sid, _ in owners])
            result = await conn.exec_driver_sql(INSERT_SQL, {"rows": rows})
            archived, closed, shut = result.one()
            return Stored(int(archived), [(o, s, t) for o, s, t in closed], int(shut) - len(closed))
