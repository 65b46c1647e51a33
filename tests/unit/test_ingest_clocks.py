"""An event sent without a timestamp to a test clock's customer takes the clock's time at the edge
(ingest.clocks). Pure."""

from __future__ import annotations

import asyncio
from typing import Any

from ingest.clocks import ClockTimes
from schemas.events import parse_event

NOW_US = 1_780_000_000_000_000


def test_only_events_without_a_timestamp_to_a_clocks_subscriptions_take_its_time() -> None:
    times = ClockTimes()
    times.times = {("org", "on-clock"): 1_750_000_000_000_000}
    times.organizations = frozenset({"org"})
    engine: Any = None  # nothing missed: the database is not read
    raw = [{"transaction_id": "a", "code": "m", "external_subscription_id": "on-clock"},
           {"transaction_id": "b", "code": "m", "external_subscription_id": "on-clock", "timestamp": 1_760_000_000},
           {"transaction_id": "d", "code": "m", "external_subscription_id": "on-clock", "timestamp": None}]
    events = [parse_event(item, "org", NOW_US) for item in raw]  # one request: one organization's events
    asyncio.run(times.stamp(engine, raw, events))
    assert [(e.timestamp_us, e.received_at_us) for e in events] == [
        (1_750_000_000_000_000, NOW_US),  # the clock's time; received when it was
        (1_760_000_000_000_000, NOW_US),  # its own timestamp stays
        (1_750_000_000_000_000, NOW_US)]
    # the same external id in an organization without a live clock: now, and nothing is looked up
    other = parse_event(raw[0], "another-org", NOW_US)
    asyncio.run(times.stamp(engine, [raw[0]], [other]))
    assert other.timestamp_us == NOW_US
