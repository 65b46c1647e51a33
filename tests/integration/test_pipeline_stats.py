"""The pipeline totals an aggregator leaves in a real Redis after a batch, and what the alerts workers read there."""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis

from aggregator.processor import BatchResult
from aggregator.stats import BEHIND_EVENTS, BEHIND_KEY, BEHIND_TTL_MS, Totals, aggregators_behind, batch_done
from tests.conftest import Services


def test_an_aggregator_with_a_backlog_says_so_for_a_second_and_a_live_one_does_not(services: Services) -> None:
    async def main() -> tuple[list[bool], int]:
        client = Redis.from_url(services.redis_url)
        try:
            await client.delete(BEHIND_KEY)
            result = BatchResult(applied=10, archived=10)
            seen = [await aggregators_behind(client)]
            await batch_done(client, Totals(), result, 10, 0.01, waiting=BEHIND_EVENTS)  # a live stream's next fetch
            seen.append(await aggregators_behind(client))
            await batch_done(client, Totals(), result, 10, 0.01, waiting=BEHIND_EVENTS + 1)
            seen.append(await aggregators_behind(client))
            expires_ms = await client.pttl(BEHIND_KEY)
            await client.delete(BEHIND_KEY)
            return seen, expires_ms
        finally:
            await client.aclose()

    seen, expires_ms = asyncio.run(main())
    assert seen == [False, False, True]
    assert 0 < expires_ms <= BEHIND_TTL_MS


def test_the_alerts_workers_do_not_yield_when_redis_cannot_say() -> None:
    async def main() -> bool:
        client = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=1)
        try:
            return await aggregators_behind(client)
        finally:
            await client.aclose()

    assert asyncio.run(main()) is False
