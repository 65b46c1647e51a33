"""Alerts and progressive billing thresholds as stored: reading them, and firing them exactly once.

`fire` is the one way a threshold fires: in the caller's transaction it takes the row lock of the
subject's record for the period (`threshold_states`), finds the levels crossed since the highest one
fired (core.domain.thresholds.crossed) and moves the record up. Whatever the caller writes with it
(a triggered alert and its webhook, a progressive crossing) commits or rolls back with the record, so
two evaluations of the same usage (a redelivered batch, two workers around a rebalance, a rebuilt
Redis) never fire a level twice, and an evaluation that did not commit fired nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, Numeric, String, column, func, select, values
from sqlalchemy.dialects.postgresql import UUID, insert
from sqlalchemy.ext.asyncio import AsyncConnection

from core.db.clocks import customer_now
from core.db.sql import any_of
from core.db.tables import (
    fees,
    invoice_subscriptions,
    invoices,
    progressive_crossings,
    subscriptions,
    threshold_states,
    triggered_alerts,
    usage_thresholds,
)
from core.db.webhooks import Announcement, enqueue_announcements
from core.domain.charges import units_text
from core.domain.thresholds import Crossing, Threshold, crossed

# the invoices whose usage fees count as invoiced usage (a lifetime alert's, lifetime_usage's)
INVOICED_STATUSES = ("draft", "finalized")


def alert_thresholds(stored: Sequence[Mapping[str, Any]]) -> tuple[Threshold, ...]:
    """An alert's `thresholds` column as values."""
    return tuple(Threshold(Decimal(t["value"]), bool(t["recurring"]), t.get("code")) for t in stored)


def usage_threshold_values(rows: Iterable[Any]) -> tuple[Threshold, ...]:
    """`usage_thresholds` rows as values (a threshold's `ref` is its id)."""
    return tuple(Threshold(Decimal(row.amount_cents), row.recurring, row.threshold_display_name, row.id)
                 for row in rows)


async def applicable_usage_thresholds(conn: AsyncConnection, subs: Iterable[tuple[str, str]]
                                      ) -> dict[str, list[Any]]:
    """Each subscription's progressive billing thresholds, by subscription id: its own when it has any
    (its plan_overrides), else its plan's; `subs` are (subscription id, plan id)."""
    wanted = dict(subs)
    found: dict[str, list[Any]] = {sub_id: [] for sub_id in wanted}
    if not wanted:
        return found
    rows = (await conn.execute(select(usage_thresholds).where(
        any_of(usage_thresholds.c.subscription_id, wanted) | any_of(usage_thresholds.c.plan_id, wanted.values()),
        usage_thresholds.c.deleted_at.is_(None))
        .order_by(usage_thresholds.c.amount_cents, usage_thresholds.c.created_at))).all()
    own: dict[str, list[Any]] = {}
    of_plan: dict[str, list[Any]] = {}
    for row in rows:
        if row.subscription_id is not None:
            own.setdefault(row.subscription_id, []).append(row)
        else:
            of_plan.setdefault(row.plan_id, []).append(row)
    for sub_id, plan_id in wanted.items():
        found[sub_id] = own.get(sub_id) or of_plan.get(plan_id, [])
    return found


async def invoiced_usage_by_period(conn: AsyncConnection, organization_id: str, external_ids: Iterable[str]
                                   ) -> dict[str, dict[str | None, int]]:
    """The usage fees invoiced so far to the subscriptions of each external_id (every plan it had), by
    external_id and by the usage period their invoice closes (None: none). Progressive billing invoices are
    left out: the regular invoice of their period bills the whole period's usage."""
    wanted = sorted(set(external_ids))
    found: dict[str, dict[str | None, int]] = {external_id: {} for external_id in wanted}
    if not wanted:
        return found
    moment = invoice_subscriptions.alias("moment")
    rows = await conn.execute(
        select(subscriptions.c.external_id, moment.c.closes_period_key, func.sum(fees.c.amount_cents))
        .select_from(fees.join(invoices, invoices.c.id == fees.c.invoice_id)
                     .join(subscriptions, subscriptions.c.id == fees.c.subscription_id)
                     .outerjoin(moment, (moment.c.invoice_id == fees.c.invoice_id)
                                & (moment.c.subscription_id == fees.c.subscription_id)
                                & moment.c.charges_from.is_not(None)))
        .where(subscriptions.c.organization_id == organization_id, subscriptions.c.external_id.in_(wanted),
               fees.c.fee_type == "charge", invoices.c.status.in_(INVOICED_STATUSES),
               invoices.c.invoice_type == "subscription")
        .group_by(subscriptions.c.external_id, moment.c.closes_period_key))
    for external_id, period_key, cents in rows:
        found[external_id][period_key] = int(cents)
    return found


