"""Webhook signatures and retry schedule, and the signed links to invoice documents. Pure.

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


def document_signature(document_key: str, invoice_id: str, expires: int) -> str:
    """The signature of a link to an invoice's document valid until `expires` (Unix seconds): HMAC-SHA256 with
    the organization's document key, hex."""
    return hmac.new(document_key.encode(), f"invoice-document:{invoice_id}:{expires}".encode(),
                    hashlib.sha256).hexdigest()


def document_link(public_url: str, document_key: str, invoice_id: str, now_s: float, ttl_s: int) -> str:
    """A link to an invoice's PDF that works without an API key until `ttl_s` after `now_s`."""
    expires = int(now_s) + ttl_s
    return (f"{public_url}/api/v1/invoices/{invoice_id}/document.pdf?expires={expires}"
            f"&signature={document_signature(document_key, invoice_id, expires)}")


def link_holds(document_key: str, invoice_id: str, expires: str, signature_given: str, now_s: float) -> bool:
    """A link's signature is the one its invoice and expiry make, and it has not expired."""
    if not (expires.isascii() and expires.isdigit()) or len(expires) > 12 or int(expires) <= now_s \
            or not signature_given.isascii():
        return False
    return hmac.compare_digest(document_signature(document_key, invoice_id, int(expires)), signature_given)
