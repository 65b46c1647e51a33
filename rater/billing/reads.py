"""What billing reads from PostgreSQL: subscriptions to bill, their charges, the moments already
invoiced, the archive usage of moments, drafts due, and customers' last invoice numbers."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from core.db.catalog import charge_line, plan_charges, subscription_query
from core.db.clocks import on_clock
from core.db.tables import customers, invoice_subscriptions, invoices, subscriptions
from core.domain.aggregation import MetricUsage
from core.domain.lifecycle import BILLED
from core.domain.periods import Period
from rater.billing.archive_usage import windows_usage
from rater.billing.assemble import PlanItem, finalizes_zero_amount
from rater.billing.grouping import Catalog, Subscribed
from rater.billing.schedule import Due, Terms

UsageByMoment = dict[tuple[str, str], dict[str, MetricUsage]]  # (subscription id, billing key) -> usage


def subscribed(row: Any) -> Subscribed:
    """A `subscription_query()` row as billing sees it."""
    terms = Terms(
        subscription_id=row.id, customer_id=row.customer_id,
        started_at=row.started_at or row.subscription_at, created_at=row.created_at, interval=row.interval,
        billing_time=row.billing_time, timezone=row.timezone or "UTC", pay_in_advance=row.pay_in_advance,
        amount_cents=row.plan_amount_cents, trial_days=row.trial_period or 0,
        ended_at=row.terminated_at or min(filter(None, (row.ending_at, row.changes_at)), default=None),
        bill_charges_monthly=bool(row.bill_charges_monthly), anchor_at=row.anchor_at,
        follows_previous=row.follows_previous, started_by_upgrade=row.started_by_upgrade,
        ended_by_upgrade=row.ended_by_upgrade, credits_unused_fee=row.on_termination_credit_note == "credit",
        invoices_termination=row.on_termination_invoice == "generate",
    )
    return Subscribed(terms, row.organization_id, row.organization_name, row.external_id, row.plan_id,
                      PlanItem(row.plan_code, row.plan_name, row.plan_invoice_display_name), row.plan_amount_currency,
                      row.invoice_grace_period or 0, row.payment_term,
                      finalizes_zero_amount(row.finalize_zero_amount_invoice))


async def load_subscriptions(conn: AsyncConnection, as_of: datetime, organization_id: str | None = None,
                             clock_id: str | None = None) -> list[Subscribed]:
    """Every subscription that has started by `as_of` (pending ones count from their subscription_at), of the
    customers of test clock `clock_id` (None: of the customers on no clock)."""
    query = subscription_query(plan_changes=False).where(subscriptions.c.status.in_(BILLED),
                                                        subscriptions.c.subscription_at <= as_of, on_clock(clock_id))
    if organization_id is not None:
        query = query.where(subscriptions.c.organization_id == organization_id)
    return [subscribed(row) for row in (await conn.execute(query)).all()]


async def subscribed_by_id(conn: AsyncConnection, ids: Sequence[str]) -> list[Subscribed]:
    rows = (await conn.execute(subscription_query(plan_changes=False).where(
        subscriptions.c.id.in_(list(set(ids)))))).all()
    return [subscribed(row) for row in rows]


async def load_catalog(conn: AsyncConnection, plan_ids: Iterable[str]) -> Catalog:
    return {plan_id: [charge_line(row) for row in rows]
            for plan_id, rows in (await plan_charges(conn, plan_ids)).items()}


async def billed_keys(conn: AsyncConnection, subscription_ids: Sequence[str]) -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    for start in range(0, len(subscription_ids), 5000):
        chunk = subscription_ids[start:start + 5000]
        rows = await conn.execute(select(invoice_subscriptions.c.subscription_id, invoice_subscriptions.c.billing_key)
                                  .where(invoice_subscriptions.c.subscription_id.in_(chunk)))
        found.update((row.subscription_id, row.billing_key) for row in rows)
    return found


async def prefetch_usage(conn: AsyncConnection, items: Sequence[tuple[Subscribed, Due]], catalog: Catalog
                         ) -> UsageByMoment:
    """The archive usage of every moment, one query per (organization, plan, window) for all its subscriptions."""
    batches: dict[tuple[str, str, Period, Period], list[tuple[Subscribed, Due]]] = {}
    for sub, due in items:
        if due.charges is not None and catalog.get(sub.plan_id):
            key = (sub.organization_id, sub.plan_id, due.charges, due.closes or due.charges)
            batches.setdefault(key, []).append((sub, due))
    found: UsageByMoment = {}
    for (organization_id, plan_id, window, period), members in batches.items():
        metrics = [line.metric for line in catalog[plan_id]]
        for start in range(0, len(members), 2000):
            chunk = members[start:start + 2000]
            usage = await windows_usage(conn, organization_id, [sub.external_id for sub, _ in chunk], window, period,
                                        metrics)
            for sub, due in chunk:
                found[(sub.terms.subscription_id, due.billing_key)] = usage.get(sub.external_id, {})
    return found


async def drafts_due(conn: AsyncConnection, as_of: datetime, organization_id: str | None = None,
                     clock_id: str | None = None) -> list[str]:
    """The drafts whose grace has ended by `as_of`, of the customers of clock `clock_id` (None: on no clock)."""
    query = select(invoices.c.id).where(invoices.c.status == "draft", invoices.c.grace_until <= as_of,
                                        invoices.c.customer_id.in_(select(customers.c.id).where(on_clock(clock_id))))
    if organization_id is not None:
        query = query.where(invoices.c.organization_id == organization_id)
    rows = await conn.execute(query.order_by(invoices.c.due_at))
    return [row.id for row in rows]


async def last_sequential_ids(conn: AsyncConnection, customer_ids: Iterable[str]) -> dict[str, int]:
    """Each customer's highest invoice sequential id (0 without a finalized invoice). Read under the
    customers' locks (core.db.locks.lock_customers), so the next ones can be given out from it; the
    unique (customer, sequential_id) would refuse a mistake."""
    wanted = sorted(set(customer_ids))
    if not wanted:
        return {}
    rows = await conn.execute(select(invoices.c.customer_id, func.max(invoices.c.sequential_id))
                              .where(invoices.c.customer_id.in_(wanted)).group_by(invoices.c.customer_id))
    last = {customer_id: 0 for customer_id in wanted}
    last.update({customer_id: highest or 0 for customer_id, highest in rows})
    return last
