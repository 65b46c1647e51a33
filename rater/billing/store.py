"""Billing's reads and writes in PostgreSQL: subscriptions to bill, invoices, fees, finalization.

Every write of an invoice happens inside one transaction that first takes a transaction-level
advisory lock on the customer, so two billers (or a biller and `PUT /invoices/.../finalize`) work
on one customer's invoices one after the other; the unique key (subscription, billing_key) is the
last word if anything ever slipped through: the losing transaction rolls back whole.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import String, column, delete, func, insert, literal, select, true, update, values
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from aggregator.aggregations import MetricUsage
from rater.billing.archive_usage import MetricSpec, window_usage, windows_usage
from rater.billing.assemble import (
    FeeLine,
    PlanItem,
    invoice_number,
    payment_status_at_finalization,
    usage_fees,
)
from rater.billing.locks import close_periods, lock_customers
from rater.billing.schedule import Due, Terms
from rater.billing.tables import fees, invoice_subscriptions, invoices, webhook_deliveries, webhook_endpoints
from rater.periods import Period
from rater.tables import billable_metrics, charges, customers, organizations, plans, subscriptions
from rater.usage import ChargeLine, units_text

BILLED_STATUSES = ("active", "pending", "terminated")


@dataclass(frozen=True)
class Subscribed:
    """A subscription as billing sees it."""

    terms: Terms
    organization_id: str
    organization_name: str
    external_id: str
    plan_id: str
    plan: PlanItem
    currency: str
    grace_days: int


Catalog = dict[str, list[tuple[ChargeLine, MetricSpec]]]  # plan id -> its charges with their metric


@dataclass
class Group:
    """What one invoice bills: the moments of one customer due at one instant."""

    organization_id: str
    organization_name: str
    customer_id: str
    currency: str
    at: datetime
    timezone: str
    grace_days: int
    items: list[tuple[Subscribed, Due]]

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


def _subscribed(row: Any) -> Subscribed:
    timezone = row.timezone or "UTC"
    terms = Terms(
        subscription_id=row.id, customer_id=row.customer_id,
        started_at=row.started_at or row.subscription_at, created_at=row.created_at, interval=row.interval,
        billing_time=row.billing_time, timezone=timezone, pay_in_advance=row.pay_in_advance,
        amount_cents=row.amount_cents, trial_days=row.trial_period or 0,
        ended_at=row.terminated_at or row.ending_at,
    )
    return Subscribed(terms, row.organization_id, row.organization_name, row.external_id, row.plan_id,
                      PlanItem(row.plan_code, row.plan_name, row.plan_invoice_display_name), row.amount_currency,
                      row.invoice_grace_period or 0)


def _subscriptions_query() -> Any:
    return (
        select(subscriptions.c.id, subscriptions.c.organization_id, subscriptions.c.customer_id,
               subscriptions.c.external_id, subscriptions.c.plan_id, subscriptions.c.billing_time,
               subscriptions.c.subscription_at, subscriptions.c.started_at, subscriptions.c.terminated_at,
               subscriptions.c.ending_at, subscriptions.c.created_at, plans.c.interval, plans.c.pay_in_advance,
               plans.c.amount_cents, plans.c.amount_currency, plans.c.trial_period, plans.c.code.label("plan_code"),
               plans.c.name.label("plan_name"), plans.c.invoice_display_name.label("plan_invoice_display_name"),
               customers.c.timezone, customers.c.invoice_grace_period,
               organizations.c.name.label("organization_name"))
        .join(plans, plans.c.id == subscriptions.c.plan_id)
        .join(customers, customers.c.id == subscriptions.c.customer_id)
        .join(organizations, organizations.c.id == subscriptions.c.organization_id)
    )


async def load_subscriptions(conn: AsyncConnection, as_of: datetime,
                             organization_id: str | None = None) -> list[Subscribed]:
    """Every subscription that has started by `as_of` (pending ones count from their subscription_at)."""
    query = _subscriptions_query().where(subscriptions.c.status.in_(BILLED_STATUSES),
                                         subscriptions.c.subscription_at <= as_of)
    if organization_id is not None:
        query = query.where(subscriptions.c.organization_id == organization_id)
    return [_subscribed(row) for row in (await conn.execute(query)).all()]


async def load_catalog(conn: AsyncConnection, plan_ids: Iterable[str]) -> Catalog:
    wanted = sorted(set(plan_ids))
    catalog: Catalog = {plan_id: [] for plan_id in wanted}
    if not wanted:
        return catalog
    rows = (await conn.execute(
        select(charges.c.id, charges.c.plan_id, charges.c.charge_model, charges.c.properties,
               charges.c.invoice_display_name, billable_metrics.c.id.label("metric_id"),
               billable_metrics.c.name, billable_metrics.c.code, billable_metrics.c.aggregation_type,
               billable_metrics.c.field_name, billable_metrics.c.rounding_function,
               billable_metrics.c.rounding_precision)
        .join(billable_metrics, billable_metrics.c.id == charges.c.billable_metric_id)
        .where(charges.c.plan_id.in_(wanted)).order_by(charges.c.plan_id, charges.c.position)
    )).all()
    for row in rows:
        line = ChargeLine(row.id, row.charge_model, row.properties, row.invoice_display_name, row.metric_id,
                          row.name, row.code, row.aggregation_type, row.rounding_function, row.rounding_precision)
        catalog[row.plan_id].append((line, MetricSpec(row.metric_id, row.code, row.aggregation_type,
                                                      row.field_name)))
    return catalog


async def billed_keys(conn: AsyncConnection, subscription_ids: Sequence[str]) -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    for start in range(0, len(subscription_ids), 5000):
        chunk = subscription_ids[start:start + 5000]
        rows = await conn.execute(select(invoice_subscriptions.c.subscription_id, invoice_subscriptions.c.billing_key)
                                  .where(invoice_subscriptions.c.subscription_id.in_(chunk)))
        found.update((row.subscription_id, row.billing_key) for row in rows)
    return found


UsageByMoment = dict[tuple[str, str], dict[str, MetricUsage]]  # (subscription id, billing key) -> usage


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
        specs = [spec for _, spec in catalog[plan_id]]
        for start in range(0, len(members), 2000):
            chunk = members[start:start + 2000]
            usage = await windows_usage(conn, organization_id, [sub.external_id for sub, _ in chunk], window, period,
                                        specs)
            for sub, due in chunk:
                found[(sub.terms.subscription_id, due.billing_key)] = usage.get(sub.external_id, {})
    return found


def fee_rows(invoice_id: str, subscription_id: str, lines: Sequence[FeeLine], currency: str,
              first_position: int) -> list[dict[str, Any]]:
    return [{
        "id": str(uuid.uuid4()), "invoice_id": invoice_id, "subscription_id": subscription_id,
        "fee_type": line.fee_type, "charge_id": line.charge_id, "billable_metric_id": line.billable_metric_id,
        "item_code": line.item_code, "item_name": line.item_name, "invoice_display_name": line.invoice_display_name,
        "units": units_text(line.units), "events_count": line.events_count, "amount_cents": line.amount_cents,
        "precise_amount_cents": str(line.precise_amount_cents), "currency": currency,
        "from_datetime": line.from_datetime, "to_datetime": line.to_datetime, "position": first_position + n,
    } for n, line in enumerate(lines)]


async def enqueue_webhooks(conn: AsyncConnection, organization_id: str, invoice_id: str,
                           webhook_types: Sequence[str]) -> None:
    """One outbox row per endpoint of the organization and webhook type, in the caller's transaction."""
    kinds = values(column("webhook_type", String), name="kinds").data([(kind,) for kind in webhook_types])
    rows = select(func.gen_random_uuid(), webhook_endpoints.c.organization_id, webhook_endpoints.c.id,
                  kinds.c.webhook_type, literal(invoice_id, UUID(as_uuid=False))).select_from(
        webhook_endpoints.join(kinds, true())).where(webhook_endpoints.c.organization_id == organization_id)
    await conn.execute(pg_insert(webhook_deliveries).from_select(
        ["id", "organization_id", "endpoint_id", "webhook_type", "object_id"], rows,
    ).on_conflict_do_nothing(constraint="uq_webhook_deliveries_once"))


