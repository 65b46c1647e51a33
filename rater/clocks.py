"""Test clocks advancing: what would have happened to a clock's customers up to its new time, run with the code
paths of real time, exactly once (every step is idempotent, as billing is).

`POST /test_clocks/{id}/advance` moves the clock (`status: advancing`, committed) and then runs it: the progressive
billing thresholds its customers reached are invoiced (as the biller does within a second in real time), pending
subscriptions start and scheduled ones end as of the clock (rater.activation, through core.db.clocks), trials end,
then the biller bills every moment due by the clock's time in order (trial ends, billing days, downgrades taking
effect, terminations), finalizes the drafts whose grace has ended and marks what is overdue, for the clock's
customers only; then the clock is `ready`. A clock left advancing (the API stopped mid-way) is run again by the
biller's next round.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from core.db.clocks import on_clock
from core.db.tables import customers, subscriptions, test_clocks
from rater.activation import activate_due, announce_trial_ends
from rater.biller import RunReport, run_once
from rater.billing.progressive import invoice_crossings


async def run_clock(engine: AsyncEngine, clock_id: str) -> RunReport:
    """Run the clock's customers up to its frozen_time, then mark it ready (unless it moved on meanwhile: the
    run of its newer time marks it)."""
    await invoice_crossings(engine)  # the progressive billing thresholds reached so far are invoiced first
    async with engine.begin() as conn:
        frozen: datetime = (await conn.execute(select(test_clocks.c.frozen_time)
                                               .where(test_clocks.c.id == clock_id))).scalar_one()
        theirs = subscriptions.c.customer_id.in_(select(customers.c.id).where(on_clock(clock_id)))
        await activate_due(conn, theirs)
        await announce_trial_ends(conn, theirs)
    report = await run_once(engine, frozen, clock_id=clock_id)
    async with engine.begin() as conn:
        await conn.execute(update(test_clocks).where(test_clocks.c.id == clock_id, test_clocks.c.frozen_time == frozen,
                                                     test_clocks.c.status == "advancing")
                           .values(status="ready", updated_at=func.now()))
    return report


LEFT_AFTER = timedelta(minutes=1)  # an advance running longer than this was cut short (they take seconds)


async def run_advancing(engine: AsyncEngine) -> int:
    """Run every clock left advancing (its advance was cut short); how many."""
    async with engine.connect() as conn:
        left = list((await conn.execute(select(test_clocks.c.id).where(
            test_clocks.c.status == "advancing", test_clocks.c.deleted_at.is_(None),
            test_clocks.c.updated_at < func.now() - LEFT_AFTER))).scalars())
    for clock_id in left:
        await run_clock(engine, clock_id)
    return len(left)
