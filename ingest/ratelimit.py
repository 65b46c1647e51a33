"""Per-organization rate limit on accepted events: one token bucket per organization, shared by every
process that takes events (the ingest's workers and the API) through Redis.

A bucket lives in Redis under `ml:ratelimit:{<organization_id>}` (the braces are a Redis Cluster hash tag)
and is read, refilled and taken from by one atomic script (`BUCKET_LUA`) per request, with Redis's own
clock: the processes' clocks do not matter, and N processes admit the configured rate, not N times it.
The key expires once the bucket would be full again, so an idle organization costs Redis nothing.

Kafka is the ingest's only hard dependency. When Redis does not answer within `REDIS_DEADLINE_S`
(down, failing over, slow), the request is limited by this process's own bucket (`RateLimiter`, pure: the
clock is passed in) and a warning is logged at most every `WARN_EVERY_S`: during an outage an organization
may reach N times the rate again. The limit protects the service from one runaway producer; it is not a
billing quota. A call cut off by the deadline may still have taken its tokens in Redis: the request
is then counted twice, never zero times.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from core.clients import REDIS_FAILED, AnyRedis

log = logging.getLogger("meterline.ingest.ratelimit")

REDIS_DEADLINE_S = 0.5  # the most a request waits for the shared bucket (retries included) before limiting alone
WARN_EVERY_S = 10.0
REDIS_FAILED_OR_LATE: tuple[type[Exception], ...] = (*REDIS_FAILED, TimeoutError)


@dataclass
class _Bucket:
    tokens: float
    updated_at: float


@dataclass
class RateLimiter:
    events_per_s: float  # 0 disables the limit
    burst: float  # the bucket's size: how many events may arrive at once after a quiet period
    _buckets: dict[str, _Bucket] = field(default_factory=dict)

    def admit(self, organization_id: str, events: int, now: float) -> float:
        """Take `events` tokens and return 0, or take nothing and return the seconds until they exist."""
        if self.events_per_s <= 0:
            return 0.0
        bucket = self._buckets.get(organization_id)
        if bucket is None:
            if len(self._buckets) > 100_000:  # idle organizations are full buckets: forgetting them is exact
                self._buckets.clear()
            bucket = self._buckets[organization_id] = _Bucket(self.burst, now)
        else:
            bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.updated_at) * self.events_per_s)
            bucket.updated_at = now
        if events > self.burst:
            return math.inf  # a request bigger than the bucket can never pass; callers cap the retry hint
        if bucket.tokens >= events:
            bucket.tokens -= events
            return 0.0
        return (events - bucket.tokens) / self.events_per_s


def retry_after_header(wait_s: float) -> str:
    """Retry-After is whole seconds; round up so a client that obeys it is admitted."""
    return str(max(1, math.ceil(min(wait_s, 60.0))))


# KEYS[1] the organization's bucket, a hash: `tokens` left and `ts`, when they were counted (µs of Redis's
# TIME: an integer a Lua double holds exactly). ARGV: events, rate (events/s), burst. Returns 0 when the
# tokens were taken, else the seconds until they exist, as text ('inf': a request bigger than the bucket,
# which can never pass). The same arithmetic as `RateLimiter.admit`. A refusal writes nothing: the tokens
# it found are what the next call recomputes from `ts`. TIME in a script that writes needs effects
# replication, the only kind since Redis 7.
BUCKET_LUA = """
local events = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local burst = tonumber(ARGV[3])
if events > burst then
  return 'inf'
end
local time = redis.call('TIME')
local now_us = tonumber(time[1]) * 1000000 + tonumber(time[2])
local stored = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = burst
if stored[1] and stored[2] then
  local elapsed_us = math.max(0, now_us - tonumber(stored[2]))
  tokens = math.min(burst, tonumber(stored[1]) + elapsed_us * rate / 1000000)
end
if tokens < events then
  return tostring((events - tokens) / rate)
end
redis.call('HSET', KEYS[1], 'tokens', tokens - events, 'ts', now_us)
redis.call('PEXPIRE', KEYS[1], math.max(1000, math.ceil(burst / rate * 1000)))
return 0
"""


def bucket_key(organization_id: str) -> str:
    """The organization's bucket; the hash tag keeps the script's one key on one cluster slot."""
    return f"ml:ratelimit:{{{organization_id}}}"


def wait_of(reply: int | bytes | str) -> float:
    """The script's answer in seconds: 0 (admitted), or the wait as Lua wrote it ('inf': never)."""
    return float(reply)


class SharedRateLimiter:
    """The adapter: the bucket in Redis, this process's own one while Redis does not answer."""

    def __init__(self, redis: AnyRedis, events_per_s: float, burst: float, *,
                 deadline_s: float = REDIS_DEADLINE_S, clock: Callable[[], float] = time.monotonic):
        self.events_per_s = events_per_s  # 0 disables the limit (and every call to Redis)
        self.burst = burst
        self._script = redis.register_script(BUCKET_LUA)
        self._local = RateLimiter(events_per_s, burst)
        self._deadline_s = deadline_s
        self._clock = clock
        self._warned_at = -math.inf
        self._unwarned = 0  # requests limited alone since the last warning

    async def admit(self, organization_id: str, events: int) -> float:
        """Take `events` tokens and return 0, or take nothing and return the seconds until they exist."""
        if self.events_per_s <= 0:
            return 0.0
        try:
            async with asyncio.timeout(self._deadline_s):
                reply = await self._script(keys=[bucket_key(organization_id)],
                                           args=[events, self.events_per_s, self.burst])
        # RedisClusterException: no node of the cluster could be reached (it is not a RedisError);
        # TimeoutError: the deadline, which the cluster client's retries during a failover would pass
        except REDIS_FAILED_OR_LATE as exc:
            return self._admit_alone(organization_id, events, exc)
        return wait_of(reply)

    def _admit_alone(self, organization_id: str, events: int, error: Exception) -> float:
        now = self._clock()
        self._unwarned += 1
        if now - self._warned_at >= WARN_EVERY_S:
            log.warning("rate limit: Redis did not answer (%s); each process limits on its own meanwhile",
                        repr(error), extra={"requests_limited_alone": self._unwarned})
            self._warned_at, self._unwarned = now, 0
        return self._local.admit(organization_id, events, now)
