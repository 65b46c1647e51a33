"""Subscriptions change status on time: pending ones become active at `subscription_at`, active
ones with an `ending_at` or a scheduled downgrade (`changes_at`) are terminated then.

The status is written to PostgreSQL (before each subscription read of the API, for what it reads,
and every second by
the API's background loop), so every reader that filters on `status` (current usage, the biller,
the aggregator's catalog) sees the change within a second without knowing these rules. The subscriptions of a
customer on a test clock change only as its clock is advanced (rater.clocks), as of the clock's time.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime

from sqlalchemy import ColumnElement, and_, exists, func, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from core.db.tables import customers, plans, subscriptions
from core.db.webhooks import enqueue_webhooks

log = logging.getLogger("meterline.activation")
INTERVAL_S = 1.0
# the subscriptions of customers on no test clock (the subquery is evaluated once per statement)
OFF_CLOCK = subscriptions.c.customer_id.not_in(select(customers.c.id).where(customers.c.test_clock_id.is_not(None)))
ClockRun = tuple[str, datetime]  # a test clock being run (rater.clocks) and its time


def _as_of(clock: ClockRun | None) -> tuple[ColumnElement[bool], ColumnElement[datetime] | datetime]:
    """Which subscriptions change, and as of when: those on no clock as of now, else that clock's as of its time
    (a clock's customers change only as their clock is advanced)."""
    if clock is None:
        return OFF_CLOCK, func.now()
    return subscriptions.c.customer_id.in_(select(customers.c.id).where(customers.c.test_clock_id == clock[0])), \
        clock[1]


async def activate_due(conn: AsyncConnection, *scope: ColumnElement[bool], clock: ClockRun | None = None) -> int:
    """End every active subscription whose scheduled downgrade or `ending_at` has come, then activate
    every pending one whose start has come (a downgrade's successor starts as its predecessor ends:
    one active subscription per external_id), among those `scope` selects (all when empty); the number
    of subscriptions changed. An API read scopes it to what it reads, so it never writes other
    organizations' rows. subscription.terminated and subscription.started go to the webhook outbox in
    the same transaction."""
    on, now = _as_of(clock)
    scope = (*scope, on)
    ended = (await conn.execute(
        update(subscriptions)
        .where(subscriptions.c.status == "active", or_(subscriptions.c.changes_at <= now,
                                                       subscriptions.c.ending_at <= now), *scope)
        .values(status="terminated",
                terminated_at=func.least(subscriptions.c.changes_at, subscriptions.c.ending_at))
        .returning(subscriptions.c.id, subscriptions.c.organization_id)
    )).all()
    if ended:  # a downgrade whose current subscription ended before its day (its ending_at) never starts
        previous = subscriptions.alias("previous")
        await conn.execute(
            update(subscriptions)
            .where(subscriptions.c.status == "pending",
                   subscriptions.c.previous_subscription_id.in_([row.id for row in ended]),
                   previous.c.id == subscriptions.c.previous_subscription_id,
                   previous.c.terminated_at < subscriptions.c.subscription_at)
            .values(status="canceled", canceled_at=now))
    live = subscriptions.alias("live")
    activated = (await conn.execute(
        update(subscriptions)
        .where(subscriptions.c.status == "pending", subscriptions.c.subscription_at <= now, *scope,
               # one active subscription per external_id: a pending one waits until the active one ends
               ~exists().where(live.c.organization_id == subscriptions.c.organization_id,
                               live.c.external_id == subscriptions.c.external_id, live.c.status == "active"))
        .values(status="active", started_at=subscriptions.c.subscription_at)
        .returning(subscriptions.c.id, subscriptions.c.organization_id)
    )).all()
    for rows, kind in ((ended, "subscription.terminated"), (activated, "subscription.started")):
        for row in rows:
            await enqueue_webhooks(conn, row.organization_id, row.id, [kind])
    return len(ended) + len(activated)


async def announce_trial_ends(conn: AsyncConnection, *scope: ColumnElement[bool], clock: ClockRun | None = None
                              ) -> int:
    """Mark the subscriptions whose trial (counted from their chain's first start) has ended while they
    ran and queue subscription.trial_ended for each, once; the number marked. (One terminated within a
    second of its trial end, before this loop came round, is announced too.)"""
    on, now = _as_of(clock)
    scope = (*scope, on)
    trial_end = func.coalesce(subscriptions.c.anchor_at, subscriptions.c.started_at) \
        + plans.c.trial_period * text("interval '1 day'")
    ended = (await conn.execute(
        update(subscriptions)
        .where(subscriptions.c.status.in_(("active", "terminated")), subscriptions.c.trial_ended_at.is_(None),
               plans.c.id == subscriptions.c.plan_id, plans.c.trial_period > 0,
               trial_end <= func.coalesce(subscriptions.c.terminated_at, now), *scope)
        .values(trial_ended_at=trial_end)
        .returning(subscriptions.c.id, subscriptions.c.organization_id)
    )).all()
    for row in ended:
        await enqueue_webhooks(conn, row.organization_id, row.id, ["subscription.trial_ended"])
    return len(ended)


async def activation_loop(engine: AsyncEngine, interval_s: float = INTERVAL_S) -> None:
    """Run `activate_due` forever (a task of the API's lifespan); database errors are retried."""
    while True:
        try:
            async with engine.begin() as conn:
                count = await activate_due(conn) + await announce_trial_ends(conn)
            if count:
                log.info("%d subscription(s) activated or ended on time", count)
        except Exception:  # the database may restart; the next round retries
            log.exception("activating pending subscriptions failed")
        await asyncio.sleep(interval_s)


async def terminate(conn: AsyncConnection, now: datetime | ColumnElement[datetime], *which: ColumnElement[bool]
                    ) -> None:
    """End at `now` the live subscriptions `which` selects (one, or all of a customer or a plan being
    deleted): an active one is terminated, a pending one canceled, and so is a downgrade scheduled for
    a terminated one. `now` may be per row: each subscription's customer's (core.db.clocks.customer_now, for a
    plan's)."""
    terminated = (await conn.execute(
        update(subscriptions).where(subscriptions.c.status == "active", *which)
        .values(status="terminated", terminated_at=now, changes_at=None)
        .returning(subscriptions.c.id, subscriptions.c.organization_id))).all()
    ids = [row.id for row in terminated]
    canceled = (await conn.execute(update(subscriptions).where(
        subscriptions.c.status == "pending",
        or_(and_(*which), subscriptions.c.previous_subscription_id.in_(ids)) if ids else and_(*which))
        .values(status="canceled", canceled_at=now).returning(subscriptions.c.previous_subscription_id))).all()
    # a canceled downgrade: its current subscription goes on past the day it was to end
    await conn.execute(update(subscriptions).where(
        subscriptions.c.id.in_([row.previous_subscription_id for row in canceled if row.previous_subscription_id]),
        subscriptions.c.status == "active").values(changes_at=None))
    for row in terminated:
        await enqueue_webhooks(conn, row.organization_id, row.id, ["subscription.terminated"])
