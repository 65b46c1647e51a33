"""The durable event archive in PostgreSQL: idempotent batch inserts, first copy wins.

One statement per batch: the batch travels as one JSON document of rows (`jsonb_to_recordset`),
its keys go into `event_keys` (ON CONFLICT DO NOTHING), and only the rows whose key was new go
into the monthly partitioned `events` table (see migration 0005 for why the key lives in its own
table). One parameter keeps the statement the same for every batch size, so it is planned once;
building it is one orjson call, where per-column arrays cost psycopg ~30 us per event to dump.
Partitions are created the first time a month is seen (`meterline_events_partition`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import orjson
from sqlalchemy.ext.asyncio import AsyncEngine

from schemas.events import Event

INSERT_SQL = """
WITH input AS (
  SELECT * FROM jsonb_to_recordset(%(rows)s::jsonb)
    AS i(o uuid, s text, t text, l uuid, c text, ts bigint, p jsonb, a text, r bigint)
), fresh AS (
  INSERT INTO event_keys (organization_id, external_subscription_id, transaction_id, "timestamp")
  SELECT o, s, t, 'epoch'::timestamptz + ts * interval '1 microsecond' FROM input
  ON CONFLICT DO NOTHING
  RETURNING organization_id AS o, external_subscription_id AS s, transaction_id AS t
)
INSERT INTO events (organization_id, external_subscription_id, transaction_id, lago_id, code, "timestamp",
                    properties, precise_total_amount_cents, received_at)
SELECT i.o, i.s, i.t, i.l, i.c, 'epoch'::timestamptz + i.ts * interval '1 microsecond', i.p, i.a,
       'epoch'::timestamptz + i.r * interval '1 microsecond'
FROM input i JOIN fresh f USING (o, s, t)
"""
PARTITION_SQL = "SELECT meterline_events_partition('epoch'::timestamptz + %(us)s * interval '1 microsecond')"

def month_of(epoch_us: int) -> tuple[int, int]:
    moment = datetime.fromtimestamp(epoch_us // 1_000_000, tz=UTC)
    return moment.year, moment.month


def rows_document(batch: Sequence[Event]) -> str:
    """The batch as one JSON array of rows (INSERT_SQL's recordset): one orjson call for the whole
    batch, parsed by PostgreSQL in C; the properties travel as JSON, never re-encoded as text."""
    return orjson.dumps([
        {"o": e.organization_id, "s": e.external_subscription_id, "t": e.transaction_id, "l": e.lago_id,
         "c": e.code, "ts": e.timestamp_us, "p": e.properties, "a": e.precise_total_amount_cents,
         "r": e.received_at_us}
        for e in batch
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

    async def store(self, batch: Sequence[Event]) -> int:
        """Archive a batch; returns how many rows were new (the others were archived before)."""
        if not batch:
            return 0
        await self._ensure_partitions(batch)
        async with self.engine.begin() as conn:
            result = await conn.exec_driver_sql(INSERT_SQL, {"rows": rows_document(batch)})
            return int(result.rowcount)
