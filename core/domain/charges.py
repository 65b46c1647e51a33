"""A charge priced on a period's aggregated usage: the metric's units, its rounding, the charge model's
price, rounded once. Shared by current usage, invoices and anything else that prices usage. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from core.domain.aggregation import Metric, MetricUsage
from core.domain.money import round_cents
from core.domain.pricing import Fee, graduated_tiers, parse_ranges, price, round_units


@dataclass(frozen=True)
class ChargeLine:
    """A plan's charge with its billable metric."""

    charge_id: str
    charge_model: str
    properties: Mapping[str, Any]
    invoice_display_name: str | None
    metric: Metric
    metric_name: str
    rounding_function: str | None = None
    rounding_precision: int | None = None
    min_amount_cents: int = 0  # a full period's charge below it is trued up to it (a separate fee)


def true_up(min_amount_cents: int, amount_cents: int, precise_amount_cents: Decimal, days: int, whole_days: int
            ) -> tuple[int, Decimal] | None:
    """What a period's charge lacks to reach its minimum, as Lago trues it up: the minimum prorated on
    the days the usage window covers (a started day counting whole) out of the whole charge period's,
    less the charge's precise amount; (cents, precise cents), the cents making the two fees add up to
    the rounded minimum. None when the charge reaches its minimum."""
    if min_amount_cents <= 0:
        return None
    minimum = Decimal(min_amount_cents) if days >= whole_days else Decimal(min_amount_cents) * days / whole_days
    if precise_amount_cents >= minimum:
        return None
    return max(round_cents(minimum) - amount_cents, 0), minimum - precise_amount_cents


def units_of(aggregation_type: str, usage: MetricUsage) -> Decimal:
    if aggregation_type == "unique_count_agg":
        return Decimal(usage.unique_count)
    if aggregation_type == "count_agg":
        return Decimal(usage.events_count)
    if aggregation_type == "sum_agg":
        return usage.sum
    if aggregation_type == "max_agg":
        return usage.max
    if aggregation_type == "latest_agg":
        return max(usage.latest, Decimal(0))
    if aggregation_type == "weighted_sum_agg":
        return usage.weighted_sum
    return Decimal(0)


EMPTY = MetricUsage(0, 0, Decimal(0), Decimal(0), Decimal(0))


def charge_fee(charge: ChargeLine, usage: Mapping[str, MetricUsage], currency: str) -> tuple[int, Fee]:
    """(events_count, fee) of one charge for a period's aggregated usage (keyed by metric id)."""
    state = usage.get(charge.metric.id, EMPTY)
    kind = charge.metric.aggregation_type
    units = round_units(units_of(kind, state), charge.rounding_function, charge.rounding_precision)
    events_count = state.unique_count if kind == "unique_count_agg" else state.events_count
    return events_count, price(charge.charge_model, charge.properties, units, currency, events_count)


def units_text(units: Decimal) -> str:
    """Units as Lago writes them: a decimal string with at least one decimal ("3.0", "0.5")."""
    text = format(units.normalize(), "f") if units else "0"
    return text if "." in text else f"{text}.0"


def amount_details(charge_model: str, properties: Mapping[str, Any], units: Decimal) -> dict[str, Any]:
    """How a charge priced `units` (Lago's FeeAmountDetails): a graduated charge's tiers, each with its units,
    prices and totals in currency units; nothing for the other models."""
    if charge_model != "graduated":
        return {}
    return {"graduated_ranges": [{
        "units": units_text(reached.units), "from_value": reached.tier.from_value, "to_value": reached.tier.to_value,
        "flat_unit_amount": units_text(reached.tier.flat_amount),
        "per_unit_amount": units_text(reached.tier.per_unit_amount),
        "per_unit_total_amount": units_text(reached.per_unit_total),
        "total_with_flat_amount": units_text(reached.total),
    } for reached in graduated_tiers(units, parse_ranges(properties.get("graduated_ranges"),
                                                          "invalid_graduated_ranges"))]}


# Lago bills these aggregations per event, so only they can be paid in advance.
PAYABLE_IN_ADVANCE = frozenset({"count_agg", "sum_agg", "unique_count_agg", "custom_agg"})


@dataclass(frozen=True)
class ChargeOptions:
    """How a charge asks to be billed, beyond its price (what a plan's input gives for it)."""

    charge_model: str
    pay_in_advance: bool = False
    invoiceable: bool = True
    prorated: bool = False
    regroup_paid_fees: bool = False
    min_amount_cents: int = 0


def combination_errors(options: ChargeOptions, aggregation_type: str, metric_recurring: bool = False
                       ) -> dict[str, str]:
    """The options Lago refuses for this charge model and metric, as Lago names them (field → code)."""
    errors: dict[str, str] = {}
    if options.charge_model == "percentage" and aggregation_type == "latest_agg":
        errors["billable_metric"] = "invalid_value"
    if options.pay_in_advance and (options.charge_model == "volume" or aggregation_type not in PAYABLE_IN_ADVANCE):
        errors["pay_in_advance"] = "invalid_aggregation_type_or_charge_model"
    if options.pay_in_advance and options.min_amount_cents > 0:
        errors["min_amount_cents"] = "not_compatible_with_pay_in_advance"
    if not options.pay_in_advance and not options.invoiceable:
        errors["invoiceable"] = "must_be_true_unless_pay_in_advance"
    if options.regroup_paid_fees and not (options.pay_in_advance and not options.invoiceable):
        errors["regroup_paid_fees"] = "only_compatible_with_pay_in_advance_and_non_invoiceable"
    if options.prorated:
        allowed = ("standard",) if options.pay_in_advance else ("standard", "volume", "graduated")
        if not metric_recurring or aggregation_type == "weighted_sum_agg" or options.charge_model not in allowed:
            errors["prorated"] = "invalid_billable_metric_or_charge_model"
    return errors
