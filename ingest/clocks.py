"""Events to a test clock's customers: one sent without a timestamp takes its clock's time, not the wall clock's
(core.db.clocks), here at the edge, so the time it carries on Kafka is the one every copy of it is counted at
(exactly once, as any event).

The subscriptions whose customers live on a live clock, with the clock's time, are read from PostgreSQL every
second, with the organizations that have a live clock; an event of such an organization to a subscription not
read yet (created within the second) is looked up at once. Sent within a second of an advance, an event may take
the clock's time before the advance; one of an organization's first clock, within a second of its creation, the
wall clock's.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, select, tuple_
from sqlalchemy.ext.asyncio import AsyncEngine

from core.db.tables import customers, subscriptions, test_clocks
from core.domain.lifecycle import METERED
from schemas.events import Event, epoch_us

log = logging.getLogger("meterline.ingest")
REFRESH_S = 1.0
Key = tuple[str, str]  # (organization id, external subscription id)


def _on_clocks(*where: ColumnElement[bool]) -> Any:
    return (select(subscriptions.c.organization_id, subscriptions.c.external_id, test_clocks.c.frozen_time)
            .join(customers, customers.c.id == subscriptions.c.customer_id)
            .join(test_clocks, test_clocks.c.id == customers.c.test_clock_id)
            .where(test_clocks.c.deleted_at.is_(None), subscriptions.c.status.in_((*METERED, "pending")), *where))


class ClockTimes:
    """(organization id, external subscription id) → its test clock's time (epoch microseconds)."""

    def __init__(self) -> None:
        self.times: dict[Key, int] = {}
        self.organizations: frozenset[str] = frozenset()  # those with a live clock

    async def refresh(self, engine: AsyncEngine) -> None:
        async with engine.connect() as conn:
            rows = (await conn.execute(_on_clocks())).all()
            organizations = (await conn.execute(select(test_clocks.c.organization_id).distinct()
                                                .where(test_clocks.c.deleted_at.is_(None)))).scalars()
            self.organizations = frozenset(organizations)
        self.times = {(row.organization_id, row.external_id): epoch_us(row.frozen_time) for row in rows}

    async def run(self, engine: AsyncEngine) -> None:
        """Refresh every second for ever (a task of the app's lifespan); a database away keeps the last read."""
        while True:
            try:
                await self.refresh(engine)
            except Exception:  # noqa: BLE001 - retried next second
                log.exception("reading the test clocks failed")
            await asyncio.sleep(REFRESH_S)

    async def stamp(self, engine: AsyncEngine, raw: Sequence[Any], events: Sequence[Event]) -> None:
        """Give each event sent without a timestamp (`raw`: the events as sent, all of one organization) its test
        clock's time; nothing to look at for an organization without a live clock (the usual request)."""
        if not events or events[0].organization_id not in self.organizations:
            return
        missed: dict[Key, list[Event]] = {}
        for item, event in zip(raw, events, strict=True):
            if not isinstance(item, dict) or item.get("timestamp") is not None:
                continue
            key = (event.organization_id, event.external_subscription_id)
            frozen = self.times.get(key)
            if frozen is not None:
                event.timestamp_us = frozen
            else:
                missed.setdefault(key, []).append(event)
        if missed:
            async with engine.connect() as conn:
                rows = await conn.execute(_on_clocks(tuple_(subscriptions.c.organization_id,
                                                            subscriptions.c.external_id).in_(list(missed))))
                for row in rows:
                    key, frozen = (row.organization_id, row.external_id), epoch_us(row.frozen_time)
                    self.times[key] = frozen
                    for event in missed[key]:
                        event.timestamp_us = frozen
