"""Coupons on finalized invoices (core.domain.coupons): the customers' active applied coupons read under their
locks, what each invoice takes from them (coupon_credits), and what is left of them written back.

A billing transaction holds its customers' locks (core.db.locks) while it reads the coupons, applies them to
the invoices it finalizes in time order and writes what they took: two billers never take one coupon twice.
What is left of a `once` fixed amount is its amount less all its credits: voiding an invoice does not give
back what its coupons took (a used-up coupon stays terminated).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from core.db.sql import any_of
from core.db.tables import applied_coupons, coupon_credits, coupon_targets, coupons, invoices
from core.domain.coupons import AppliedCoupon, CouponFee, Taken, apply_coupons
from schemas.events import epoch_us


async def active_coupons(conn: AsyncConnection, customer_ids: Sequence[str]) -> dict[str, list[AppliedCoupon]]:
    """Each customer's active applied coupons, with their limits and what is left of them."""
    found: dict[str, list[AppliedCoupon]] = {customer_id: [] for customer_id in customer_ids}
    if not found:
        return found
    rows = (await conn.execute(
        select(applied_coupons, coupons.c.code, coupons.c.name, coupons.c.coupon_type)
        .join(coupons, coupons.c.id == applied_coupons.c.coupon_id)
        .where(any_of(applied_coupons.c.customer_id, list(found)), applied_coupons.c.status == "active"))).all()
    if not rows:
        return found
    targets: dict[str, tuple[set[str], set[str]]] = {row.coupon_id: (set(), set()) for row in rows}
    for target in await conn.execute(select(coupon_targets).where(any_of(coupon_targets.c.coupon_id, list(targets)))):
        plans, metrics = targets[target.coupon_id]
        if target.plan_id is not None:
            plans.add(target.plan_id)
        if target.billable_metric_id is not None:
            metrics.add(target.billable_metric_id)
    taken = dict((await conn.execute(
        select(coupon_credits.c.applied_coupon_id, func.sum(coupon_credits.c.amount_cents))
        .join(invoices, invoices.c.id == coupon_credits.c.invoice_id)
        .where(any_of(coupon_credits.c.applied_coupon_id, [row.id for row in rows]))
        .group_by(coupon_credits.c.applied_coupon_id))).tuples().all())
    for row in rows:
        plans, metrics = targets[row.coupon_id]
        found[row.customer_id].append(AppliedCoupon(
            id=row.id, coupon_id=row.coupon_id, code=row.code, name=row.name, coupon_type=row.coupon_type,
            frequency=row.frequency, created_at_us=epoch_us(row.created_at), amount_cents=row.amount_cents,
            currency=row.amount_currency,
            percentage_rate=Decimal(row.percentage_rate) if row.percentage_rate is not None else None,
            remaining_cents=(row.amount_cents or 0) - int(taken.get(row.id, 0)) if row.frequency == "once" else None,
            duration_remaining=row.frequency_duration_remaining, plan_ids=frozenset(plans),
            metric_ids=frozenset(metrics)))
    return found


@dataclass(frozen=True)
class Reduced:
    coupons_cents: int
    shares: list[Decimal]  # each fee's share of the coupons
    credit_rows: list[dict[str, Any]]  # coupon_credits rows
    taken: list[Taken]


def reduce(invoice_id: str, fee_rows: Sequence[dict[str, Any]], plan_of: dict[str, str], deducted: Sequence[Decimal],
           subtotal: int, available: list[AppliedCoupon], currency: str) -> Reduced:
    """What the customer's coupons (`available`, updated in place for its later invoices) take from an invoice
    being finalized: its fees less `deducted` (the progressive credit's shares), `subtotal` in all."""
    fees = [CouponFee(row["amount_cents"], share, plan_of[row["subscription_id"]],
                      row["billable_metric_id"] if row["fee_type"] == "charge" else None)
            for row, share in zip(fee_rows, deducted, strict=True)]
    taken, shares = apply_coupons(fees, subtotal, available, currency)
    for each in taken:
        index = next(n for n, coupon in enumerate(available) if coupon.id == each.coupon.id)
        if each.used_up:
            del available[index]
        else:
            available[index] = replace(each.coupon, remaining_cents=each.remaining_cents,
                                       duration_remaining=each.duration_remaining)
    rows = [{"id": str(uuid.uuid4()), "invoice_id": invoice_id, "applied_coupon_id": each.coupon.id,
             "amount_cents": each.amount_cents, "position": n} for n, each in enumerate(taken)]
    return Reduced(sum(each.amount_cents for each in taken), shares, rows, taken)


async def record_coupons(conn: AsyncConnection, credit_rows: Sequence[dict[str, Any]], taken: Sequence[Taken]) -> None:
    """Write what invoices took from coupons (the invoices written already), and what is left of them."""
    if credit_rows:
        await conn.execute(insert(coupon_credits), list(credit_rows))
    for each in taken:
        await conn.execute(update(applied_coupons).where(applied_coupons.c.id == each.coupon.id).values(
            frequency_duration_remaining=each.duration_remaining, updated_at=func.now(),
            **({"status": "terminated", "terminated_at": func.now()} if each.used_up else {})))


async def credits_of(conn: AsyncConnection, invoice_ids: Sequence[str]) -> dict[str, list[Any]]:
    """Each invoice's coupon credits with their coupon, in order (its `credits`)."""
    found: dict[str, list[Any]] = {invoice_id: [] for invoice_id in invoice_ids}
    if invoice_ids:
        for row in await conn.execute(
                select(coupon_credits, coupons.c.id.label("coupon_id"), coupons.c.code, coupons.c.name)
                .join(applied_coupons, applied_coupons.c.id == coupon_credits.c.applied_coupon_id)
                .join(coupons, and_(coupons.c.id == applied_coupons.c.coupon_id))
                .where(any_of(coupon_credits.c.invoice_id, list(invoice_ids)))
                .order_by(coupon_credits.c.invoice_id, coupon_credits.c.position)):
            found[row.invoice_id].append(row)
    return found
