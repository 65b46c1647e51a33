"""Per-organization rate limit on accepted events: a token bucket per organization, in process.

Pure logic (the clock is passed in). Each ingest process limits on its own, so with N processes
an organization may reach N times the configured rate: the limit protects the service from one
runaway producer, it is not a billing quota.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field


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
