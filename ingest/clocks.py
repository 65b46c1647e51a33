"""Events to a test clock's customers: one sent without a timestamp takes its clock's time, not the wall clock's
(core.db.clocks). The subscriptions whose customers live on a live clock, with the clock's time, are read from
PostgreSQL every second; an event is given its clock's time here, at the edge, so the time it carries on Kafka
is the one every copy of it is counted at (exactly once, as any event). Sent within a second of an advance, it
may take the clock's time before the advance."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from core.db.tables import customers, subscriptions, test_clocks
from core.domain.lifecycle import METERED
from schemas.events import Event, epoch_us

log = logging.getLogger("meterline.ingest")
REFRESH_S = 1.0


class ClockTimes:
    """(organization id, external subscription id) → its test clock's time (epoch microseconds)."""

    def __init__(self) -> None:
        self.times: dict[tuple[str, str], int] = {}

    async def refresh(self, engine: AsyncEngine) -> None:
        async with engine.connect() as conn:
            rows = await conn.execute(
                select(subscriptions.c.organization_id, subscriptions.c.external_id, test_clocks.c.frozen_time)
                .join(customers, customers.c.id == subscriptions.c.customer_id)
                .join(test_clocks, test_clocks.c.id == customers.c.test_clock_id)
                .where(test_clocks.c.deleted_at.is_(None), subscriptions.c.status.in_((*METERED, "pending"))))
            self.times = {(row.organization_id, row.external_id): epoch_us(row.frozen_time) for row in rows}

    async def run(self, engine: AsyncEngine) -> None:
        """Refresh every second for ever (a task of the app's lifespan); a database away keeps the last read."""
        while True:
            try:
                await self.refresh(engine)
            except Exception:  # noqa: BLE001 - retried next second
                log.exception("reading the test clocks failed")
            await asyncio.sleep(REFRESH_S)

    def stamp(self, raw: Sequence[Any], events: Sequence[Event]) -> None:
        """Give each event sent without a timestamp (`raw`: the events as sent) its test clock's time."""
        if not self.times:
            return
        for item, event in zip(raw, events, strict=True):
            if isinstance(item, dict) and item.get("timestamp") is None:
                frozen = self.times.get((event.organization_id, event.external_subscription_id))
                if frozen is not None:
                    event.timestamp_us = frozen
