"""Webhook signatures and retry schedule (rater.billing.signing). Pure."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import timedelta

from rater.billing.signing import MAX_ATTEMPTS, backoff, gives_up, headers, new_hmac_key, signature


def test_signature_is_base64_hmac_sha256_of_the_raw_body() -> None:
    body = b'{"webhook_type":"invoice.created"}'
    expected = base64.b64encode(hmac.new(b"secret", body, hashlib.sha256).digest()).decode()
    assert signature("secret", body) == expected
    assert signature("secret", body + b" ") != expected
    sent = headers("secret", body, "delivery-1")
    assert sent == {"Content-Type": "application/json", "X-Lago-Signature": expected,
                    "X-Lago-Signature-Algorithm": "hmac", "X-Lago-Unique-Key": "delivery-1"}


def test_keys_are_random_and_long() -> None:
    first, second = new_hmac_key(), new_hmac_key()
    assert first != second and len(first) == 64


def test_backoff_doubles_up_to_an_hour_and_gives_up_after_the_last_attempt() -> None:
    assert [backoff(n) for n in (1, 2, 3, 4)] == [timedelta(seconds=s) for s in (1, 2, 4, 8)]
    assert backoff(30) == timedelta(hours=1)
    assert not gives_up(MAX_ATTEMPTS - 1)
    assert gives_up(MAX_ATTEMPTS)
