"""The one place the clients of PostgreSQL, Redis and Kafka are built from the settings.

Redis: a connection Redis dropped (a restart, a failover, a client timeout) is found dead only when
next used. Without a retry, that first use fails: a current-usage request answers 503, or a
readiness probe says Redis is unreachable while it is back. The HTTP processes' client
(`reconnecting_redis`) therefore retries once, at once, on a new connection and for connection
errors only (a timeout is not retried: it would double the wait). The aggregator's client does not
retry by itself: a failed batch is retried whole by its own backoff (aggregator/processor.py).

PostgreSQL: JSON columns are read with orjson. PostgreSQL writes a JSONB number without an exponent
(a property of 1e300 comes back as 301 digits); Python's json module reads that as an integer that
orjson then cannot write into a response, while orjson reads it as the float it was sent as.
"""

from __future__ import annotations

import orjson
from psycopg.types.json import set_json_loads
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from core.settings import Settings


def database(settings: Settings, *, pool_size: int, max_overflow: int = 10) -> AsyncEngine:
    """An async engine on the configured PostgreSQL (psycopg 3), its connections checked before use."""
    set_json_loads(orjson.loads)  # for every connection of the process (see the module's note)
    return create_async_engine(settings.sqlalchemy_url, pool_size=pool_size, max_overflow=max_overflow,
                               pool_pre_ping=True)


def redis_client(url: str, *, timeout_s: float, connect_timeout_s: float = 3.0) -> Redis:
    """A Redis client that reports a connection error to its caller (who retries what it was doing)."""
    return Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=connect_timeout_s)


def reconnecting_redis(url: str, timeout_s: float, connect_timeout_s: float) -> Redis:
    """The HTTP processes' Redis client: one immediate retry on a new connection after a connection error."""
    return Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=connect_timeout_s,
                          retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
                          retry_on_error=[RedisConnectionError])


def idempotent_producer_config(bootstrap: str) -> dict[str, object]:
    """A confluent-kafka producer whose every message Kafka acknowledged is written once (acks=all,
    idempotent), for the aggregator's rejects and the replay of rejected events."""
    return {"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all", "linger.ms": 5,
            "log_level": 3}
