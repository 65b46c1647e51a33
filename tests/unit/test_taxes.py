"""Taxes on fees and invoices (core.domain.taxes, rater.billing.taxing): Lago's precedence and roundings."""

from __future__ import annotations

from decimal import Decimal

from core.domain.taxes import FeeTaxes, InvoiceTaxes, Tax, applicable, round_cents, spread
from rater.billing.taxing import progressive_shares, tax_fees

VAT = Tax("t-vat", "vat", "VAT", Decimal(20))
REDUCED = Tax("t-reduced", "reduced", "Reduced", Decimal(10))
LOCAL = Tax("t-local", "local", "Local", Decimal("2.5"))


def test_the_most_specific_level_with_taxes_wins() -> None:
    assert applicable([], [REDUCED], [VAT], [LOCAL]) == (REDUCED,)
    assert applicable([LOCAL, VAT], [REDUCED], [], []) == (LOCAL, VAT)
    assert applicable([], [], [], [VAT]) == (VAT,)
    assert applicable([], [], [], []) == ()


def test_rounding_is_half_away_from_zero() -> None:
    assert [round_cents(Decimal(v)) for v in ("0.5", "1.5", "2.4999", "-0.5")] == [1, 2, 2, -1]


def test_a_fee_rounds_the_sum_of_its_taxes_once() -> None:
    fee = FeeTaxes.of(Decimal(1010), [VAT, LOCAL])  # 202 + 25.25
    assert (fee.amount_cents, fee.precise_amount_cents, fee.rate) == (227, Decimal("227.25"), Decimal("22.5"))
    assert [a.amount_cents for a in fee.applied] == [202, 25]
    halves = FeeTaxes.of(Decimal(30), [LOCAL, LOCAL])  # 0.75 + 0.75: 1.5 rounds once to 2 (each alone to 1)
    assert (halves.amount_cents, [a.amount_cents for a in halves.applied]) == (2, [1, 1])


def test_an_invoice_rounds_each_tax_over_its_fees_once_and_weighs_its_rate() -> None:
    taxes = InvoiceTaxes.of([(Decimal("10.25"), [LOCAL]), (Decimal("10.25"), [LOCAL]), (Decimal(100), [VAT])])
    assert [(a.tax.code, a.amount_cents, a.fees_amount_cents) for a in taxes.applied] == [
        ("local", 1, 21), ("vat", 20, 100)]  # 0.25625 + 0.25625 = 0.5125 -> 1; 20
    assert taxes.amount_cents == 21  # 20.5125 rounded once
    assert taxes.rate == Decimal("17.02282")  # (20.5 x 2.5 + 100 x 20) / 120.5
    assert InvoiceTaxes.of([]).amount_cents == 0 and InvoiceTaxes.of([]).rate == 0
    nothing = InvoiceTaxes.of([(Decimal(0), [VAT]), (Decimal(0), [])])  # nothing taxable: weighed by fees
    assert (nothing.amount_cents, nothing.rate) == (0, Decimal(10))


def test_a_deduction_is_spread_over_fees_in_proportion_never_above_one() -> None:
    assert spread(1000, [3000, 0, 1000]) == [Decimal(750), Decimal(0), Decimal(250)]
    assert spread(100, [300, 600]) == [Decimal("33.33333"), Decimal("66.66667")]
    assert spread(100, [1, 2]) == [Decimal(1), Decimal(2)]
    assert spread(5000, [1000, 1000]) == [Decimal(1000), Decimal(1000)]
    assert spread(0, [10]) == [Decimal(0)] and spread(10, [0]) == [Decimal(0)]


def test_a_progressive_credit_beyond_the_usage_fees_is_taken_from_the_other_fees() -> None:
    rows = [{"id": "f1", "fee_type": "subscription", "charge_id": None, "amount_cents": 12_000},
            {"id": "f2", "fee_type": "charge", "charge_id": "c1", "amount_cents": 1_000}]
    # usage billed earlier than it is now
    taxed = tax_fees("inv", rows, progressive_shares(rows, 5_000), lambda row: [VAT])
    assert [r["precise_coupons_amount_cents"] for r in rows] == ["4000.0", "1000.0"]
    assert taxed.invoice_taxes.amount_cents == 1_600  # 20% of the subtotal, 13,000 - 5,000
    assert [a["fees_amount_cents"] for a in taxed.invoice_applied_taxes] == [8_000]


def test_fees_are_taxed_on_what_is_left_after_their_share_of_the_progressive_credit() -> None:
    rows = [{"id": "f1", "fee_type": "subscription", "charge_id": None, "amount_cents": 12_000},
            {"id": "f2", "fee_type": "charge", "charge_id": "c1", "amount_cents": 23_500}]
    # the usage billed earlier: only the usage fee's
    taxed = tax_fees("inv", rows, progressive_shares(rows, 3_500), lambda row: [VAT])
    assert [(r["precise_coupons_amount_cents"], r["taxes_amount_cents"]) for r in rows] == [("0.0", 2_400),
                                                                                            ("3500.0", 4_000)]
    assert taxed.invoice_taxes.amount_cents == 6_400
    assert [(a["fee_id"], a["tax_code"], a["amount_cents"]) for a in taxed.fee_applied_taxes] == [
        ("f1", "vat", 2_400), ("f2", "vat", 4_000)]
    assert [(a["invoice_id"], a["amount_cents"], a["fees_amount_cents"]) for a in taxed.invoice_applied_taxes] == [
        ("inv", 6_400, 32_000)]