async def invoiced_usage_cents(conn: AsyncConnection, organization_id: str, external_ids: Iterable[str]
                               ) -> dict[str, int]:
    """The usage fees invoiced so far to the subscriptions of each external_id, by external_id (what
    lifetime usage adds to the current period's)."""
    by_period = await invoiced_usage_by_period(conn, organization_id, external_ids)
    return {external_id: sum(periods.values()) for external_id, periods in by_period.items()}


async def fired_levels(conn: AsyncConnection, keys: Iterable[tuple[str, str]]
                       ) -> dict[tuple[str, str], tuple[Decimal | None, Decimal]]:
    """(highest level fired, value seen then) per (subject, period key) that has a record."""
    wanted = set(keys)
    if not wanted:
        return {}
    # by subject (a row-value IN of thousands of pairs is slow to plan), the periods sorted out here
    rows = await conn.execute(select(threshold_states).where(
        any_of(threshold_states.c.subject_id, {subject for subject, _ in wanted})))
    return {(row.subject_id, row.period_key): (row.fired_level, row.last_value) for row in rows
            if (row.subject_id, row.period_key) in wanted}


@dataclass(frozen=True)
class Measured:
    """What one evaluation measured for a subject (an alert, or a subscription's progressive billing) in a
    period, against its thresholds."""

    subject_id: str
    period_key: str
    thresholds: Sequence[Threshold]
    value: Decimal


@dataclass(frozen=True)
class Fired:
    crossings: list[Crossing]  # the levels this evaluation fires: none when another fired them first
    level: Decimal | None  # the highest level fired now (this evaluation's, or the one recorded)
    previous_value: Decimal  # the value the record held before


async def fire(conn: AsyncConnection, measured: Sequence[Measured]) -> list[Fired]:
    """What each evaluation fires, in the caller's transaction, in order; records of distinct
    (subject, period) pairs. Two statements whatever their number: one creates the missing records and
    takes every row lock, in key order (two transactions never wait on each other in a cycle), returning
    the records as committed; one moves up those crossed."""
    keys = [(m.subject_id, m.period_key) for m in measured]
    if len(set(keys)) != len(keys):
        raise ValueError("fire() takes each (subject, period) record once")
    if not measured:
        return []
    # DO UPDATE (of nothing): unlike DO NOTHING, it locks a record that exists, even one another transaction
    # inserted meanwhile, and returns it
    upsert = insert(threshold_states).values([{"subject_id": s, "period_key": p, "last_value": 0}
                                              for s, p in sorted(keys)])
    locked = await conn.execute(upsert.on_conflict_do_update(
        index_elements=["subject_id", "period_key"], set_={"updated_at": threshold_states.c.updated_at},
    ).returning(threshold_states.c.subject_id, threshold_states.c.period_key, threshold_states.c.fired_level,
                threshold_states.c.last_value))
    records = {(row.subject_id, row.period_key): row for row in locked}
    fired = []
    moved = []
    for m, key in zip(measured, keys, strict=True):
        record = records[key]
        crossings = crossed(m.thresholds, record.fired_level, m.value)
        if crossings:
            moved.append((m.subject_id, m.period_key, crossings[-1].level, m.value))
        fired.append(Fired(crossings, crossings[-1].level if crossings else record.fired_level, record.last_value))
    if moved:
        new = values(column("subject_id", UUID(as_uuid=False)), column("period_key", String),
                     column("level", Numeric), column("value", Numeric), name="new").data(moved)
        await conn.execute(threshold_states.update().where(
            threshold_states.c.subject_id == new.c.subject_id, threshold_states.c.period_key == new.c.period_key,
        ).values(fired_level=new.c.level, last_value=new.c.value, updated_at=func.now()))
    return fired


