"""Webhook signatures and retry schedule (rater.billing.signing). Pure."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import timedelta

from rater.billing.signing import (
    MAX_ATTEMPTS,
    backoff,
    document_link,
    document_signature,
    gives_up,
    headers,
    link_holds,
    new_hmac_key,
    signature,
)


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


def test_a_document_link_holds_until_it_expires_and_only_as_signed() -> None:
    link = document_link("https://billing.example.com", "k" * 64, "inv-1", now_s=1_000, ttl_s=60)
    assert link == ("https://billing.example.com/api/v1/invoices/inv-1/document.pdf?expires=1060"
                    f"&signature={document_signature('k' * 64, 'inv-1', 1060)}")
    good = document_signature("k" * 64, "inv-1", 1060)
    assert good == hmac.new(b"k" * 64, b"invoice-document:inv-1:1060", hashlib.sha256).hexdigest()
    assert link_holds("k" * 64, "inv-1", "1060", good, now_s=1_059.9)
    assert not link_holds("k" * 64, "inv-1", "1060", good, now_s=1_060)  # expired
    assert not link_holds("k" * 64, "inv-1", "1061", good, now_s=1_000)  # expiry pushed back
    assert not link_holds("k" * 64, "inv-2", "1060", good, now_s=1_000)  # another invoice
    assert not link_holds("j" * 64, "inv-1", "1060", good, now_s=1_000)  # another organization's key
    for expires, given in (("", good), ("1e9", good), ("١٠٦٠", good), ("9" * 13, good), ("1060", "é" * 64),
                           ("1060", "")):
        assert not link_holds("k" * 64, "inv-1", expires, given, now_s=1_000), (expires, given)
