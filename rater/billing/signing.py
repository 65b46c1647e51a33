"""Webhook signatures and retry schedule. Pure.

A receiver checks `X-Lago-Signature` = base64(HMAC-SHA256(endpoint's hmac_key, raw body)), the
algorithm named in `X-Lago-Signature-Algorithm: hmac`; `X-Lago-Unique-Key` is the same on every
retry of one delivery, so a receiver can drop repeats.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from datetime import timedelta

MAX_ATTEMPTS = 10
MAX_BACKOFF_S = 3600


def new_hmac_key() -> str:
    return secrets.token_hex(32)


def signature(hmac_key: str, body: bytes) -> str:
    return base64.b64encode(hmac.new(hmac_key.encode(), body, hashlib.sha256).digest()).decode()


def headers(hmac_key: str, body: bytes, unique_key: str) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "X-Lago-Signature": signature(hmac_key, body),
        "X-Lago-Signature-Algorithm": "hmac",
        "X-Lago-Unique-Key": unique_key,
    }


def backoff(failed_attempts: int) -> timedelta:
    """Wait before the next try after `failed_attempts` failures: 1 s, 2 s, 4 s, ... capped at an hour."""
    return timedelta(seconds=min(2 ** max(failed_attempts - 1, 0), MAX_BACKOFF_S))


def gives_up(failed_attempts: int) -> bool:
    return failed_attempts >= MAX_ATTEMPTS
