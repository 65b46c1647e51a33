"""The durable event archive in PostgreSQL: idempotent batch inserts, first copy wins.

One statement per batch: the batch travels as one array per column (`unnest`), its keys go into
`event_keys` (ON CONFLICT DO NOTHING), and only the rows whose key was new go into the monthly
partitioned `events` table (see migration 0004 for why the key lives in its own table). Array
parameters keep the statement the same for every batch size, so PostgreSQL plans it once.
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
  SELECT * FROM unnest(%(org)s::uuid[], %(sub)s::text[], %(tx)s::text[], %(lago)s::uuid[], %(code)s::text[],
                       %(ts)s::bigint[], %(props)s::text[], %(amount)s::text[], %(recv)s::bigint[])
    AS i(organization_id, external_subscription_id, transaction_id, lago_id, code, ts_us, properties, amount,
         received_us)
), fresh AS (
  INSERT INTO event_keys (organization_id, external_subscription_id, transaction_id, "timestamp")
  SELECT organization_id, external_subscription_id, transaction_id,
         'epoch'::timestamptz + ts_us * interval '1 microsecond'
  FROM input
  ON CONFLICT DO NOTHING
  RETURNING organization_id, external_subscription_id, transaction_id
)
INSERT INTO events (organization_id, external_subscription_id, transaction_id, lago_id, code, "timestamp",
                    properties, precise_total_amount_cents, received_at)
SELECT i.organization_id, i.external_subscription_id, i.transaction_id, i.lago_id, i.code,
       'epoch'::timestamptz + i.ts_us * interval '1 microsecond', i.properties::jsonb, i.amount,
       'epoch'::timestamptz + i.received_us * interval '1 microsecond'
FROM input i JOIN fresh f USING (organization_id, external_subscription_id, transaction_id)
"""
PARTITION_SQL = "SELECT meterline_events_partition('epoch'::timestamptz + %(us)s * interval '1 microsecond')"

def month_of(epoch_us: int) -> tuple[int, int]:
    moment = datetime.fromtimestamp(epoch_us // 1_000_000, tz=UTC)
    return moment.year, moment.month


def columns(batch: Sequence[Event]) -> dict[str, list[object]]:
    """The batch as one list per column, in the order of INSERT_SQL's unnest."""
    return {
        "org": [e.organization_id for e in batch],
        "sub": [e.external_subscription_id for e in batch],
        "tx": [e.transaction_id for e in batch],
        "lago": [e.lago_id for e in batch],
        "code": [e.code for e in batch],
        "ts": [e.timestamp_us for e in batch],
        "props": [orjson.dumps(e.properties).decode() for e in batch],
        "amount": [e.precise_total_amount_cents for e in batch],
        "recv": [e.received_at_us for e in batch],
    }


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
            result = await conn.exec_driver_sql(INSERT_SQL, columns(batch))
            return int(result.rowcount)
