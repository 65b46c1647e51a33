"""The one place the clients of PostgreSQL, Redis and Kafka are built from the settings.

Redis: a connection Redis dropped (a restart, a failover, a client timeout) is found dead only when
next used. Without a retry, that first use fails: a current-usage request answers 503, or a
readiness probe says Redis is unreachable while it is back. The HTTP processes' client
(`reconnecting_redis`) therefore retries once, at once, on a new connection and for connection
errors only (a timeout is not retried: it would double the wait). The aggregator's client does not
retry by itself: a failed batch is retried whole by its own backoff (aggregator/processor.py).

Redis Cluster: a `redis+cluster://host:port[,host:port...]` URL (core.settings) gives redis-py's cluster
client instead, with the same timeouts. It routes each command by its key's hash slot, follows MOVED and
ASK, and re-reads the cluster's layout after a connection error: while a master fails over, the first
tries fail and later ones reach the promoted replica (the HTTP processes' client tries `CLUSTER_RETRIES`
times; the others' callers retry what they were doing, as above). Every multi-key command and script of
meterline stays within one hash tag (one subscription's keys, core.usage_state.keys), which a cluster
requires.

PostgreSQL: JSON columns are read with orjson. PostgreSQL writes a JSONB number without an exponent
(a property of 1e300 comes back as 301 digits); Python's json module reads that as an integer that
orjson then cannot write into a response, while orjson reads it as the float it was sent as.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar
from urllib.parse import unquote, urlsplit

import orjson
import redis
from psycopg.types.json import set_json_loads
from redis.asyncio import Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.exceptions import (
    BusyLoadingError,
    ClusterDownError,
    RedisClusterException,
    RedisError,
    SlotNotCoveredError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from core.settings import CLUSTER_SCHEME, Settings, redis_cluster_nodes

AnyRedis = Redis | RedisCluster  # what the clients below give: a single Redis's or a cluster's
# tries of a command that meets a connection error or a cluster without a master for its slot (a
# failover: cluster-node-timeout plus an election, ~2-3 s on the local cluster), backing off up to 1 s
CLUSTER_RETRIES = 6
# Redis cannot serve now, try again later: unreachable, slow, loading its data, or a cluster without a
# master for a slot (failing over) or with none of its nodes reachable (RedisClusterException, not a RedisError)
REDIS_UNAVAILABLE: tuple[type[Exception], ...] = (
    RedisConnectionError, RedisTimeoutError, BusyLoadingError, ClusterDownError, TryAgainError, SlotNotCoveredError,
    RedisClusterException)
REDIS_FAILED: tuple[type[Exception], ...] = (RedisError, RedisClusterException)  # any failure of a Redis command


def database(settings: Settings, *, pool_size: int, max_overflow: int = 10) -> AsyncEngine:
    """An async engine on the configured PostgreSQL (psycopg 3), its connections checked before use."""
    set_json_loads(orjson.loads)  # for every connection of the process (see the module's note)
    return create_async_engine(settings.sqlalchemy_url, pool_size=pool_size, max_overflow=max_overflow,
                               pool_pre_ping=True)


def is_cluster(url: str) -> bool:
    return url.startswith(f"{CLUSTER_SCHEME}://")


def _credentials(url: str) -> tuple[str | None, str | None]:
    """The username and password of a cluster URL, when it has them."""
    parts = urlsplit(url)
    return (unquote(parts.username) if parts.username else None,
            unquote(parts.password) if parts.password else None)


def _cluster(url: str, timeout_s: float, connect_timeout_s: float, retries: int) -> RedisCluster:
    username, password = _credentials(url)
    return RedisCluster(startup_nodes=[ClusterNode(host, port) for host, port in redis_cluster_nodes(url)],
                        socket_timeout=timeout_s, socket_connect_timeout=connect_timeout_s,
                        retry=Retry(ExponentialBackoff(cap=1.0, base=0.1), retries),
                        username=username, password=password)


def redis_client(url: str, *, timeout_s: float, connect_timeout_s: float = 3.0) -> AnyRedis:
    """A Redis client that reports a connection error to its caller (who retries what it was doing). On a
    cluster it does not retry either: a pipeline retried inside redis-py sends a command it was told to send
    to one node (the aggregator's WAIT, core.usage_state.redis_state) to any node the second time."""
    if is_cluster(url):
        return _cluster(url, timeout_s, connect_timeout_s, retries=0)
    return Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=connect_timeout_s)


T = TypeVar("T")


async def once_more_on_connection_error(write: Callable[[], Awaitable[T]]) -> T:
    """A worker's best-effort write to one key (pipeline totals, the behind word) on the workers' client,
    which does not retry: run once more, at once, after a connection error. A pooled connection Redis
    dropped (a restart, a failover) is found dead only at its next use, so without this the first such
    write after it would be lost. One key is one node, even on a cluster: a connection found dead ran none
    of it (a pipeline over several nodes would be run again where it had succeeded). A timeout is not
    retried (it would double the wait). The second run may count again what Redis applied just before the
    connection broke (its reply lost): these writes are ops counters, never usage or money."""
    try:
        return await write()
    except RedisConnectionError:
        return await write()


def reconnecting_redis(url: str, timeout_s: float, connect_timeout_s: float) -> AnyRedis:
    """The HTTP processes' Redis client: one immediate retry on a new connection after a connection error."""
    if is_cluster(url):  # the cluster client retries by itself, finding a failed-over master's replica
        return _cluster(url, timeout_s, connect_timeout_s, retries=CLUSTER_RETRIES)
    return Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=connect_timeout_s,
                          retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
                          retry_on_error=[RedisConnectionError])


def sync_redis(url: str, *, timeout_s: float = 5.0, connect_timeout_s: float = 3.0) -> redis.Redis | redis.RedisCluster:
    """A blocking client, for the command line, the local stack and the benchmarks."""
    if is_cluster(url):
        username, password = _credentials(url)
        return redis.RedisCluster(startup_nodes=[redis.cluster.ClusterNode(host, port)
                                                 for host, port in redis_cluster_nodes(url)],
                                  socket_timeout=timeout_s, socket_connect_timeout=connect_timeout_s,
                                  username=username, password=password)
    return redis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=connect_timeout_s)


def idempotent_producer_config(bootstrap: str) -> dict[str, object]:
    """A confluent-kafka producer whose every message Kafka acknowledged is written once (acks=all,
    idempotent), for the aggregator's rejects and the replay of rejected events."""
    return {"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all", "linger.ms": 5,
            "log_level": 3}
