"""Invoice assembly (rater.billing.assemble): which lines an invoice holds, totals, numbering. Pure."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal

from core.domain.aggregation import Metric, MetricUsage
from core.domain.charges import ChargeLine, true_up
from core.domain.periods import Period
from rater.billing.assemble import (
    PlanItem,
    draft_number,
    fee_rows,
    final_status,
    finalizes_zero_amount,
    invoice_number,
    moment_fees,
    payment_status_at_finalization,
    total_cents,
)
from rater.billing.schedule import Due

JUNE = Period(datetime(2026, 6, 1, tzinfo=UTC), datetime(2026, 7, 1, tzinfo=UTC))
JULY = Period(datetime(2026, 7, 1, tzinfo=UTC), datetime(2026, 8, 1, tzinfo=UTC))
TEAM = PlanItem("team", "Team", None)
MTU = ChargeLine("ch-1", "graduated", {"graduated_ranges": [
    {"from_value": 0, "to_value": 10000, "per_unit_amount": "0", "flat_amount": "0"},
    {"from_value": 10001, "to_value": None, "per_unit_amount": "0.012", "flat_amount": "0"}]},
    None, Metric("m-1", "mtu", "unique_count_agg", "user_id"), "MTU")
STORAGE = ChargeLine("ch-2", "standard", {"amount": "0.3333"}, "Storage GB", Metric("m-2", "gb", "sum_agg", "gb"),
                     "Storage", "round", 1)


def billing_day(fee: int = 12000) -> Due:
    return Due("periodic", JULY.start, f"period:{JUNE.key}", fee, JULY.start, JULY.end, JUNE, JUNE,
               charges_days=(30, 30))


def usage(mtus: int = 0, gb: str = "0") -> dict[str, MetricUsage]:
    return {"m-1": MetricUsage(mtus, mtus, Decimal(0), Decimal(0), Decimal(0)),
            "m-2": MetricUsage(0, 3, Decimal(gb), Decimal(0), Decimal(0))}


def test_subscription_line_first_then_usage_lines_with_units_and_exact_cents() -> None:
    lines = moment_fees(billing_day(), TEAM, [MTU, STORAGE], usage(10_050, "10.04"), "USD")
    assert [(line.fee_type, line.item_code, line.units, line.amount_cents) for line in lines] == [
        ("subscription", "team", Decimal(1), 12000),
        ("charge", "mtu", Decimal(10050), 60),
        ("charge", "gb", Decimal("10.0"), 333),  # 10.04 GB rounded to 10.0 by the metric, x $0.3333
    ]
    assert lines[2].precise_amount_cents == Decimal("333.300")
    assert (lines[1].from_datetime, lines[1].to_datetime) == (JUNE.start, JUNE.end)
    assert (lines[0].from_datetime, lines[0].to_datetime) == (JULY.start, JULY.end)
    assert total_cents(lines) == 12393


def test_zero_usage_lines_are_left_out_but_the_subscription_line_stays() -> None:
    lines = moment_fees(billing_day(fee=0), TEAM, [MTU, STORAGE], usage(), "USD")
    assert [(line.fee_type, line.amount_cents) for line in lines] == [("subscription", 0)]
    assert total_cents(lines) == 0


def test_units_without_amount_are_kept() -> None:
    lines = moment_fees(billing_day(), TEAM, [MTU], usage(5_000), "USD")
    assert [(line.item_code, line.units, line.amount_cents) for line in lines[1:]] == [("mtu", Decimal(5000), 0)]


def test_a_moment_without_usage_window_bills_only_the_fee() -> None:
    trial_end = Due("trial_end", datetime(2026, 6, 24, tzinfo=UTC), "trial_end:x", 2800, None, None, None, None)
    assert [line.amount_cents for line in moment_fees(trial_end, TEAM, [MTU], usage(20_000), "USD")] == [2800]


def test_payment_status_and_numbers() -> None:
    assert payment_status_at_finalization(0) == "succeeded"
    assert payment_status_at_finalization(1) == "pending"
    customer_id = "0f3c5a1e-9b7d-4c2a-8e6f-1a2b3c4d5e6f"
    assert invoice_number("Acme Corp", customer_id, 7) == "ACM-0F3C5A1E-007"
    assert invoice_number("Acme Corp", customer_id, 1234) == "ACM-0F3C5A1E-1234"
    assert draft_number("a-b", customer_id) == "AB-0F3C5A1E-DRAFT"
    assert invoice_number("", customer_id, 1) == "INV-0F3C5A1E-001"


STORAGE_MIN = replace(STORAGE, min_amount_cents=5000)


def test_a_charge_below_its_minimum_is_followed_by_a_true_up_fee_of_the_difference() -> None:
    lines = moment_fees(billing_day(), TEAM, [MTU, STORAGE_MIN], usage(0, "30"), "USD")
    assert [(line.item_code, line.units, line.events_count, line.amount_cents, line.true_up)
            for line in lines[1:]] == [("gb", Decimal("30.0"), 3, 1000, False), ("gb", Decimal(1), 0, 4000, True)]
    rows = fee_rows("inv", "sub", lines, "USD", 0)
    assert [row["true_up_parent_fee_id"] for row in rows] == [None, None, rows[1]["id"]]
    assert total_cents(lines) == 12000 + 5000


def test_a_charge_without_usage_keeps_its_zero_fee_to_carry_the_true_up() -> None:
    lines = moment_fees(billing_day(), TEAM, [STORAGE_MIN], usage(), "USD")
    assert [(line.units, line.amount_cents, line.true_up) for line in lines[1:]] == [
        (Decimal(0), 0, False), (Decimal(1), 5000, True)]


def test_a_charge_at_or_above_its_minimum_has_no_true_up() -> None:
    lines = moment_fees(billing_day(), TEAM, [STORAGE_MIN], usage(0, "150.1"), "USD")
    assert [(line.amount_cents, line.true_up) for line in lines[1:]] == [(5003, False)]


def test_the_minimum_is_prorated_on_the_days_of_a_partial_usage_window() -> None:
    # terminated on June 10 (9 days of 30 billed): the minimum is 5000 x 9 / 30 = 1500
    due = replace(billing_day(), charges=Period(JUNE.start, datetime(2026, 6, 10, tzinfo=UTC)), charges_days=(9, 30))
    lines = moment_fees(due, TEAM, [STORAGE_MIN], usage(0, "3"), "USD")
    assert [line.amount_cents for line in lines[1:]] == [100, 1400]
    assert true_up(5000, 0, Decimal(0), 7, 31) == (1129, Decimal(5000) * 7 / 31)  # 1129.03...: the cents rounded once
    assert true_up(0, 0, Decimal(0), 30, 30) is None
    # the precise shortfall, as Lago keeps it; the cents make both fees add up to the rounded minimum
    assert true_up(1000, 333, Decimal("333.3"), 30, 30) == (667, Decimal("666.7"))
    assert true_up(1000, 1000, Decimal("999.6"), 30, 30) == (0, Decimal("0.4"))  # a 0-cent true-up, as Lago writes


def test_a_usage_only_moment_has_no_subscription_line() -> None:
    due = replace(billing_day(), bills_fee=False, fee_from=None, fee_to=None)
    assert [line.fee_type for line in moment_fees(due, TEAM, [MTU], usage(20_000), "USD")] == ["charge"]


def test_zero_amount_invoices_are_closed_only_for_customers_that_skip_them() -> None:
    assert [final_status(0, finalizes_zero_amount(setting)) for setting in (None, "inherit", "finalize", "skip")] \
        == ["finalized", "finalized", "finalized", "closed"]
    assert final_status(1, finalizes_zero_amount("skip")) == "finalized"
