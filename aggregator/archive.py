"""The durable event archive in PostgreSQL: idempotent multi-row inserts (first copy wins)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from rater.tables import events
from schemas.events import Event


def _moment(epoch_us: int) -> datetime:
    return datetime.fromtimestamp(epoch_us / 1_000_000, tz=UTC)


def archive_row(event: Event) -> dict[str, object]:
    return {
        "organization_id": event.organization_id,
        "external_subscription_id": event.external_subscription_id,
        "transaction_id": event.transaction_id,
        "lago_id": event.lago_id,
        "code": event.code,
        "timestamp": _moment(event.timestamp_us),
        "properties": event.properties,
        "precise_total_amount_cents": event.precise_total_amount_cents,
        "received_at": _moment(event.received_at_us),
    }


class EventArchive:
    def __init__(self, engine: AsyncEngine):
        self.engine = engine
        self._statement = insert(events).on_conflict_do_nothing(constraint="uq_events_org_sub_transaction")

    async def store(self, batch: Sequence[Event]) -> None:
        if not batch:
            return
        async with self.engine.begin() as conn:
            await conn.execute(self._statement, [archive_row(event) for event in batch])
