"""The HTTP processes' Redis client through a real Redis: a dropped connection is replaced in the same call."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from core.clients import reconnecting_redis
from tests.conftest import Services


def test_a_connection_redis_dropped_is_replaced_within_the_same_call(services: Services) -> None:
    async def main() -> bool:
        client = reconnecting_redis(services.redis_url, timeout_s=2, connect_timeout_s=2)
        plain = Redis.from_url(services.redis_url, socket_timeout=2, socket_connect_timeout=2)
        admin = Redis.from_url(services.redis_url)
        try:
            ids = [await client.client_id(), await plain.client_id()]
            for connection_id in ids:  # as a restart of Redis would
                await admin.client_kill_filter(_id=connection_id)
            answered = await client.ping()
            with pytest.raises(RedisConnectionError):  # what a client without the retry does
                await plain.ping()
            return answered
        finally:
            for each in (client, plain, admin):
                await each.aclose()

    assert asyncio.run(main()) is True
