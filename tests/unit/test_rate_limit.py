"""The per-organization token bucket (pure: the clock is an argument), and the pure parts of the shared one."""

from __future__ import annotations

import math

from ingest.ratelimit import RateLimiter, bucket_key, retry_after_header, wait_of


def test_burst_then_refill_at_the_rate() -> None:
    limiter = RateLimiter(events_per_s=100, burst=200)
    assert limiter.admit("org", 200, now=0.0) == 0.0
    assert limiter.admit("org", 100, now=0.0) == 1.0  # empty: 100 events need 1 s
    assert limiter.admit("org", 100, now=0.5) == 0.5  # 50 tokens back, 50 missing
    assert limiter.admit("org", 100, now=1.0) == 0.0


def test_a_refused_request_takes_no_tokens() -> None:
    limiter = RateLimiter(events_per_s=10, burst=100)
    assert limiter.admit("org", 100, now=0.0) == 0.0
    assert limiter.admit("org", 50, now=1.0) == 4.0
    assert limiter.admit("org", 10, now=1.0) == 0.0  # the 10 tokens of the refused attempt are still there


def test_organizations_have_their_own_buckets() -> None:
    limiter = RateLimiter(events_per_s=1, burst=100)
    assert limiter.admit("a", 100, now=0.0) == 0.0
    assert limiter.admit("b", 100, now=0.0) == 0.0
    assert limiter.admit("a", 1, now=0.0) == 1.0


def test_refill_never_exceeds_the_burst() -> None:
    limiter = RateLimiter(events_per_s=100, burst=100)
    assert limiter.admit("org", 100, now=0.0) == 0.0
    assert limiter.admit("org", 100, now=1000.0) == 0.0
    assert limiter.admit("org", 1, now=1000.0) == 0.01


def test_zero_rate_disables_the_limit() -> None:
    limiter = RateLimiter(events_per_s=0, burst=100)
    assert all(limiter.admit("org", 100, now=0.0) == 0.0 for _ in range(1000))


def test_a_request_larger_than_the_bucket_never_passes() -> None:
    assert RateLimiter(events_per_s=1000, burst=100).admit("org", 101, now=0.0) == math.inf


def test_retry_after_is_whole_seconds_rounded_up_and_capped() -> None:
    assert [retry_after_header(w) for w in (0.01, 1.0, 1.2, 59.5, math.inf)] == ["1", "1", "2", "60", "60"]


def test_the_shared_bucket_key_is_the_organization_as_a_cluster_hash_tag() -> None:
    assert bucket_key("0b6f3c1e-org") == "ml:ratelimit:{0b6f3c1e-org}"


def test_the_scripts_answer_is_read_as_seconds() -> None:
    assert [wait_of(reply) for reply in (0, b"0.2", b"1e-05", b"inf")] == [0.0, 0.2, 0.00001, math.inf]