async def organizations_with_webhooks(conn: AsyncConnection) -> set[str]:
    return set((await conn.execute(select(webhook_endpoints.c.organization_id).distinct())).scalars())


async def _finalize(conn: AsyncConnection, invoice_id: str, organization_id: str, customer_id: str,
                    organization_name: str, total: int) -> None:
    """Number the invoice and queue invoice.finalized (customer lock held, periods already closed)."""
    sequential_id = (await conn.execute(select(func.coalesce(func.max(invoices.c.sequential_id), 0) + 1)
                                        .where(invoices.c.customer_id == customer_id))).scalar_one()
    await conn.execute(update(invoices).where(invoices.c.id == invoice_id).values(
        status="finalized", sequential_id=sequential_id,
        number=invoice_number(organization_name, customer_id, sequential_id),
        payment_status=payment_status_at_finalization(total), finalized_at=func.now(), updated_at=func.now(),
    ))
    await enqueue_webhooks(conn, organization_id, invoice_id, ["invoice.finalized"])


async def _lock_draft(conn: AsyncConnection, invoice_id: str) -> Any:
    """The invoice under its customer's lock and a row lock; None when it is not a draft (any more)."""
    invoice = (await conn.execute(select(invoices).where(invoices.c.id == invoice_id))).one()
    await lock_customers(conn, [invoice.customer_id])
    invoice = (await conn.execute(select(invoices).where(invoices.c.id == invoice_id).with_for_update())).one()
    return invoice if invoice.status == "draft" else None


