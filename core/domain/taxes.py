"""Taxes on fees and invoices, as Lago computes them. Pure.

Which taxes a fee carries: the first non-empty set of its charge's (a usage fee), its plan's, its customer's
and its organization's defaults (taxes `applied_to_organization`): `applicable`.
A fee's taxable base is its amount less its share of what the invoice deducts before taxes (today the
period's progressive billing credit; `spread`), in precise cents. Each of its taxes is the base × rate / 100,
unrounded; the fee's `taxes_amount_cents` is their sum rounded once. The invoice's taxes are, per tax, the sum
over the fees carrying it rounded once, and `taxes_amount_cents` the sum over every tax rounded once (not the
sum of rounded parts). Rounding is half away from zero, as Lago's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

PRECISE = Decimal("0.00001")  # a fee's share of a deduction, as Lago keeps it (5 decimals)
RATE_PLACES = Decimal("0.00001")


@dataclass(frozen=True)
class Tax:
    id: str
    code: str
    name: str
    rate: Decimal  # percent: 20 is 20%
    description: str | None = None


def applicable(*levels: Sequence[Tax]) -> tuple[Tax, ...]:
    """The first non-empty level of taxes, most specific first (charge, plan, customer, organization)."""
    for level in levels:
        if level:
            return tuple(level)
    return ()


def round_cents(value: Decimal) -> int:
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def spread(deduction_cents: int, amounts: Sequence[int | Decimal]) -> list[Decimal]:
    """Each fee's share of a deduction, in proportion to its amount (what is left of it: precise cents), to 5
    decimals, never above its amount; a fee at 0 or below takes none. The one pro rata of taxes and coupons."""
    total = sum((Decimal(amount) for amount in amounts if amount > 0), Decimal(0))
    if deduction_cents <= 0 or total <= 0:
        return [Decimal(0)] * len(amounts)
    return [min(Decimal(amount), (Decimal(deduction_cents) * amount / total).quantize(PRECISE, ROUND_HALF_UP))
            if amount > 0 else Decimal(0) for amount in amounts]


@dataclass(frozen=True)
class AppliedTax:
    tax: Tax
    amount_cents: int
    precise_amount_cents: Decimal
    fees_amount_cents: int = 0  # on an invoice: the taxable amount of the fees carrying it


@dataclass(frozen=True)
class FeeTaxes:
    applied: tuple[AppliedTax, ...]
    amount_cents: int
    precise_amount_cents: Decimal
    rate: Decimal  # the sum of its taxes' rates

    @classmethod
    def of(cls, base: Decimal, taxes: Sequence[Tax]) -> FeeTaxes:
        applied = tuple(AppliedTax(tax, round_cents(base * tax.rate / 100), base * tax.rate / 100) for tax in taxes)
        precise = sum((each.precise_amount_cents for each in applied), Decimal(0))
        return cls(applied, round_cents(precise), precise, sum((tax.rate for tax in taxes), Decimal(0)))


@dataclass(frozen=True)
class InvoiceTaxes:
    applied: tuple[AppliedTax, ...]
    amount_cents: int
    rate: Decimal  # the taxes' rates weighted by the part of the taxable amount each applies to

    @classmethod
    def of(cls, fees: Sequence[tuple[Decimal, Sequence[Tax]]]) -> InvoiceTaxes:
        """The taxes of an invoice whose fees have these (taxable base, taxes)."""
        raw: dict[str, Decimal] = {}
        bases: dict[str, Decimal] = {}
        counts: dict[str, int] = {}
        taxes: dict[str, Tax] = {}
        for base, fee_taxes in fees:
            for tax in fee_taxes:
                taxes.setdefault(tax.id, tax)
                raw[tax.id] = raw.get(tax.id, Decimal(0)) + base * tax.rate / 100
                bases[tax.id] = bases.get(tax.id, Decimal(0)) + base
                counts[tax.id] = counts.get(tax.id, 0) + 1
        order = sorted(taxes, key=lambda tax_id: (taxes[tax_id].code, tax_id))
        applied = tuple(AppliedTax(taxes[t], round_cents(raw[t]), raw[t], round_cents(bases[t])) for t in order)
        taxable = sum((base for base, _ in fees), Decimal(0))
        if not fees:
            rate = Decimal(0)
        elif taxable > 0:
            rate = sum((bases[t] / taxable * taxes[t].rate for t in order), Decimal(0))
        else:  # nothing taxable: each tax weighs by the fees it is on
            rate = sum((Decimal(counts[t]) / len(fees) * taxes[t].rate for t in order), Decimal(0))
        return cls(applied, round_cents(sum(raw.values(), Decimal(0))), rate.quantize(RATE_PLACES, ROUND_HALF_UP))
