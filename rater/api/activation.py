"""Pending subscriptions become active when their `subscription_at` comes.

The status is written back to PostgreSQL (before each subscription read of the API, and every
second by the API's background loop), so every reader that filters on `status = 'active'` (current
usage, the biller) sees the activation within a second without knowing about pending ones.
"""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy import func, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from rater.tables import subscriptions

log = logging.getLogger("meterline.activation")
INTERVAL_S = 1.0


async def activate_due(conn: AsyncConnection) -> int:
    """Activate every pending subscription whose start has come; the number activated."""
    result = await conn.execute(
        update(subscriptions)
        .where(subscriptions.c.status == "pending", subscriptions.c.subscription_at <= func.now())
        .values(status="active", started_at=subscriptions.c.subscription_at)
    )
    return result.rowcount or 0


async def activation_loop(engine: AsyncEngine, interval_s: float = INTERVAL_S) -> None:
    """Run `activate_due` forever (a task of the API's lifespan); database errors are retried."""
    while True:
        try:
            async with engine.begin() as conn:
                count = await activate_due(conn)
            if count:
                log.info("activated %d pending subscription(s)", count)
        except Exception:  # the database may restart; the next round retries
            log.exception("activating pending subscriptions failed")
        await asyncio.sleep(interval_s)
