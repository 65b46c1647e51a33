"""The per-organization rate limit shared through a real Redis (single or cluster, whichever the stack
runs): two limiters stand for two ingest processes; an unreachable Redis falls back to the local bucket."""

from __future__ import annotations

import asyncio
import logging
import math
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest

from core.clients import AnyRedis, reconnecting_redis
from ingest.ratelimit import SharedRateLimiter, bucket_key
from tests.conftest import Services

T = TypeVar("T")
UNREACHABLE = ("redis://127.0.0.1:1/0", "redis+cluster://127.0.0.1:1")
LOGGER = "meterline.ingest.ratelimit"


def client(url: str) -> AnyRedis:
    return reconnecting_redis(url, timeout_s=0.5, connect_timeout_s=0.5)


def run(url: str, body: Callable[[AnyRedis, AnyRedis], Awaitable[T]]) -> T:
    """`body` gets two clients of one Redis, one per "process"."""
    async def main() -> T:
        first, second = client(url), client(url)
        try:
            return await body(first, second)
        finally:
            await first.aclose()
            await second.aclose()
    return asyncio.run(main())


def new_org() -> str:
    return str(uuid.uuid4())


def warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.name == LOGGER and record.levelno == logging.WARNING]


def test_two_processes_share_one_organizations_budget(services: Services, caplog: pytest.LogCaptureFixture) -> None:
    org, other = new_org(), new_org()

    async def body(first: AnyRedis, second: AnyRedis) -> None:
        # 100/s: what refills while the test runs (a first call on a cluster takes ~0.2 s) stays small
        one, two = SharedRateLimiter(first, 100, 1000), SharedRateLimiter(second, 100, 1000)
        began = time.monotonic()
        assert await one.admit(org, 600) == 0.0
        wait_s = await two.admit(org, 600)
        elapsed_s = time.monotonic() - began
        # 400 left plus what refilled meanwhile (at most `elapsed_s` of Redis's time at 100/s): 200 missing at most
        assert 2.0 - elapsed_s <= wait_s <= 2.0
        emptying = time.monotonic()
        assert await two.admit(org, 400) == 0.0
        assert await one.admit(other, 1000) == 0.0  # its own bucket
        assert sorted(await first.hkeys(bucket_key(org))) == [b"tokens", b"ts"]
        # the time to refill 1000 at 100/s, set by the call that emptied it (PTTL rounds down to the ms)
        pttl = await first.pttl(bucket_key(org))
        assert 10_000 - 1_000 * (time.monotonic() - emptying) - 1 <= pttl <= 10_000

    run(services.redis_url, body)
    assert warnings(caplog) == []


def test_a_fresh_bucket_is_full_and_a_refusal_takes_nothing(services: Services) -> None:
    org = new_org()

    async def body(first: AnyRedis, second: AnyRedis) -> None:
        # 0.01/s: nothing the test's own time could refill changes the figures below
        one, two = SharedRateLimiter(first, 0.01, 100), SharedRateLimiter(second, 0.01, 100)
        began = time.monotonic()
        assert await one.admit(org, 100) == 0.0
        assert await first.hget(bucket_key(org), "tokens") == b"0"
        wait_s = await two.admit(org, 1)
        elapsed_s = time.monotonic() - began
        # 100 s for one event at 0.01/s, less what refilled meanwhile (at most `elapsed_s` of Redis's time)
        assert 100.0 - elapsed_s <= wait_s <= 100.0
        assert await first.hget(bucket_key(org), "tokens") == b"0"
        # the time to refill 100 at 0.01/s, set by the admitted call (PTTL rounds down to the ms)
        pttl = await first.pttl(bucket_key(org))
        assert 10_000_000 - 1_000 * (time.monotonic() - began) - 1 <= pttl <= 10_000_000

    run(services.redis_url, body)


def test_the_budget_is_back_after_the_refill_time_and_the_idle_bucket_is_gone(services: Services) -> None:
    org = new_org()

    async def body(first: AnyRedis, second: AnyRedis) -> None:
        one, two = SharedRateLimiter(first, 1000, 1000), SharedRateLimiter(second, 1000, 1000)
        assert await one.admit(org, 1000) == 0.0
        assert 0 < await two.admit(org, 1000) <= 1.0
        # the refill time (1 s) and a little more: Redis expires a key only once its time is strictly past
        await asyncio.sleep(1.05)
        assert await first.exists(bucket_key(org)) == 0  # expired: a full bucket, costing nothing
        assert await two.admit(org, 1000) == 0.0

    run(services.redis_url, body)


def test_a_request_larger_than_the_burst_never_passes_and_writes_nothing(services: Services) -> None:
    org = new_org()

    async def body(first: AnyRedis, second: AnyRedis) -> None:
        limiter = SharedRateLimiter(first, 1000, 1000)
        assert await limiter.admit(org, 1001) == math.inf
        assert await first.exists(bucket_key(org)) == 0
        assert await limiter.admit(org, 1000) == 0.0

    run(services.redis_url, body)


@pytest.mark.parametrize("url", UNREACHABLE)
def test_an_unreachable_redis_falls_back_to_the_local_bucket_warning_every_10_s(
        url: str, caplog: pytest.LogCaptureFixture) -> None:
    org = new_org()
    now = [0.0]

    async def body(first: AnyRedis, second: AnyRedis) -> list[float]:
        limiter = SharedRateLimiter(first, 100, 200, clock=lambda: now[0])
        waits = [await limiter.admit(org, 200), await limiter.admit(org, 100), await limiter.admit(org, 201)]
        now[0] = 5.0
        waits.append(await limiter.admit(org, 100))  # 500 tokens refilled, capped at 200
        now[0] = 10.0
        waits.append(await limiter.admit(org, 100))
        return waits

    caplog.set_level(logging.WARNING, logger=LOGGER)
    assert run(url, body) == [0.0, 1.0, math.inf, 0.0, 0.0]
    warned = warnings(caplog)
    assert [vars(record)["requests_limited_alone"] for record in warned] == [1, 4]  # t=0 and t=10
    assert "each process limits on its own meanwhile" in warned[0].getMessage()


def test_a_redis_slower_than_the_deadline_falls_back(services: Services, caplog: pytest.LogCaptureFixture) -> None:
    org = new_org()

    async def body(first: AnyRedis, second: AnyRedis) -> list[float]:
        limiter = SharedRateLimiter(first, 100, 200, deadline_s=0.000_001, clock=lambda: 0.0)
        return [await limiter.admit(org, 200), await limiter.admit(org, 100)]

    caplog.set_level(logging.WARNING, logger=LOGGER)
    assert run(services.redis_url, body) == [0.0, 1.0]
    assert [vars(record)["requests_limited_alone"] for record in warnings(caplog)] == [1]
    assert "TimeoutError" in warnings(caplog)[0].getMessage()


def test_a_zero_rate_admits_everything_without_asking_redis(caplog: pytest.LogCaptureFixture) -> None:
    async def body(first: AnyRedis, second: AnyRedis) -> list[float]:
        limiter = SharedRateLimiter(first, 0, 100)
        return [await limiter.admit(new_org(), 1_000_000) for _ in range(3)]

    caplog.set_level(logging.WARNING, logger=LOGGER)
    assert run(UNREACHABLE[0], body) == [0.0, 0.0, 0.0]
    assert warnings(caplog) == []  # an unreachable Redis was never called
