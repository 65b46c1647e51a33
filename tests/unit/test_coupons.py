"""Coupons on an invoice (core.domain.coupons) and the contract's worked invoice to the cent (no services)."""

from __future__ import annotations

from decimal import Decimal

from core.domain.coupons import AppliedCoupon, CouponFee, apply_coupons, coupon_order
from core.domain.taxes import Tax
from rater.billing.assemble import Credit, take_credits
from rater.billing.taxing import progressive_shares, tax_fees

VAT = Tax("t-vat", "vat", "VAT", Decimal(20))


def coupon(code: str, kind: str = "fixed_amount", frequency: str = "once", at: int = 0, **more: object
           ) -> AppliedCoupon:
    fields: dict[str, object] = {"amount_cents": 1_000, "currency": "USD", "remaining_cents": 1_000} \
        if kind == "fixed_amount" else {"percentage_rate": Decimal(10)}
    fields.update(more)
    return AppliedCoupon(f"ac-{code}", f"c-{code}", code, code.title(), kind, frequency, at, **fields)  # type: ignore[arg-type]


TEAM = CouponFee(12_000, Decimal(0), "team", None)
USAGE = CouponFee(23_500, Decimal(0), "team", "mtu")


def test_the_contracts_worked_invoice_to_the_cent() -> None:
    """July 1: Team fee 12,000 + June's 30,000 MTUs 23,500; a $10 coupon once; VAT 20%; a 4,000 credit-note
    balance: coupons 1,000, sub total 34,500, taxes 6,900, credit notes 4,000, total 37,400."""
    rows = [{"id": "f1", "fee_type": "subscription", "charge_id": None, "billable_metric_id": None,
             "subscription_id": "s", "amount_cents": 12_000},
            {"id": "f2", "fee_type": "charge", "charge_id": "c", "billable_metric_id": "mtu", "subscription_id": "s",
             "amount_cents": 23_500}]
    progressive = progressive_shares(rows, 0)
    taken, shares = apply_coupons([TEAM, USAGE], 35_500, [coupon("welcome")], "USD")
    coupons_cents = sum(each.amount_cents for each in taken)
    subtotal = 35_500 - coupons_cents
    taxed = tax_fees("inv", rows, [a + b for a, b in zip(progressive, shares, strict=True)], lambda row: [VAT])
    credits = take_credits([Credit("cn", 4_000)], subtotal + taxed.invoice_taxes.amount_cents)
    total = subtotal + taxed.invoice_taxes.amount_cents - sum(cents for _, cents in credits)
    assert (coupons_cents, subtotal, taxed.invoice_taxes.amount_cents, credits, total) == (
        1_000, 34_500, 6_900, [("cn", 4_000)], 37_400)
    assert [r["precise_coupons_amount_cents"] for r in rows] == ["338.02817", "661.97183"]  # pro rata
    assert taken[0].used_up and taken[0].remaining_cents == 0


def test_metric_limited_coupons_go_first_then_plan_limited_then_the_oldest() -> None:
    ordered = coupon_order([coupon("old", at=1), coupon("plan", at=3, plan_ids=frozenset({"team"})),
                            coupon("metric", at=5, metric_ids=frozenset({"mtu"})), coupon("new", at=2)])
    assert [c.code for c in ordered] == ["metric", "plan", "old", "new"]


def test_a_fixed_amount_carries_over_and_a_percentage_takes_from_what_is_left() -> None:
    big = coupon("big", remaining_cents=50_000, amount_cents=50_000)
    taken, _ = apply_coupons([TEAM, USAGE], 35_500, [big, coupon("pct", "percentage", at=1)], "USD")
    assert [(t.coupon.code, t.amount_cents, t.used_up, t.remaining_cents) for t in taken] == [
        ("big", 35_500, False, 14_500)]  # nothing left for the percentage
    taken, _ = apply_coupons([TEAM, USAGE], 35_500, [coupon("ten"), coupon("pct", "percentage", at=1)], "USD")
    assert [(t.coupon.code, t.amount_cents, t.used_up) for t in taken] == [("ten", 1_000, True),
                                                                            ("pct", 3_450, True)]


def test_a_limited_coupon_reduces_only_its_fees_and_one_in_another_currency_nothing() -> None:
    metric = coupon("m", "percentage", metric_ids=frozenset({"mtu"}), percentage_rate=Decimal(50))
    taken, shares = apply_coupons([TEAM, USAGE], 35_500, [metric, coupon("eur", currency="EUR")], "USD")
    assert [(t.coupon.code, t.amount_cents) for t in taken] == [("m", 11_750)]
    assert shares == [Decimal(0), Decimal(11_750)]
    nothing, _ = apply_coupons([TEAM], 12_000, [coupon("p", plan_ids=frozenset({"other"}))], "USD")
    assert nothing == []


def test_recurring_coupons_count_down_invoices_and_forever_ones_never_end() -> None:
    recurring = coupon("r", frequency="recurring", duration_remaining=2, remaining_cents=None)
    forever = coupon("f", "percentage", frequency="forever", at=1)
    taken, _ = apply_coupons([TEAM], 12_000, [recurring, forever], "USD")
    assert [(t.coupon.code, t.amount_cents, t.used_up, t.duration_remaining) for t in taken] == [
        ("r", 1_000, False, 1), ("f", 1_100, False, None)]
    last, _ = apply_coupons([TEAM], 12_000, [coupon("r", frequency="recurring", duration_remaining=1,
                                                    remaining_cents=None)], "USD")
    assert (last[0].used_up, last[0].duration_remaining) == (True, 0)
