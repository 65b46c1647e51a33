"""Subscription lifecycle rules shared by the API and the aggregator (pure)."""

from __future__ import annotations

from datetime import datetime

STATUSES: tuple[str, ...] = ("active", "pending", "terminated", "canceled")
# Statuses a subscription can be terminated from (DELETE /subscriptions/{external_id}).
LIVE: tuple[str, ...] = ("active", "pending")


def effective_status(status: str, subscription_at: datetime, now: datetime) -> str:
    """A pending subscription is active from its `subscription_at` on.

    The API writes the activation back (rater.api.activation), but readers that may run before
    that write (the aggregator's catalog) decide with this rule, so both always agree.
    """
    if status == "pending" and subscription_at <= now:
        return "active"
    return status