async def progressive_billed_cents(conn: AsyncConnection, subscription_ids: Iterable[str]
                                   ) -> dict[tuple[str, str], int]:
    """What the progressive billing invoices of each (subscription, period key) billed (their fees less
    their own progressive credit), for the invoices that deduct it."""
    wanted = sorted(set(subscription_ids))
    if not wanted:
        return {}
    rows = await conn.execute(
        select(progressive_crossings.c.subscription_id, progressive_crossings.c.period_key,
               func.sum(invoices.c.fees_amount_cents - invoices.c.progressive_billing_credit_amount_cents))
        .join(invoices, invoices.c.id == progressive_crossings.c.invoice_id)
        .where(progressive_crossings.c.subscription_id.in_(wanted), invoices.c.status.in_(INVOICED_STATUSES))
        .group_by(progressive_crossings.c.subscription_id, progressive_crossings.c.period_key))
    return {(sub_id, key): int(cents) for sub_id, key, cents in rows}


def crossed_json(crossings: Sequence[Crossing]) -> list[dict[str, Any]]:
    """The levels an evaluation crossed as stored and sent: the threshold's code, the level, recurring."""
    return [{"code": c.threshold.code, "value": units_text(c.level), "recurring": c.threshold.recurring}
            for c in crossings]


@dataclass(frozen=True)
class TriggeredAlert:
    """What an alert's evaluation fired."""

    organization_id: str
    alert_id: str
    subscription_id: str
    period_key: str
    crossings: Sequence[Crossing]
    current: Decimal
    previous: Decimal


@dataclass(frozen=True)
class ProgressiveCrossing:
    """A progressive billing level reached: the highest one crossed, with the usage it saw per charge."""

    organization_id: str
    subscription_id: str
    period_key: str
    highest: Crossing
    usage_amount_cents: int
    charges: Mapping[str, Any]


def _time_of(subscription_id: str) -> ColumnElement[datetime]:
    """When something happens to a subscription: now, or its customer's test clock's time (core.db.clocks)."""
    return customer_now(select(subscriptions.c.customer_id).where(subscriptions.c.id == subscription_id)
                        .scalar_subquery())


async def record_triggered_alerts(conn: AsyncConnection, triggered: Sequence[TriggeredAlert]) -> list[str]:
    """Triggered alerts and their `alert.triggered` webhooks, in the firing transaction; their ids."""
    ids = [str(uuid.uuid4()) for _ in triggered]
    if triggered:
        await conn.execute(insert(triggered_alerts).values([
            {"id": id_, "organization_id": t.organization_id, "alert_id": t.alert_id,
             "subscription_id": t.subscription_id, "period_key": t.period_key, "current_value": t.current,
             "previous_value": t.previous, "crossed_thresholds": crossed_json(t.crossings),
             "triggered_at": _time_of(t.subscription_id)}
            for id_, t in zip(ids, triggered, strict=True)]))
        await enqueue_announcements(conn, [Announcement(t.organization_id, id_, "alert.triggered")
                                           for id_, t in zip(ids, triggered, strict=True)])
    return ids


async def record_progressive_crossings(conn: AsyncConnection, reached: Sequence[ProgressiveCrossing]) -> list[str]:
    """Progressive billing levels reached (the biller invoices them) and their
    `subscription.usage_threshold_reached` webhooks, in the firing transaction; their ids."""
    ids = [str(uuid.uuid4()) for _ in reached]
    if reached:
        await conn.execute(insert(progressive_crossings).values([
            {"id": id_, "organization_id": r.organization_id, "subscription_id": r.subscription_id,
             "period_key": r.period_key, "level_cents": int(r.highest.level),
             "usage_threshold_id": r.highest.threshold.ref, "usage_amount_cents": r.usage_amount_cents,
             "charges": dict(r.charges), "reached_at": _time_of(r.subscription_id)}
            for id_, r in zip(ids, reached, strict=True)]))
        await enqueue_announcements(conn, [Announcement(r.organization_id, id_, "subscription.usage_threshold_reached")
                                           for id_, r in zip(ids, reached, strict=True)])
    return ids
