"""On a Redis Cluster (`make test-cluster`): a master killed with -9 mid-stream, its replica promoted.

Skipped against a single Redis (`make test`), where tests/e2e/test_aggregator_faults.py stops Redis instead.
"""

from __future__ import annotations

import os
import signal
import time

import httpx
import pytest
import redis
from redis.cluster import key_slot

from core.clients import is_cluster, sync_redis
from meterline.stack import redis_cluster
from meterline.stack.proc import RunDir, running_pid
from tests.conftest import HOME, Services
from tests.e2e.test_aggregator_faults import (
    archived,
    assert_exact,
    barrier,
    meterline,
    organization_of,
    seed,
    send,
    settle,
    stream_in_background,
    wait_gone,
    workload,
)


@pytest.fixture
def cluster(services: Services) -> redis.RedisCluster:
    if not is_cluster(services.redis_url):
        pytest.skip("runs against a Redis Cluster (make test-cluster)")
    client = sync_redis(services.redis_url)
    assert isinstance(client, redis.RedisCluster)
    return client


def role_of(port: int) -> str:
    with redis.Redis(host=redis_cluster.HOST, port=port, socket_timeout=2) as node:
        return str(node.info("replication")["role"])


def wait_for_a_master_of(slot: int, other_than: int, timeout_s: float = 30) -> int:
    """The port of the master serving `slot` once it is no longer `other_than` (the replica was promoted)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for port in redis_cluster.MASTER_PORTS + redis_cluster.REPLICA_PORTS:
            if port == other_than:
                continue
            try:
                with redis.Redis(host=redis_cluster.HOST, port=port, socket_timeout=1) as node:
                    for start, end, master, *_ in node.cluster("slots"):
                        if start <= slot <= end and master[1] != other_than and \
                                node.cluster("info")["cluster_state"] == "ok":
                            return int(master[1])
            except redis.exceptions.RedisError:
                continue
        time.sleep(0.2)
    raise AssertionError(f"no replica took slot {slot} over from {other_than} within {timeout_s} s")


def test_a_master_killed_mid_stream_fails_over_and_loses_and_doubles_nothing(
        client: httpx.Client, ingest: httpx.Client, unique: str, services: Services,
        cluster: redis.RedisCluster) -> None:
    customer_id, subscription_id = seed(client, unique)
    slot = key_slot(f"ml:{{{organization_of(services, subscription_id)}:{subscription_id}}}:x".encode())
    victim_port = int(cluster.nodes_manager.slots_cache[slot][0].port)
    if not cluster.nodes_manager.slots_cache[slot][1:]:
        pytest.skip("the local cluster has no replicas (not enough memory when it was created)")
    victim = running_pid(RunDir(HOME), redis_cluster.name_of(victim_port), redis_cluster.MARKER)
    assert victim is not None, f"the master on {victim_port} was not started by this stack"
    events, calls, seats = workload(subscription_id, 3000)

    logs = sorted((HOME / "log").glob("aggregator-*.log"))
    sizes = {log: log.stat().st_size for log in logs}
    sender = stream_in_background(ingest, events, pause_s=0.05)  # 36 requests over ~3 s
    time.sleep(1.0)
    os.kill(victim, signal.SIGKILL)
    wait_gone(victim)
    sender.join(timeout=180)
    assert not sender.is_alive()
    promoted = wait_for_a_master_of(slot, other_than=victim_port)

    usage = settle(client, customer_id, subscription_id, calls, seats)

    assert_exact(usage, calls, 2700, seats)
    assert archived(services, subscription_id) == (3000, 3000)
    # an aggregator met the failover mid-stream: a batch held back while the master was gone, then retried
    after = "".join(log.read_bytes()[sizes[log]:].decode(errors="replace") for log in logs)
    assert "held back" in after and "Redis unavailable" in after
    # the killed node comes back (`up` starts what is not running) as the promoted one's replica
    assert f"started the Redis Cluster at {redis_cluster.URL}" in meterline("up").stdout
    deadline = time.monotonic() + 30
    while role_of(victim_port) != "slave" and time.monotonic() < deadline:
        time.sleep(0.2)
    assert (role_of(victim_port), role_of(promoted)) == ("slave", "master")
    # and copies of every event sent again change nothing
    send(ingest, events + [barrier(subscription_id)])  # the barrier counts after the copies (same partition)
    assert_exact(settle(client, customer_id, subscription_id, calls + 1, seats), calls + 1, 2701, seats)
    assert archived(services, subscription_id) == (3001, 3001)
