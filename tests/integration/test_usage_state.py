"""The Lua script's semantics through a real Redis: dedup marks, every aggregation, expiry, read-back."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from datetime import date
from decimal import Decimal
from typing import TypeVar

from aggregator.model import SubscriptionView
from aggregator.planning import period_of, plan
from core.clients import AnyRedis, redis_client
from core.domain.aggregation import Metric, Sample, fold
from core.domain.periods import BillingCycle
from core.usage_state.keys import dedup_key, totals_key, unique_key
from core.usage_state.ops import Planned
from core.usage_state.redis_state import READ_TOGETHER, MetricUsage, UsageState, read_usage, read_usages
from schemas.events import Event
from tests.conftest import Services

T = TypeVar("T")
ORG = "00000000-0000-0000-0000-0000000000aa"
DAY_US = 86400 * 1_000_000


def run(services: Services, body: Callable[[AnyRedis], Awaitable[T]]) -> T:
    async def main() -> T:
        redis = redis_client(services.redis_url, timeout_s=5)
        try:
            return await body(redis)
        finally:
            await redis.aclose()
    return asyncio.run(main())


def subscription(unique: str, aggregation_type: str) -> SubscriptionView:
    metric = Metric(f"metric-{unique}", "m", aggregation_type, None if aggregation_type == "count_agg" else "v")
    # started long ago so that a period of last month is open; the current month's period is used
    return SubscriptionView(id=f"id-{unique}", organization_id=ORG, external_id=f"sub-{unique}", status="active",
                            cycle=BillingCycle("monthly", "calendar", date(2020, 1, 1), "UTC"),
                            metrics_by_code={"m": metric})


def events_of(view: SubscriptionView, values: list[object]) -> list[Event]:
    now_us = int(time.time()) * 1_000_000
    slot = period_of(now_us, view)
    assert slot is not None
    rng = random.Random(7)
    return [Event(lago_id="l", organization_id=ORG, transaction_id=f"tx-{n}", code="m",
                  external_subscription_id=view.external_id,
                  timestamp_us=rng.randrange(slot.start_us, slot.end_us), received_at_us=0,
                  properties={"v": value}) for n, value in enumerate(values)]


def planned(view: SubscriptionView, events: list[Event]) -> list[Planned]:
    items = [plan(e, view) for e in events]
    assert all(isinstance(item, Planned) for item in items)
    return items  # type: ignore[return-value]


def check_against_fold(services: Services, unique: str, aggregation_type: str, values: list[object]) -> None:
    view = subscription(unique, aggregation_type)
    events = events_of(view, values)
    slot = period_of(events[0].timestamp_us, view)
    assert slot is not None
    items = planned(view, events)

    async def body(redis: AnyRedis) -> tuple[list[bool], list[bool], dict[str, object]]:
        state = UsageState(redis)
        first: list[bool] = []
        for start in range(0, len(items), 7):  # several batches, each one script per subscription
            first += await state.apply(items[start:start + 7])
        again = await state.apply(list(reversed(items)))  # every copy again, in another order
        usage = await read_usage(redis, view.scope, [f"metric-{unique}"], slot.key)
        return first, again, usage  # type: ignore[return-value]

    first, again, usage = run(services, body)
    assert (first, again) == ([True] * len(events), [False] * len(events))
    samples = [Sample(e.timestamp_us, str(e.properties["v"]) if aggregation_type == "unique_count_agg"
                      else int(Decimal(str(e.properties["v"])) * 10**6)) for e in events]
    assert usage[f"metric-{unique}"] == fold(aggregation_type, samples, slot.start_us, slot.end_us)


def test_count_sum_max_latest_match_the_reference(services: Services, unique: str) -> None:
    values: list[object] = [3, "2.5", -1, 7, "0.000001", 7, 12, -4]
    for aggregation_type in ("count_agg", "sum_agg", "max_agg", "latest_agg"):
        check_against_fold(services, f"{unique}-{aggregation_type}", aggregation_type, values)


def test_unique_count_is_exact(services: Services, unique: str) -> None:
    check_against_fold(services, unique, "unique_count_agg", [f"user-{n % 37}" for n in range(200)])


def test_weighted_sum_matches_the_reference_with_carries(services: Services, unique: str) -> None:
    # large values over a month overflow the low word many times: the carry must be exact
    values: list[object] = [999_999_999, "-123456.789012", 5, 424242.5, -999_999_999, 1] * 5
    check_against_fold(services, unique, "weighted_sum_agg", values)


def test_marks_and_state_expire_after_the_period(services: Services, unique: str) -> None:
    view = subscription(unique, "sum_agg")
    [item] = planned(view, events_of(view, [4]))

    async def body(redis: AnyRedis) -> tuple[int, int]:
        await UsageState(redis).apply([item])
        return await redis.expiretime(item.ops[0].key), await redis.expiretime(dedup_key(view.scope, item.period_key))

    state_expiry, marks_expiry = run(services, body)
    assert state_expiry == item.expire_at_s
    assert marks_expiry == item.expire_at_s


def test_state_and_marks_of_a_period_past_its_retention_are_not_kept(services: Services, unique: str) -> None:
    view = subscription(unique, "unique_count_agg")
    event = Event(lago_id="l", organization_id=ORG, transaction_id="old", code="m",
                  external_subscription_id=view.external_id, timestamp_us=1_600_000_000 * 1_000_000,
                  received_at_us=0, properties={"v": "u"})
    item = plan(event, view)
    assert isinstance(item, Planned)

    async def body(redis: AnyRedis) -> tuple[list[bool], int, int]:
        applied = await UsageState(redis).apply([item])
        return applied, await redis.exists(item.ops[0].key), await redis.exists(dedup_key(view.scope, item.period_key))

    assert run(services, body) == ([True], 0, 0)


def test_one_script_per_subscription_in_one_batch(services: Services, unique: str) -> None:
    first, second = subscription(f"{unique}-a", "count_agg"), subscription(f"{unique}-b", "count_agg")
    items = planned(first, events_of(first, [0] * 3)) + planned(second, events_of(second, [0] * 2))
    # the same transaction_id under another subscription is another event
    assert {i.transaction_id for i in items} == {"tx-0", "tx-1", "tx-2"}

    async def body(redis: AnyRedis) -> tuple[list[bool], list[object]]:
        applied = await UsageState(redis).apply(items)
        counts = [await redis.hget(i.ops[0].key, "n") for i in (items[0], items[3])]
        return applied, counts

    assert run(services, body) == ([True] * 5, [b"3", b"2"])


def test_each_event_s_flag_says_whether_it_was_applied_in_the_batch_s_order(services: Services, unique: str) -> None:
    first, second = subscription(f"{unique}-a", "count_agg"), subscription(f"{unique}-b", "count_agg")
    a, b = planned(first, events_of(first, [0] * 4)), planned(second, events_of(second, [0] * 3))
    mixed = [a[0], b[0], a[1], a[2], b[1], a[3], b[2]]  # the two subscriptions' scripts interleave

    async def body(redis: AnyRedis) -> tuple[list[bool], list[bool], list[object]]:
        state = UsageState(redis)
        before = await state.apply([a[1], b[2]])
        flags = await state.apply(mixed)
        counts = [await redis.hget(item.ops[0].key, "n") for item in (a[0], b[0])]
        return before, flags, counts

    assert run(services, body) == ([True, True], [True, True, False, True, True, True, False], [b"4", b"3"])


def test_read_usage_of_an_empty_period(services: Services, unique: str) -> None:
    async def body(redis: AnyRedis) -> object:
        return await read_usage(redis, f"{ORG}:nothing-{unique}", ["x"], "20260101T000000Z")

    usage = run(services, body)
    assert usage == {"x": fold("sum_agg", [], 0, 1)}
    assert unique_key("s", "m", "p") != totals_key("s", "m", "p")


def test_a_latest_of_equal_times_is_the_later_event_within_a_batch_and_after_the_stored_one(
        services: Services, unique: str) -> None:
    view = subscription(unique, "latest_agg")
    now_us = int(time.time()) * 1_000_000

    def at(tx: str, value: int, timestamp_us: int) -> Planned:
        item = plan(Event(lago_id="l", organization_id=ORG, transaction_id=tx, code="m",
                          external_subscription_id=view.external_id, timestamp_us=timestamp_us, received_at_us=0,
                          properties={"v": value}), view)
        assert isinstance(item, Planned)
        return item

    async def body(redis: AnyRedis) -> list[object]:
        state = UsageState(redis)
        key = at("x", 0, now_us).ops[1].key
        seen = []
        await state.apply([at("a", 5, now_us), at("b", 6, now_us), at("c", 4, now_us - 1)])
        seen.append(await redis.hmget(key, "latest", "latest_ts"))
        await state.apply([at("d", 7, now_us - 2), at("e", 8, now_us)])  # equal to the stored time: it wins
        seen.append(await redis.hmget(key, "latest", "latest_ts"))
        return seen

    ts = str(now_us).encode()
    assert run(services, body) == [[b"6000000", ts], [b"8000000", ts]]


def test_thousands_of_events_of_one_subscription_in_one_script_repeats_included(
        services: Services, unique: str) -> None:
    view = subscription(unique, "unique_count_agg")
    events = events_of(view, [f"user-{n % 2100}" for n in range(2500)])  # past a thousand marks and members
    items = planned(view, events)
    slot = period_of(events[0].timestamp_us, view)
    assert slot is not None

    async def body(redis: AnyRedis) -> tuple[list[bool], list[bool], object, object]:
        state = UsageState(redis)
        first = await state.apply(items + items[:3])  # a transaction_id twice in one call counts once
        again = await state.apply(items)
        usage = await read_usage(redis, view.scope, [f"metric-{unique}"], slot.key)
        return first, again, usage[f"metric-{unique}"].unique_count, await redis.scard(dedup_key(view.scope, slot.key))

    first, again, members, marks = run(services, body)
    assert first == [True] * 2500 + [False] * 3
    assert again == [False] * 2500
    assert (members, marks) == (2100, 2500)


def test_a_sum_past_64_bit_millionths_stays_exact_and_one_word_state_still_counts(
        services: Services, unique: str) -> None:
    view = subscription(unique, "sum_agg")
    items = planned(view, events_of(view, ["999999999.999999"] * 6 + ["-0.000001"] * 2))  # 10**15 - 1 and -1 millionths
    key = items[0].ops[0].key
    slot = period_of(events_of(view, [0])[0].timestamp_us, view)
    assert slot is not None
    one_word = 2**63 - 1 - 5 * 10**15  # a sum kept in one word (before two): room for five more such events

    async def body(redis: AnyRedis) -> tuple[list[bool], list[bool], object]:
        await redis.hset(key, "sum", one_word)
        state = UsageState(redis)
        first = await state.apply(items)
        again = await state.apply(items)
        usage = await read_usage(redis, view.scope, [f"metric-{unique}"], slot.key)
        return first, again, usage[f"metric-{unique}"].sum

    first, again, total = run(services, body)
    assert (first, again) == ([True] * 8, [False] * 8)
    assert total == Decimal(one_word + 6 * (10**15 - 1) - 2) / 10**6  # past 2**63 millionths, exact


def test_a_batch_s_sum_added_up_in_the_script_stays_exact_over_thousands_of_carries(
        services: Services, unique: str) -> None:
    view = subscription(unique, "sum_agg")
    # each low word is 10**12 - 1: a carry at nearly every event, and the low words alone would pass
    # 2**53 (where a double stops being exact) after ~9,000 events
    items = planned(view, events_of(view, ["999999999.999999"] * 20_000 + ["-0.000001", "0.000003"]))
    slot = period_of(events_of(view, [0])[0].timestamp_us, view)
    assert slot is not None

    async def body(redis: AnyRedis) -> tuple[list[bool], object]:
        flags = await UsageState(redis).apply(items)
        usage = await read_usage(redis, view.scope, [f"metric-{unique}"], slot.key)
        return flags, usage[f"metric-{unique}"]

    flags, usage = run(services, body)
    assert flags == [True] * 20_002
    assert usage.sum == Decimal(20_000 * (10**15 - 1) + 2) / 10**6  # type: ignore[attr-defined]
    assert usage.events_count == 20_002  # type: ignore[attr-defined]


def test_many_subscriptions_read_together_come_back_each_to_its_own(services: Services, unique: str) -> None:
    """read_usages puts READ_TOGETHER subscriptions' keys in one script call: past that, several calls; each
    usage goes back to its own (subscription, metric), a subscription without state included."""
    views = [subscription(f"{unique}-{n}", "sum_agg") for n in range(READ_TOGETHER + 7)]

    async def body(redis: AnyRedis) -> tuple[list[dict[str, MetricUsage]], str]:
        state = UsageState(redis)
        batch: list[Planned] = []
        for n, view in enumerate(views):
            if n % 5:  # every fifth has no usage at all
                batch += planned(view, events_of(view, [n, 1]))
        await state.apply(batch)
        period = period_of(int(time.time()) * 1_000_000, views[0])
        assert period is not None
        wanted = [(view.scope, [f"metric-{unique}-{n}", "no-such-metric"], period.key) for n, view in enumerate(views)]
        return await read_usages(redis, wanted), period.key

    usages, _ = run(services, body)
    assert len(usages) == len(views)
    for n, usage in enumerate(usages):
        assert list(usage) == [f"metric-{unique}-{n}", "no-such-metric"]
        assert usage[f"metric-{unique}-{n}"].sum == (Decimal(n + 1) if n % 5 else Decimal(0))
        assert usage["no-such-metric"].events_count == 0
