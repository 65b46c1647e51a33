"""The Redis client of the HTTP processes (the API's current usage and both /ready probes).

A connection Redis dropped (a restart, a failover, a client timeout) is found dead only when next
used. Without a retry, that first use fails: a current-usage request answers 503, or a readiness
probe says Redis is unreachable while it is back. One immediate retry, on a new connection and
for connection errors only (a timeout is not retried: it would double the wait), makes it succeed.
"""

from __future__ import annotations

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError


def reconnecting_redis(url: str, timeout_s: float, connect_timeout_s: float) -> Redis:
    return Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=connect_timeout_s,
                          retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
                          retry_on_error=[RedisConnectionError])
