"""Subscription statuses (pure).

A `pending` subscription is active from its `subscription_at` on. The API writes the activation
(rater.api.activation: `status = 'pending' AND subscription_at <= now()`), and the aggregator's
catalog applies the same rule itself (aggregator.catalog.effective_status) so that events arriving
before that write are counted: both decide on the same predicate.
"""

from __future__ import annotations

STATUSES: tuple[str, ...] = ("active", "pending", "terminated", "canceled")
# Statuses a subscription can be terminated from (DELETE /subscriptions/{external_id}).
LIVE: tuple[str, ...] = ("active", "pending")
