"""Exact money: Decimal amounts, one rounding rule, integer cents at the edges."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

# ISO 4217 minor units for the currencies whose exponent is not 2.
_MINOR_UNIT_EXCEPTIONS = {"JPY": 0, "KRW": 0, "CLP": 0, "VND": 0, "ISK": 0, "BHD": 3, "KWD": 3, "OMR": 3}


def minor_units(currency: str) -> int:
    return _MINOR_UNIT_EXCEPTIONS.get(currency.upper(), 2)


def to_precise_cents(amount: Decimal, currency: str) -> Decimal:
    """An amount in currency units expressed in the currency's minor unit, unrounded."""
    return amount.scaleb(minor_units(currency))


def round_cents(precise_cents: Decimal) -> int:
    """The single rounding rule of meterline: half-up to the minor unit, once per fee."""
    return int(precise_cents.quantize(Decimal(1), rounding=ROUND_HALF_UP))
