"""What an aggregator tells the alerts workers through a real Redis: that it is behind."""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis

from aggregator.stats import BEHIND_EVENTS, BEHIND_KEY, BEHIND_TTL_MS, BehindFlag, aggregators_behind
from tests.conftest import Services


def test_an_aggregator_says_it_is_behind_while_it_has_a_backlog_and_takes_it_back_after(services: Services) -> None:
    async def main() -> tuple[list[bool], int]:
        client = Redis.from_url(services.redis_url)
        try:
            await client.delete(BEHIND_KEY)
            flag, other = BehindFlag(client), BehindFlag(client)
            seen = [await aggregators_behind(client)]
            await flag.update(BEHIND_EVENTS)  # a live stream's next fetch
            seen.append(await aggregators_behind(client))
            await flag.update(BEHIND_EVENTS + 1)
            seen.append(await aggregators_behind(client))
            expires_ms = await client.pttl(BEHIND_KEY)
            await other.update(0)  # another aggregator, live all along, says nothing
            seen.append(await aggregators_behind(client))
            await flag.update(BEHIND_EVENTS)  # caught up: taken back at once
            seen.append(await aggregators_behind(client))
            return seen, expires_ms
        finally:
            await client.aclose()

    seen, expires_ms = asyncio.run(main())
    assert seen == [False, False, True, True, False]
    assert 0 < expires_ms <= BEHIND_TTL_MS


def test_without_redis_the_aggregator_goes_on_and_the_alerts_workers_do_not_yield() -> None:
    async def main() -> bool:
        client = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=1)
        try:
            await BehindFlag(client).update(BEHIND_EVENTS + 1)  # logged, not raised: the batch goes on
            return await aggregators_behind(client)
        finally:
            await client.aclose()

    assert asyncio.run(main()) is False
