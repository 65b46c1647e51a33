"""Pricing: pure functions from units (Decimal) to an amount in currency units (Decimal).

One pricer per charge model. Properties arrive as Lago sends them (amounts as decimal
strings) and are parsed into frozen, validated values before any arithmetic.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from core.domain.money import round_cents, to_precise_cents


class InvalidChargeProperties(ValueError):
    """The charge's properties do not describe a valid price. `code` is the Lago error code."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


def _decimal(value: Any, name: str, code: str = "invalid_amount") -> Decimal:
    if isinstance(value, bool) or value is None:
        raise InvalidChargeProperties(code, f"{name} must be a decimal number")
    try:
        number = Decimal(str(value))
    except InvalidOperation as exc:
        raise InvalidChargeProperties(code, f"{name} must be a decimal number, got {value!r}") from exc
    if not number.is_finite() or number < 0:
        raise InvalidChargeProperties(code, f"{name} must be a non-negative number, got {value!r}")
    return number


def _whole(value: Any) -> int | None:
    """An integer given as a JSON integer, a whole float or a digit string; None for anything else
    (10.7 is not taken for 10)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else None
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return None


@dataclass(frozen=True)
class Range:
    """A tier of a graduated or volume price: units from_value..to_value inclusive (to None = no end)."""

    from_value: int
    to_value: int | None
    per_unit_amount: Decimal
    flat_amount: Decimal

    def units_of(self, total: Decimal) -> Decimal:
        """How many of `total` units fall in this range (the contract's bounds rule)."""
        upper = total if self.to_value is None else min(total, Decimal(self.to_value))
        units = upper - self.from_value + (1 if self.from_value > 0 else 0)
        return max(units, Decimal(0))

    def contains(self, total: Decimal) -> bool:
        return self.to_value is None or total <= self.to_value


def parse_ranges(raw: Any, code: str) -> tuple[Range, ...]:
    """Validated, contiguous ranges: first from 0 or 1, each next from = previous to + 1, last to null."""
    if not isinstance(raw, Sequence) or isinstance(raw, str) or not raw:
        raise InvalidChargeProperties(code, "ranges must be a non-empty list")
    ranges: list[Range] = []
    for index, item in enumerate(raw):
        if not isinstance(item, Mapping):
            raise InvalidChargeProperties(code, f"range {index} must be an object")
        from_value, to_raw = _whole(item.get("from_value")), item.get("to_value")
        to_value = None if to_raw is None else _whole(to_raw)
        if from_value is None or (to_raw is not None and to_value is None):
            raise InvalidChargeProperties(code, f"range {index} bounds must be integers")
        expected_from = (ranges[-1].to_value or 0) + 1 if ranges else None
        if (index == 0 and from_value not in (0, 1)) or (index > 0 and from_value != expected_from):
            raise InvalidChargeProperties(code, f"range {index} must start where the previous one ends")
        if to_value is not None and to_value < from_value:
            raise InvalidChargeProperties(code, f"range {index} ends before it starts")
        if (to_value is None) != (index == len(raw) - 1):
            raise InvalidChargeProperties(code, "only the last range has no to_value")
        ranges.append(
            Range(
                from_value,
                to_value,
                _decimal(item.get("per_unit_amount", "0"), "per_unit_amount"),
                _decimal(item.get("flat_amount", "0"), "flat_amount"),
            )
        )
    return tuple(ranges)


# What each charge model reads of a charge's properties (and of each range): the rest is not stored,
# as Lago keeps only the properties a model uses.
DOCUMENTED_PROPERTIES = {"standard": ("amount",), "graduated": ("graduated_ranges",), "volume": ("volume_ranges",),
                         "package": ("amount", "package_size", "free_units"), "percentage": ("rate", "fixed_amount")}
RANGE_KEYS = ("from_value", "to_value", "per_unit_amount", "flat_amount")


def documented_properties(charge_model: str | None, properties: Mapping[str, Any]) -> dict[str, Any]:
    """The properties of a validated charge, with only the keys its model reads."""
    kept = {name: properties[name] for name in DOCUMENTED_PROPERTIES.get(charge_model or "", ())
            if name in properties}
    for name in ("graduated_ranges", "volume_ranges"):
        if isinstance(kept.get(name), list):
            kept[name] = [{key: item[key] for key in RANGE_KEYS if key in item} if isinstance(item, Mapping)
                          else item for item in kept[name]]
    return kept


@dataclass(frozen=True)
class TierUsage:
    """What one range of a graduated price bills: its units at its price, and its flat amount."""

    tier: Range
    units: Decimal

    @property
    def per_unit_total(self) -> Decimal:
        return self.units * self.tier.per_unit_amount

    @property
    def total(self) -> Decimal:
        return self.per_unit_total + self.tier.flat_amount


def graduated_tiers(units: Decimal, ranges: Sequence[Range]) -> list[TierUsage]:
    """The ranges `units` reach, each with its units; the first range is always reached, so its flat amount
    is billed at 0 units too (as Lago since 2026)."""
    reached = []
    for tier in ranges:
        reached.append(TierUsage(tier, tier.units_of(units)))
        if tier.contains(units):
            break
    return reached


def graduated(units: Decimal, ranges: Sequence[Range]) -> Decimal:
    """Each range reached adds its units at its price and its flat amount."""
    return sum((reached.total for reached in graduated_tiers(units, ranges)), Decimal(0))


def volume(units: Decimal, ranges: Sequence[Range]) -> Decimal:
    """Every unit at the price of the range holding the total, plus that range's flat amount (at 0
    units: the first range's)."""
    tier = next(r for r in ranges if r.contains(units))
    return max(units, Decimal(0)) * tier.per_unit_amount + tier.flat_amount


def standard(units: Decimal, amount: Decimal) -> Decimal:
    return units * amount


def package(units: Decimal, amount: Decimal, package_size: int, free_units: int) -> Decimal:
    billable = units - free_units
    if billable <= 0:
        return Decimal(0)
    packages = (billable / package_size).to_integral_value(rounding=ROUND_CEILING)
    return packages * amount


def percentage(units: Decimal, rate: Decimal, fixed_amount: Decimal, events_count: int) -> Decimal:
    return units * rate / 100 + fixed_amount * events_count


_UNIT_ROUNDING = {"round": ROUND_HALF_UP, "ceil": ROUND_CEILING, "floor": ROUND_FLOOR}


def round_units(units: Decimal, function: str | None, precision: int | None) -> Decimal:
    """The metric's rounding of aggregated units (before pricing): round (half-up), ceil or floor
    to `precision` decimals (0 when unset; negative rounds to tens, hundreds...). No function: as is."""
    if function is None:
        return units
    if function not in _UNIT_ROUNDING:
        raise InvalidChargeProperties("invalid_rounding_function", f"unknown rounding function {function!r}")
    quantum = Decimal(1).scaleb(-(precision or 0))
    return units.quantize(quantum, rounding=_UNIT_ROUNDING[function]) if quantum <= 1 else \
        (units / quantum).quantize(Decimal(1), rounding=_UNIT_ROUNDING[function]) * quantum


@dataclass(frozen=True)
class Fee:
    units: Decimal
    precise_amount_cents: Decimal
    amount_cents: int


def price(charge_model: str, properties: Mapping[str, Any], units: Decimal, currency: str,
          events_count: int = 0) -> Fee:
    """The fee of one charge for `units`, rounded once, half-up to the currency's minor unit."""
    amount = _amount_for(charge_model, properties, units, events_count)
    precise = to_precise_cents(amount, currency)
    return Fee(units=units, precise_amount_cents=precise, amount_cents=round_cents(precise))


def validate_properties(charge_model: str, properties: Mapping[str, Any]) -> None:
    """Raise InvalidChargeProperties when the properties cannot price any number of units."""
    _amount_for(charge_model, properties, Decimal(1), 1)


def _amount_for(charge_model: str, properties: Mapping[str, Any], units: Decimal, events_count: int) -> Decimal:
    if charge_model == "standard":
        return standard(units, _decimal(properties.get("amount"), "amount"))
    if charge_model == "graduated":
        ranges = parse_ranges(properties.get("graduated_ranges"), "invalid_graduated_ranges")
        return graduated(units, ranges)
    if charge_model == "volume":
        return volume(units, parse_ranges(properties.get("volume_ranges"), "invalid_volume_ranges"))
    if charge_model == "package":
        size = _decimal(properties.get("package_size"), "package_size")
        if size < 1 or size != size.to_integral_value():
            raise InvalidChargeProperties("invalid_package_size", "package_size must be a whole number ≥ 1")
        free = _decimal(properties.get("free_units", 0), "free_units")
        if free != free.to_integral_value():
            raise InvalidChargeProperties("invalid_free_units", "free_units must be a whole number")
        return package(units, _decimal(properties.get("amount"), "amount"), int(size), int(free))
    if charge_model == "percentage":
        rate = _decimal(properties.get("rate"), "rate", "invalid_rate")
        fixed = _decimal(properties.get("fixed_amount") or 0, "fixed_amount")
        return percentage(units, rate, fixed, events_count)
    raise InvalidChargeProperties("invalid_charge_model", f"unknown charge model {charge_model!r}")
