"""Turn one event into state changes, or a rejection with its reason. No I/O.

The billing period of an event is found with its subscription's BillingCycle
(core.domain.periods); consecutive events of one subscription almost always fall in the same
period, so the last period found for each subscription view is remembered (a memo: the view is
immutable) and checked with two integer comparisons.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from aggregator.model import Rejected, SubscriptionView
from core.domain.aggregation import MAX_SCALED, VALUE_SCALE, sum_words, weighted_contribution
from core.domain.lifecycle import METERED
from core.usage_state.keys import totals_key, unique_key
from core.usage_state.ops import STATE_RETENTION_S, Op, Planned
from schemas.events import Event, epoch_us, moment_of

_MEMO_LIMIT = 50_000
# Op and Planned are built with tuple.__new__, all fields given: a NamedTuple's own constructor is a
# Python function (a frame per call), and planning builds two or three per event
_new = tuple.__new__


class PeriodSlot:
    """A billing period of one subscription in integer microseconds, with the names its state keys
    use: `state_keys[metric id]` is (totals key, unique key), each made once (`_state_keys`) and
    then the same string, whose hash Python keeps, for every event."""

    __slots__ = ("start_us", "end_us", "key", "expire_at_s", "state_keys")

    def __init__(self, start_us: int, end_us: int, key: str):
        self.start_us = start_us
        self.end_us = end_us
        self.key = key
        self.expire_at_s = end_us // 1_000_000 + STATE_RETENTION_S
        self.state_keys: dict[str, tuple[str, str]] = {}


def _state_keys(period: PeriodSlot, scope: str, metric_id: str) -> tuple[str, str]:
    keys = period.state_keys[metric_id] = (totals_key(scope, metric_id, period.key),
                                           unique_key(scope, metric_id, period.key))
    return keys


# per subscription id: the view it was found for (a catalog refresh makes new views, whose periods
# are then found again) and the period last found
_last_period: dict[str, tuple[SubscriptionView, PeriodSlot]] = {}


def period_of(timestamp_us: int, subscription: SubscriptionView) -> PeriodSlot | None:
    """The billing period containing the instant, or None when it is before the subscription started."""
    memo = _last_period.get(subscription.id)
    if memo is not None and memo[0] is subscription:
        slot = memo[1]
        if slot.start_us <= timestamp_us < slot.end_us:
            return slot
    period = subscription.cycle.period_at(moment_of(timestamp_us))
    if period is None:
        return None
    slot = PeriodSlot(epoch_us(period.start), epoch_us(period.end), period.key)
    if len(_last_period) > _MEMO_LIMIT:
        _last_period.clear()
    _last_period[subscription.id] = (subscription, slot)
    return slot


def scaled(value: object) -> int | None:
    """A numeric property as an exact integer of millionths, or None when it is not such a number."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        whole = value * VALUE_SCALE
        return whole if abs(whole) < MAX_SCALED else None
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        return None
    if not number.is_finite():
        return None
    result = number * VALUE_SCALE
    if result != result.to_integral_value() or abs(result) >= MAX_SCALED:
        return None
    return int(result)


def _open_period(event: Event, subscription: SubscriptionView) -> PeriodSlot | Rejected:
    if subscription.terminated_at_us is not None and event.timestamp_us >= subscription.terminated_at_us:
        return Rejected("period_closed", "the event is after the subscription was terminated")
    period = period_of(event.timestamp_us, subscription)
    if period is None:
        return Rejected("period_closed", "the event is before the subscription started")
    if period.key in subscription.closed_period_keys:
        return Rejected("period_closed", f"the billing period {period.key} is already invoiced")
    return period


def plan(event: Event, subscription: SubscriptionView | None) -> Planned | Rejected:
    if subscription is None or subscription.status not in METERED:
        return Rejected("unknown_subscription", f"no active subscription {event.external_subscription_id!r}")
    metric = subscription.metrics_by_code.get(event.code)
    if metric is None:
        return Rejected("unknown_metric", f"the plan has no charge on a metric with code {event.code!r}")
    period = _open_period(event, subscription)
    if isinstance(period, Rejected):
        return period
    scope = subscription.scope
    totals, members = period.state_keys.get(metric.id) or _state_keys(period, scope, metric.id)
    kind = metric.aggregation_type
    tx = event.transaction_id
    # kept STATE_RETENTION_S after its period ends, and at least that long after it was received: a period long
    # past (a test clock's, a backfill) is still read while its customer is billed for it
    expire = period.expire_at_s
    received_s = event.received_at_us // 1_000_000 + STATE_RETENTION_S
    if received_s > expire:
        expire = received_s
    if kind == "count_agg":
        count = _new(Op, ("N", totals, "", 0))
        return _new(Planned, (scope, tx, (count,), expire, period.key))
    field_name = metric.field_name
    if field_name is None or field_name not in event.properties:
        return Rejected("missing_field", f"property {field_name!r} is missing")
    raw = event.properties[field_name]
    if kind == "unique_count_agg":
        if raw is None or isinstance(raw, (dict, list)):  # a tuple: `dict | list` builds a union per call
            return Rejected("invalid_value", f"{field_name} must be a string or a number")
        member = _new(Op, ("U", members, str(raw), 0))
        return _new(Planned, (scope, tx, (member,), expire, period.key))
    value = scaled(raw)
    if value is None:
        return Rejected("invalid_value", f"{field_name} must be a number below 10^9 with at most 6 decimals")
    count = _new(Op, ("N", totals, "", 0))
    if kind == "sum_agg":
        high, low = sum_words(value)
        return _new(Planned, (scope, tx, (count, _new(Op, ("S", totals, str(high), low))), expire,
                               period.key))
    if kind == "max_agg":
        return _new(Planned, (scope, tx, (count, _new(Op, ("X", totals, str(value), 0))), expire,
                               period.key))
    if kind == "latest_agg":
        latest = _new(Op, ("L", totals, str(value), event.timestamp_us))
        return _new(Planned, (scope, tx, (count, latest), expire, period.key))
    if kind == "weighted_sum_agg":
        sum_high, sum_low = sum_words(value)
        high, low = weighted_contribution(value, event.timestamp_us, period.end_us)
        ops = (count, _new(Op, ("S", totals, str(sum_high), sum_low)), _new(Op, ("W", totals, str(high), low)),
               _new(Op, ("P", totals, str(period.end_us - period.start_us), 0)))
        return _new(Planned, (scope, tx, ops, expire, period.key))
    return Rejected("unknown_metric", f"aggregation {kind} is not supported by this aggregator version")