async def _moments(conn: AsyncConnection, invoice_id: str) -> list[Any]:
    return list((await conn.execute(
        select(invoice_subscriptions).where(invoice_subscriptions.c.invoice_id == invoice_id))).all())


async def _refresh_locked(conn: AsyncConnection, invoice: Any, moments: list[Any]) -> int:
    """Recompute a locked draft's usage fees from the archive (a new snapshot: late events count);
    its new total in cents. `moments`: its invoice_subscriptions rows."""
    invoice_id = invoice.id
    found = await _subscribed_by_id(conn, [m.subscription_id for m in moments])
    subscribed = {s.terms.subscription_id: s for s in found}
    catalog = await load_catalog(conn, [s.plan_id for s in subscribed.values()])
    await conn.execute(delete(fees).where(fees.c.invoice_id == invoice_id, fees.c.fee_type == "charge"))
    position = (await conn.execute(select(func.count()).where(fees.c.invoice_id == invoice_id))).scalar_one()
    rows: list[dict[str, Any]] = []
    for moment in moments:
        if moment.charges_from is None:
            continue
        sub = subscribed[moment.subscription_id]
        window = Period(moment.charges_from, moment.charges_to)
        due = Due(moment.kind, invoice.due_at, moment.billing_key, moment.fee_amount_cents, moment.fee_from,
                  moment.fee_to, window, Period(moment.period_start, moment.period_end))
        entries = catalog.get(sub.plan_id, [])
        usage = await window_usage(conn, sub.organization_id, sub.external_id, window, due.closes or window,
                                   [spec for _, spec in entries])
        lines = usage_fees(due, [line for line, _ in entries], usage, invoice.currency)
        rows += fee_rows(invoice_id, sub.terms.subscription_id, lines, invoice.currency, position + len(rows))
    if rows:
        await conn.execute(insert(fees), rows)
    total = (await conn.execute(select(func.coalesce(func.sum(fees.c.amount_cents), 0))
                                .where(fees.c.invoice_id == invoice_id))).scalar_one()
    await conn.execute(update(invoices).where(invoices.c.id == invoice_id).values(
        fees_amount_cents=total, total_amount_cents=total, updated_at=func.now()))
    return int(total)


async def refresh_draft(conn: AsyncConnection, invoice_id: str) -> bool:
    """Recompute a draft's usage fees from the archive (late events count); False when not a draft."""
    invoice = await _lock_draft(conn, invoice_id)
    if invoice is None:
        return False
    await _refresh_locked(conn, invoice, await _moments(conn, invoice_id))
    return True


async def finalize_draft(conn: AsyncConnection, invoice_id: str) -> bool:
    """Close the draft's billing periods, refresh it from the archive, then number it, in the
    caller's transaction (committed durably); False when it was not a draft.

    The order is what keeps late events from vanishing: the periods are closed under the
    subscriptions' exclusive locks (rater.billing.locks) before the usage is read, so an event is
    either archived before the read (on this invoice) or refused by the archive as period_closed.
    """
    invoice = await _lock_draft(conn, invoice_id)
    if invoice is None:
        return False
    moments = await _moments(conn, invoice_id)
    await close_periods(conn, [(m.subscription_id, m.closes_period_key) for m in moments
                               if m.closes_period_key is not None])
    total = await _refresh_locked(conn, invoice, moments)
    name = (await conn.execute(select(organizations.c.name).where(organizations.c.id == invoice.organization_id))
            ).scalar_one()
    await _finalize(conn, invoice_id, invoice.organization_id, invoice.customer_id, name, total)
    return True


async def drafts_due(conn: AsyncConnection, as_of: datetime, organization_id: str | None = None) -> list[str]:
    query = select(invoices.c.id).where(invoices.c.status == "draft", invoices.c.grace_until <= as_of)
    if organization_id is not None:
        query = query.where(invoices.c.organization_id == organization_id)
    rows = await conn.execute(query.order_by(invoices.c.due_at))
    return [row.id for row in rows]


async def _subscribed_by_id(conn: AsyncConnection, ids: Sequence[str]) -> list[Subscribed]:
    rows = (await conn.execute(_subscriptions_query().where(subscriptions.c.id.in_(list(set(ids)))))).all()
    return [_subscribed(row) for row in rows]
