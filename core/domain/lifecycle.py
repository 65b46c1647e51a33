"""Subscription statuses, and which status does what (pure).

A `pending` subscription is active from its `subscription_at` on. The API writes the activation to
PostgreSQL (rater/activation.py, within a second), and every reader that must not wait for that
write (the aggregator placing events, current usage) reads the status through `effective_status`.
"""

from __future__ import annotations

from datetime import datetime, timedelta

STATUSES: tuple[str, ...] = ("active", "pending", "terminated", "canceled")
# Statuses a subscription can be terminated from (DELETE /subscriptions/{external_id}), and whose
# catalog reads current usage.
LIVE: tuple[str, ...] = ("active", "pending")
# Statuses whose events count: a terminated subscription keeps those dated before `terminated_at`.
METERED: tuple[str, ...] = ("active", "terminated")
# Statuses billing and `meterline rebuild` look at (a pending one counts from its subscription_at).
BILLED: tuple[str, ...] = ("active", "pending", "terminated")


def effective_status(status: str, subscription_at: datetime, now: datetime) -> str:
    """The status as of `now`: a pending subscription whose start has come is active."""
    if status == "pending" and subscription_at <= now:
        return "active"
    return status


# How long the aggregator and the alerts worker trust their cached view of an external_id's subscriptions
# while they cannot confirm they hear of catalog changes (aggregator/catalog.py; when they can, until a
# change, which they hear within 0.1 s, and they lose that confirmation within 0.5 s:
# core/db/catalog_changes.py).
CATALOG_TTL_S = 0.5
# An upgrade takes effect this long after it is asked: longer than a cached view can be stale, so an event
# dated after the change is never counted by a stale view for the subscription it replaced.
UPGRADE_DELAY = timedelta(seconds=1)
