"""What the workers write to a real Redis (single or cluster, whichever the stack runs) beside usage: that an
aggregator is behind (aggregator/behind.py), and the pipeline totals and recent alerts of the ops pages
(aggregator/stats.py), also through a pooled connection Redis dropped, as a restart or a failover does."""

from __future__ import annotations

import asyncio
import uuid

import orjson
import pytest
import redis
from redis.asyncio import Redis, RedisCluster

from aggregator.alerts import Evaluated
from aggregator.behind import BEHIND_EVENTS, BEHIND_TTL_MS, BehindFlag, aggregators_behind
from aggregator.processor import BatchResult
from aggregator.stats import alerts_done, record
from core.clients import AnyRedis, redis_client
from core.metrics import RECENT_ALERTS_KEY, STATS_KEY
from tests.conftest import Services

DROPPED = "meterline-test-dropped"


async def drop_connection(client: AnyRedis, url: str, *keys: str) -> None:
    """Redis closes the client's pooled connection to each node holding one of `keys` (the one connection
    there: the client's calls are sequential), as a restart or a failover would."""
    if isinstance(client, RedisCluster):
        nodes = {(node.host, int(node.port)): node for node in map(client.get_node_from_key, keys) if node}
        assert nodes
        for node in nodes.values():
            await client.execute_command("CLIENT SETNAME", DROPPED, target_nodes=node)
        admins = [redis.Redis(host=host, port=port) for host, port in nodes]
    else:
        await client.client_setname(DROPPED)
        admins = [redis.Redis.from_url(url)]
    for admin in admins:
        with admin:
            named = [entry["id"] for entry in admin.client_list() if entry["name"] == DROPPED]
            assert len(named) == 1, named
            assert admin.client_kill_filter(_id=named[0]) == 1


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


def test_totals_and_recent_alerts_are_written_through_a_connection_redis_dropped(
        services: Services, caplog: pytest.LogCaptureFixture) -> None:
    """The first write after a restart or failover finds its pooled connection dead: it is run once more on a
    new one, not lost (before, the ops page missed the alert an evaluation fired just then)."""
    reason = f"test-{uuid.uuid4()}"  # a field of the stack's totals hash no worker writes
    fired = [{"kind": "alert", "external_subscription_id": f"s-{uuid.uuid4()}", "current_value": n}
             for n in (800, 1000)]

    async def main() -> tuple[int, list[object]]:
        client = redis_client(services.redis_url, timeout_s=5)
        try:
            await record(client, BatchResult(rejected={reason: 2}), 2, 0.01)
            await drop_connection(client, services.redis_url, STATS_KEY)
            await record(client, BatchResult(rejected={reason: 3}), 3, 0.01)
            # on a cluster the totals and the recent alerts are on two nodes: both connections dropped
            await drop_connection(client, services.redis_url, STATS_KEY, RECENT_ALERTS_KEY)
            await alerts_done(client, Evaluated(evaluated=1, fired=1, recent=[fired[0]]), 0.01)
            await drop_connection(client, services.redis_url, STATS_KEY, RECENT_ALERTS_KEY)
            await alerts_done(client, Evaluated(evaluated=1, fired=1, recent=[fired[1]]), 0.01)
            total = int(await client.hget(STATS_KEY, f"rejected:{reason}") or 0)
            recent = [orjson.loads(raw) for raw in await client.lrange(RECENT_ALERTS_KEY, 0, -1)]
            return total, [entry for entry in recent if entry in fired]
        finally:
            await client.hdel(STATS_KEY, f"rejected:{reason}")
            for entry in fired:
                await client.lrem(RECENT_ALERTS_KEY, 0, orjson.dumps(entry).decode())
            await client.aclose()

    total, recent = asyncio.run(main())
    assert total == 5
    assert recent == [fired[1], fired[0]]  # newest first
    assert "pipeline totals not updated" not in caplog.text


def test_the_behind_word_is_written_through_a_connection_redis_dropped(
        services: Services, caplog: pytest.LogCaptureFixture) -> None:
    key = f"test:behind:{uuid.uuid4()}"

    async def main() -> list[bool]:
        client = redis_client(services.redis_url, timeout_s=5)
        flag = BehindFlag(client, key, "a")
        try:
            await flag.update(BEHIND_EVENTS + 1, done=False)
            seen = [await aggregators_behind(client, key)]
            await client.delete(key)
            await drop_connection(client, services.redis_url, key)
            await flag.update(BEHIND_EVENTS + 1, done=False)  # said again (a transaction) on a new connection
            seen.append(await aggregators_behind(client, key))
            await drop_connection(client, services.redis_url, key)
            await flag.update(0, done=True)  # taken back (one command) on a new connection
            seen.append(await aggregators_behind(client, key))
            return seen
        finally:
            await client.delete(key)
            await client.aclose()

    assert asyncio.run(main()) == [True, True, False]
    assert "could not tell the alerts workers" not in caplog.text
