"""The state changes one event makes, as planning (aggregator/planning.py) decides them and the Lua
script (core/usage_state/redis_state.py) applies them. Pure values."""

from __future__ import annotations

from typing import NamedTuple

# State of a period is kept this long after the period ends: long enough for the grace period and
# the invoice to be finalized (from the archive, not from Redis), short enough not to keep it forever.
STATE_RETENTION_S = 62 * 86400


class Op(NamedTuple):  # a tuple, not a dataclass: one is built per event on the hot path
    """One state change of a state key.

    `kind`: U (add `value` to a unique set), N (count), S (add the integer `value` * 10**12 +
    `timestamp_us` to the sum, see core.domain.aggregation.sum_words), X (max),
    L (latest: `value` at `timestamp_us`), W (weighted: add the integer `value` * 10**12 +
    `timestamp_us` to the time-weighted sum, see core.domain.aggregation), P (record the
    period length `value` in microseconds, needed to read a weighted sum back).
    """

    kind: str
    key: str
    value: str = ""
    timestamp_us: int = 0


class Planned(NamedTuple):
    scope: str
    transaction_id: str
    ops: tuple[Op, ...]
    expire_at_s: int = 0  # when the state keys of the event's period may go (period end + retention)
    period_key: str = ""  # the billing period the event counts in (the archive refuses it once closed)
