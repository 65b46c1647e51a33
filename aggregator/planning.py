"""Turn one event into state changes, or a rejection with its reason. No I/O."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from aggregator.keys import totals_key, unique_key
from aggregator.model import VALUE_SCALE, Op, Planned, Rejected, SubscriptionView
from rater.periods import period_containing
from schemas.events import Event


def scaled(value: object) -> int | None:
    """A numeric property as an exact integer of millionths, or None when it is not such a number."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        return None
    if not number.is_finite():
        return None
    result = number * VALUE_SCALE
    if result != result.to_integral_value() or abs(result) >= 2**62:
        return None
    return int(result)


def plan(event: Event, subscription: SubscriptionView | None) -> Planned | Rejected:
    if subscription is None or subscription.status not in ("active", "terminated"):
        return Rejected("unknown_subscription", f"no active subscription {event.external_subscription_id!r}")
    metric = subscription.metrics_by_code.get(event.code)
    if metric is None:
        return Rejected("unknown_metric", f"the plan has no charge on a metric with code {event.code!r}")
    period = period_containing(event.timestamp, interval=subscription.interval,
                               billing_time=subscription.billing_time, started_on=subscription.started_on,
                               timezone=subscription.timezone)
    if period is None:
        return Rejected("period_closed", "the event is before the subscription started")
    scope = subscription.scope
    totals = totals_key(scope, metric.id, period.key)
    count = Op("N", totals)
    kind = metric.aggregation_type
    if kind == "count_agg":
        return Planned(scope, event.transaction_id, (count,))
    if metric.field_name is None or metric.field_name not in event.properties:
        return Rejected("missing_field", f"property {metric.field_name!r} is missing")
    raw = event.properties[metric.field_name]
    if kind == "unique_count_agg":
        if raw is None or isinstance(raw, dict | list):
            return Rejected("invalid_value", f"{metric.field_name} must be a string or a number")
        return Planned(scope, event.transaction_id, (Op("U", unique_key(scope, metric.id, period.key), str(raw)),))
    value = scaled(raw)
    if value is None:
        return Rejected("invalid_value", f"{metric.field_name} must be a number with at most 6 decimals")
    if kind == "sum_agg":
        return Planned(scope, event.transaction_id, (count, Op("S", totals, str(value))))
    if kind == "max_agg":
        return Planned(scope, event.transaction_id, (count, Op("X", totals, str(value))))
    if kind == "latest_agg":
        return Planned(scope, event.transaction_id, (count, Op("L", totals, str(value), event.timestamp_us)))
    return Rejected("unknown_metric", f"aggregation {kind} is not supported by this aggregator version")
