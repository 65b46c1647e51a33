"""The catalog as every service reads it: one subscription query, one charge query, one way to map their rows.

`subscription_query()` joins a subscription to its plan, customer and organization; the API, current
usage, the aggregator and the biller narrow it with their own `where`. `plan_charges()` reads the
charges of plans with their billable metric, in the plan's order; `plan_usage_thresholds()` their
progressive billing thresholds, `shown_usage_thresholds()` those that apply to subscriptions. The row
mappers turn those rows into the domain's values (`BillingCycle` of billing and of usage, `Metric`,
`ChargeLine`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from core.db.tables import (
    billable_metrics,
    charges,
    customers,
    organizations,
    plans,
    subscriptions,
    test_clocks,
    usage_thresholds,
)
from core.db.thresholds import applicable_usage_thresholds
from core.domain.aggregation import Metric
from core.domain.charges import ChargeLine
from core.domain.periods import BillingCycle, subscription_cycle, usage_cycle_of

# A customer's `finalize_zero_amount_invoice` (inherit, finalize, skip), kept among its attributes
FINALIZE_ZERO_AMOUNT = customers.c.attributes["finalize_zero_amount_invoice"].astext
# Days from an invoice's issuing date to its due date: the customer's `net_payment_term`, else its
# organization's (a query selecting it joins both)
PAYMENT_TERM = func.coalesce(customers.c.net_payment_term, organizations.c.net_payment_term)


def subscription_query(plan_changes: bool = True) -> Select:
    """Subscriptions (every column) with what their readers need of the plan, customer and organization;
    with `plan_changes`, the plan codes of the subscription a plan change replaced and of a scheduled
    downgrade's (what the API shows; billing and the aggregator do without the four joins)."""
    query = (
        select(subscriptions,
               plans.c.code.label("plan_code"), plans.c.name.label("plan_name"),
               plans.c.invoice_display_name.label("plan_invoice_display_name"), plans.c.interval,
               plans.c.pay_in_advance, plans.c.bill_charges_monthly, plans.c.amount_cents.label("plan_amount_cents"),
               plans.c.amount_currency.label("plan_amount_currency"), plans.c.trial_period,
               customers.c.external_id.label("external_customer_id"), customers.c.timezone,
               customers.c.invoice_grace_period, customers.c.net_payment_term, PAYMENT_TERM.label("payment_term"),
               customers.c.test_clock_id, test_clocks.c.frozen_time.label("clock_time"),
               FINALIZE_ZERO_AMOUNT.label("finalize_zero_amount_invoice"),
               organizations.c.name.label("organization_name"))
        .join(plans, plans.c.id == subscriptions.c.plan_id)
        .join(customers, customers.c.id == subscriptions.c.customer_id)
        .join(organizations, organizations.c.id == subscriptions.c.organization_id)
        .outerjoin(test_clocks, test_clocks.c.id == customers.c.test_clock_id)
    )
    if not plan_changes:
        return query
    previous, previous_plan = subscriptions.alias("previous"), plans.alias("previous_plan")
    following, next_plan = subscriptions.alias("following"), plans.alias("next_plan")
    return (
        query.add_columns(previous_plan.c.code.label("previous_plan_code"), next_plan.c.code.label("next_plan_code"))
        .outerjoin(previous, previous.c.id == subscriptions.c.previous_subscription_id)
        .outerjoin(previous_plan, previous_plan.c.id == previous.c.plan_id)
        .outerjoin(following, (following.c.previous_subscription_id == subscriptions.c.id)
                   & (following.c.status == "pending"))
        .outerjoin(next_plan, next_plan.c.id == following.c.plan_id)
    )


def billing_cycle(row: Any) -> BillingCycle:
    """How the periods of a `subscription_query()` row are cut; a pending subscription's from its subscription_at."""
    return subscription_cycle(row.interval, row.billing_time, row.timezone or "UTC",
                              row.started_at or row.subscription_at, row.anchor_at, row.follows_previous)


def usage_cycle(row: Any) -> BillingCycle:
    """How the usage of a `subscription_query()` row is cut into periods: its billing periods, or months
    for a yearly plan that bills its charges monthly. Usage state, closed periods and current usage use it."""
    return usage_cycle_of(billing_cycle(row), row.bill_charges_monthly)


async def plan_charges(conn: AsyncConnection, plan_ids: Iterable[str]) -> dict[str, list[Any]]:
    """Each plan's charges (every column) with their billable metric, in the plan's order."""
    wanted = sorted(set(plan_ids))
    grouped: dict[str, list[Any]] = {plan_id: [] for plan_id in wanted}
    if not wanted:
        return grouped
    rows = await conn.execute(
        select(charges, billable_metrics.c.code.label("billable_metric_code"),
               billable_metrics.c.name.label("billable_metric_name"), billable_metrics.c.aggregation_type,
               billable_metrics.c.field_name, billable_metrics.c.rounding_function,
               billable_metrics.c.rounding_precision)
        .join(billable_metrics, billable_metrics.c.id == charges.c.billable_metric_id)
        .where(charges.c.plan_id.in_(wanted)).order_by(charges.c.plan_id, charges.c.position)
    )
    for row in rows:
        grouped[row.plan_id].append(row)
    return grouped


async def plan_usage_thresholds(conn: AsyncConnection, plan_ids: Iterable[str]) -> dict[str, list[Any]]:
    """Each plan's progressive billing thresholds (every column), by amount."""
    wanted = sorted(set(plan_ids))
    grouped: dict[str, list[Any]] = {plan_id: [] for plan_id in wanted}
    if not wanted:
        return grouped
    rows = await conn.execute(select(usage_thresholds).where(
        usage_thresholds.c.plan_id.in_(wanted), usage_thresholds.c.deleted_at.is_(None))
        .order_by(usage_thresholds.c.amount_cents, usage_thresholds.c.recurring))
    for row in rows:
        grouped[row.plan_id].append(row)
    return grouped


async def shown_usage_thresholds(conn: AsyncConnection, rows: Iterable[Any]) -> dict[str, list[Any]]:
    """The progressive billing thresholds that apply to each subscription (`subscriptions` rows, by id):
    none while its progressive billing is disabled, else its own, else its plan's. One query for a page."""
    listed = list(rows)
    found = await applicable_usage_thresholds(
        conn, [(row.id, row.plan_id) for row in listed if not row.progressive_billing_disabled])
    return {row.id: found.get(row.id, []) for row in listed}


def metric(row: Any) -> Metric:
    """The billable metric of a `plan_charges` row."""
    return Metric(row.billable_metric_id, row.billable_metric_code, row.aggregation_type, row.field_name)


def charge_line(row: Any) -> ChargeLine:
    """A `plan_charges` row as pricing sees it."""
    return ChargeLine(row.id, row.charge_model, row.properties, row.invoice_display_name, metric(row),
                      row.billable_metric_name, row.rounding_function, row.rounding_precision, row.min_amount_cents)
