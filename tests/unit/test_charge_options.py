"""Which charge options Lago refuses with a charge's model and metric (core.domain.charges.combination_errors)."""

from __future__ import annotations

import pytest

from core.domain.charges import ChargeOptions, combination_errors


@pytest.mark.parametrize(("options", "aggregation_type", "errors"), [
    (ChargeOptions("standard"), "sum_agg", {}),
    (ChargeOptions("percentage"), "latest_agg", {"billable_metric": "invalid_value"}),
    (ChargeOptions("percentage"), "max_agg", {}),
    (ChargeOptions("volume", pay_in_advance=True), "count_agg",
     {"pay_in_advance": "invalid_aggregation_type_or_charge_model"}),
    (ChargeOptions("standard", pay_in_advance=True), "max_agg",
     {"pay_in_advance": "invalid_aggregation_type_or_charge_model"}),
    (ChargeOptions("standard", pay_in_advance=True), "weighted_sum_agg",
     {"pay_in_advance": "invalid_aggregation_type_or_charge_model"}),
    (ChargeOptions("standard", pay_in_advance=True), "unique_count_agg", {}),
    (ChargeOptions("standard", pay_in_advance=True, min_amount_cents=100), "sum_agg",
     {"min_amount_cents": "not_compatible_with_pay_in_advance"}),
    (ChargeOptions("standard", min_amount_cents=100), "sum_agg", {}),
    (ChargeOptions("standard", invoiceable=False), "sum_agg", {"invoiceable": "must_be_true_unless_pay_in_advance"}),
    (ChargeOptions("standard", pay_in_advance=True, invoiceable=False), "sum_agg", {}),
    (ChargeOptions("standard", regroup_paid_fees=True), "sum_agg",
     {"regroup_paid_fees": "only_compatible_with_pay_in_advance_and_non_invoiceable"}),
    (ChargeOptions("standard", pay_in_advance=True, invoiceable=False, regroup_paid_fees=True), "sum_agg", {}),
    (ChargeOptions("standard", prorated=True), "sum_agg", {"prorated": "invalid_billable_metric_or_charge_model"}),
])
def test_lago_combination_rules(options: ChargeOptions, aggregation_type: str, errors: dict[str, str]) -> None:
    assert combination_errors(options, aggregation_type) == errors


def test_prorated_needs_a_recurring_metric_and_a_model_that_prorates() -> None:
    assert combination_errors(ChargeOptions("standard", prorated=True), "sum_agg", metric_recurring=True) == {}
    assert combination_errors(ChargeOptions("graduated", prorated=True), "sum_agg", metric_recurring=True) == {}
    assert combination_errors(ChargeOptions("graduated", pay_in_advance=True, prorated=True), "sum_agg",
                              metric_recurring=True) == {"prorated": "invalid_billable_metric_or_charge_model"}
    assert combination_errors(ChargeOptions("standard", prorated=True), "weighted_sum_agg",
                              metric_recurring=True) == {"prorated": "invalid_billable_metric_or_charge_model"}
