"""Plan changes (pure): plans compare by what they cost in a year; a dearer or equal plan is an
upgrade (at once), a cheaper one a downgrade (at the end of the current billing period)."""

from __future__ import annotations

PERIODS_PER_YEAR = {"weekly": 52, "monthly": 12, "quarterly": 4, "yearly": 1}
CREDIT_REASONS = ("order_change", "order_cancellation")


def yearly_amount_cents(interval: str, amount_cents: int) -> int:
    return amount_cents * PERIODS_PER_YEAR[interval]


def is_upgrade(current: tuple[str, int], wanted: tuple[str, int]) -> bool:
    """Whether changing from plan `current` to `wanted` ((interval, amount_cents) each) is an upgrade."""
    return yearly_amount_cents(*wanted) >= yearly_amount_cents(*current)
