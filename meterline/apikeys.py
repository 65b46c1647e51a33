"""API keys: generated once, stored as SHA-256 hashes, resolved to an organization with a short cache.

The cache keeps the ingest's hot path off PostgreSQL; a revoked or expired key stops working
within `ttl_s` (default 10 s).
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import Request

from meterline.http import bearer_token, unauthorized
from rater.tables import api_keys


def new_api_key() -> str:
    return f"ml_{secrets.token_urlsafe(32)}"


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass
class ApiKeyResolver:
    engine: AsyncEngine
    ttl_s: float = 10.0

    def __post_init__(self) -> None:
        self._cache: dict[str, tuple[str | None, float]] = {}

    async def organization_of(self, key: str) -> str | None:
        digest = key_hash(key)
        now = time.monotonic()
        cached = self._cache.get(digest)
        if cached is not None and cached[1] > now:
            return cached[0]
        query = select(api_keys.c.organization_id).where(
            api_keys.c.key_sha256 == digest,
            or_(api_keys.c.expires_at.is_(None), api_keys.c.expires_at > func.now()),
        )
        async with self.engine.connect() as conn:
            organization_id = (await conn.execute(query)).scalar_one_or_none()
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[digest] = (organization_id, now + self.ttl_s)
        return organization_id



async def authenticate(request: Request) -> str:
    """The organization of the request's Bearer key; 401 in Lago's format otherwise."""
    resolver: ApiKeyResolver = request.app.state.api_keys
    organization_id = await resolver.organization_of(bearer_token(request))
    if organization_id is None:
        raise unauthorized()
    return organization_id
