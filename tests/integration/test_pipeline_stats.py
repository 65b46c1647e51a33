"""What aggregators tell the alerts workers through a real Redis: that one of them is behind (aggregator/behind.py)."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from redis.asyncio import Redis

from aggregator.behind import BEHIND_EVENTS, BEHIND_TTL_MS, BehindFlag, aggregators_behind
from core.clients import redis_client
from tests.conftest import Services


def test_each_aggregator_says_it_is_behind_and_takes_back_only_its_own_word_once_a_batch_is_done(
        services: Services) -> None:
    key = f"test:behind:{uuid.uuid4()}"  # not the stack's: its aggregators may be behind meanwhile

    async def main() -> tuple[list[bool], int]:
        client = redis_client(services.redis_url, timeout_s=5)
        first, second = BehindFlag(client, key, "a"), BehindFlag(client, key, "b")
        try:
            seen = [await aggregators_behind(client, key)]
            await first.update(BEHIND_EVENTS, done=False)  # a live stream's batch and next fetch
            seen.append(await aggregators_behind(client, key))
            await first.update(BEHIND_EVENTS + 1, done=False)
            await second.update(BEHIND_EVENTS * 3, done=False)
            seen.append(await aggregators_behind(client, key))
            expires_ms = await client.pttl(key)
            await second.update(0, done=False)  # taking its last batch: still processing it
            await second.update(0, done=True)  # done with it: its word only
            seen.append(await aggregators_behind(client, key))
            await first.update(0, done=True)
            seen.append(await aggregators_behind(client, key))
            return seen, expires_ms
        finally:
            await client.delete(key)
            await client.aclose()

    seen, expires_ms = asyncio.run(main())
    assert seen == [False, False, True, True, False]
    assert 0 < expires_ms <= BEHIND_TTL_MS


def test_without_redis_the_aggregator_goes_on_and_the_alerts_workers_do_not_yield(
        caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> bool:
        client = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=1)
        try:
            await BehindFlag(client).update(BEHIND_EVENTS + 1, done=False)  # logged, not raised
            return await aggregators_behind(client)
        finally:
            await client.aclose()

    assert asyncio.run(main()) is False
    assert "could not tell the alerts workers whether the aggregator is behind" in caplog.text
