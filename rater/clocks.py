"""Test clocks advancing: what would have happened to a clock's customers up to its new time, run with the code
paths of real time, exactly once (every step is idempotent, as billing is).

`POST /test_clocks/{id}/advance` moves the clock (`status: advancing`, committed) and then runs it: the progressive
billing thresholds reached are invoiced (as the biller does within a second in real time), pending subscriptions
start and scheduled ones end as of the clock (rater.activation), trials end, then the biller bills every moment
due by the clock's time in order (trial ends, billing days, downgrades taking effect, terminations) as its
real-time rounds do, finalizes the drafts whose grace has ended and marks what is overdue, for the clock's
customers only; then the clock is `ready`.

One run of a clock at a time: a run holds the clock's lease (a PostgreSQL advisory lock, on a connection of its
own, released if its process dies); an advance or a delete meanwhile waits for it. A clock left advancing (the
API stopped mid-way) is run again by the biller's next round.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta

from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine

from core.db.tables import test_clocks
from rater.activation import activate_due, announce_trial_ends
from rater.biller import RunReport, run_once
from rater.billing.progressive import invoice_crossings

log = logging.getLogger("meterline.clocks")
MAX_ADVANCE = timedelta(days=400)  # one advance: a yearly plan's period and some (each moment is billed in turn)
LEFT_AFTER = timedelta(minutes=1)  # an advance running longer than this was cut short (they take seconds)


@asynccontextmanager
async def clock_lease(engine: AsyncEngine, clock_id: str, wait: bool = True) -> AsyncIterator[bool]:
    """Hold the clock's lease for the block (True), waiting for a run holding it; with `wait` False, yields False
    at once when it is held."""
    async with engine.connect() as conn:
        key = {"key": f"meterline:test_clock:{clock_id}"}
        if wait:
            await conn.execute(text("SELECT pg_advisory_lock(hashtextextended(:key, 0))"), key)
            held = True
        else:
            held = bool((await conn.execute(text("SELECT pg_try_advisory_lock(hashtextextended(:key, 0))"), key)
                         ).scalar())
        try:
            yield held
        finally:
            if held:
                await conn.execute(text("SELECT pg_advisory_unlock(hashtextextended(:key, 0))"), key)
            await conn.commit()


async def run_clock(engine: AsyncEngine, clock_id: str) -> RunReport | None:
    """Run the clock's customers up to its frozen_time under its lease, then mark it ready (unless it moved on
    meanwhile: the run of its newer time marks it). None when it was deleted meanwhile."""
    async with clock_lease(engine, clock_id):
        return await _run_leased(engine, clock_id)


async def _run_leased(engine: AsyncEngine, clock_id: str) -> RunReport | None:
    await invoice_crossings(engine)
    async with engine.begin() as conn:
        clock = (await conn.execute(select(test_clocks.c.frozen_time, test_clocks.c.deleted_at)
                                    .where(test_clocks.c.id == clock_id))).one()
        if clock.deleted_at is not None:
            return None
        frozen: datetime = clock.frozen_time
        await activate_due(conn, clock=(clock_id, frozen))
        await announce_trial_ends(conn, clock=(clock_id, frozen))
    # as the real-time rounds bill: from each subscription's creation day (on the clock) on
    report = await run_once(engine, frozen, backdated=False, clock_id=clock_id)
    async with engine.begin() as conn:
        await conn.execute(update(test_clocks).where(test_clocks.c.id == clock_id, test_clocks.c.frozen_time == frozen,
                                                     test_clocks.c.status == "advancing")
                           .values(status="ready", updated_at=func.now()))
    return report


async def run_advancing(engine: AsyncEngine) -> int:
    """Run every clock left advancing (its advance was cut short) that no one is running; how many were run. A
    clock whose run fails is logged and left for the next round, never holding back the others."""
    async with engine.connect() as conn:
        left = list((await conn.execute(select(test_clocks.c.id).where(
            test_clocks.c.status == "advancing", test_clocks.c.deleted_at.is_(None),
            test_clocks.c.updated_at < func.now() - LEFT_AFTER))).scalars())
    ran = 0
    for clock_id in left:
        try:
            async with clock_lease(engine, clock_id, wait=False) as held:
                if held:
                    await _run_leased(engine, clock_id)
                    ran += 1
        except Exception:  # noqa: BLE001 - the next round tries again
            log.exception("running test clock %s failed", clock_id)
    return ran
