"""Subscriptions change status on time: pending ones become active at `subscription_at`, active
ones with an `ending_at` are terminated then (`terminated_at = ending_at`).

The status is written to PostgreSQL (before each subscription read of the API, for what it reads,
and every second by
the API's background loop), so every reader that filters on `status` (current usage, the biller,
the aggregator's catalog) sees the change within a second without knowing these rules.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime

from sqlalchemy import ColumnElement, func, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from core.db.tables import subscriptions
from core.domain.lifecycle import LIVE

log = logging.getLogger("meterline.activation")
INTERVAL_S = 1.0


async def activate_due(conn: AsyncConnection, *scope: ColumnElement[bool]) -> int:
    """Activate every pending subscription whose start has come, then end those whose `ending_at`
    has come, among those `scope` selects (all when empty); the number of subscriptions changed.
    An API read scopes it to what it reads, so it never writes other organizations' rows."""
    activated = await conn.execute(
        update(subscriptions)
        .where(subscriptions.c.status == "pending", subscriptions.c.subscription_at <= func.now(), *scope)
        .values(status="active", started_at=subscriptions.c.subscription_at)
    )
    ended = await conn.execute(
        update(subscriptions)
        .where(subscriptions.c.status == "active", subscriptions.c.ending_at <= func.now(), *scope)
        .values(status="terminated", terminated_at=subscriptions.c.ending_at)
    )
    return (activated.rowcount or 0) + (ended.rowcount or 0)


async def activation_loop(engine: AsyncEngine, interval_s: float = INTERVAL_S) -> None:
    """Run `activate_due` forever (a task of the API's lifespan); database errors are retried."""
    while True:
        try:
            async with engine.begin() as conn:
                count = await activate_due(conn)
            if count:
                log.info("%d subscription(s) activated or ended on time", count)
        except Exception:  # the database may restart; the next round retries
            log.exception("activating pending subscriptions failed")
        await asyncio.sleep(interval_s)


async def terminate(conn: AsyncConnection, now: datetime, *which: ColumnElement[bool]) -> None:
    """Terminate now the live (active or pending) subscriptions `which` selects: one, or all of a
    customer or a plan being deleted."""
    await conn.execute(update(subscriptions).where(subscriptions.c.status.in_(LIVE), *which)
                       .values(status="terminated", terminated_at=now))
