"""How a customer's coupons reduce an invoice, as Lago applies them. Pure.

Only a finalized invoice takes coupons (a draft shows none until it is finalized). The customer's active
applied coupons are taken in turn: those limited to metrics first, then those limited to plans, then the
others, oldest applied first in each group, until nothing is left to reduce. Each one reduces:
- its eligible fees: a metric-limited coupon the usage fees of its metrics, a plan-limited one the fees of
  its plans' subscriptions, any other every fee; with none, it is left for a later invoice;
- by a `percentage` of what is left of them, or a `fixed_amount` (`once`: what is left of the amount,
  carried over to later invoices while it lasts; `recurring`/`forever`: the amount each time), never more
  than what is left of them (a limited coupon's base: its fees less what was taken from them, in whole cents);
- spread over those fees in proportion to what is left of each (precise to 5 decimals), before taxes.
Then: a `once` percentage coupon is used up, a `once` fixed one when nothing is left of it, a `recurring`
one when it has reduced `frequency_duration` invoices; a `forever` one never.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from decimal import ROUND_HALF_UP, Decimal

from core.domain.taxes import spread


@dataclass(frozen=True)
class AppliedCoupon:
    id: str
    coupon_id: str
    code: str
    name: str
    coupon_type: str  # fixed_amount or percentage
    frequency: str  # once, recurring or forever
    created_at_us: int
    amount_cents: int | None = None  # fixed_amount: each time (recurring, forever) or in all (once)
    currency: str | None = None
    percentage_rate: Decimal | None = None
    remaining_cents: int | None = None  # fixed_amount once: what is left of it
    duration_remaining: int | None = None  # recurring: invoices it still reduces
    plan_ids: frozenset[str] = frozenset()  # limited to these plans' subscriptions
    metric_ids: frozenset[str] = frozenset()  # limited to these metrics' usage fees


@dataclass(frozen=True)
class CouponFee:
    """A fee as coupons see it: its amount less what was taken from it before (`deducted`)."""

    amount_cents: int
    deducted: Decimal
    plan_id: str
    metric_id: str | None  # a usage fee's

    @property
    def left(self) -> Decimal:
        return Decimal(self.amount_cents) - self.deducted


@dataclass(frozen=True)
class Taken:
    """What one applied coupon took from the invoice, and what is left of it."""

    coupon: AppliedCoupon
    amount_cents: int
    used_up: bool
    duration_remaining: int | None
    remaining_cents: int | None


def coupon_order(coupons: Sequence[AppliedCoupon]) -> list[AppliedCoupon]:
    return sorted(coupons, key=lambda c: (not c.metric_ids, not c.plan_ids, c.created_at_us, c.id))


def _eligible(coupon: AppliedCoupon, fee: CouponFee) -> bool:
    if coupon.metric_ids:
        return fee.metric_id is not None and fee.metric_id in coupon.metric_ids
    if coupon.plan_ids:
        return fee.plan_id in coupon.plan_ids
    return True


def _amount(coupon: AppliedCoupon, base: int) -> int:
    if coupon.coupon_type == "percentage":
        value = Decimal(base) * (coupon.percentage_rate or Decimal(0)) / 100
        return base if value >= base else int(value.quantize(Decimal(1), ROUND_HALF_UP))
    if coupon.frequency == "once":
        return max(0, min(coupon.remaining_cents or 0, base))
    return max(0, min(coupon.amount_cents or 0, base))


def apply_coupons(fees: Sequence[CouponFee], subtotal: int, coupons: Sequence[AppliedCoupon], currency: str
                  ) -> tuple[list[Taken], list[Decimal]]:
    """What each coupon takes from an invoice whose fees are these and whose subtotal (fees less what was
    deducted before) is `subtotal`, in order; and each fee's share of it all."""
    shares = [Decimal(0)] * len(fees)
    current = list(fees)
    taken: list[Taken] = []
    for coupon in coupon_order(coupons):
        if subtotal <= 0:
            break
        if coupon.coupon_type == "fixed_amount" and coupon.currency != currency:
            continue
        eligible = [n for n, fee in enumerate(current) if _eligible(coupon, fee) and fee.left > 0]
        if not eligible:
            continue
        limited = bool(coupon.metric_ids or coupon.plan_ids)
        weight = sum((current[n].left for n in eligible), Decimal(0))
        base = min(int(weight), subtotal) if limited else subtotal
        credit = _amount(coupon, base)
        if credit <= 0:
            continue
        portions = spread(credit, [current[n].left if n in eligible else Decimal(0) for n in range(len(current))])
        for n in eligible:
            shares[n] += portions[n]
            current[n] = replace(current[n], deducted=current[n].deducted + portions[n])
        subtotal -= credit
        duration = coupon.duration_remaining
        remaining = coupon.remaining_cents
        if coupon.frequency == "recurring":
            duration = max((duration or 0) - 1, 0)
        if coupon.coupon_type == "fixed_amount" and coupon.frequency == "once":
            remaining = (remaining or 0) - credit
        used_up = (coupon.frequency == "once" and (coupon.coupon_type == "percentage" or (remaining or 0) <= 0)) or (
            coupon.frequency == "recurring" and duration == 0)
        taken.append(Taken(coupon, credit, used_up, duration, remaining))
    return taken, shares
