"""API keys: generated once, stored as SHA-256 hashes, resolved to an organization with a short cache.

The cache keeps the ingest's hot path off PostgreSQL: a key is looked up at most once per `ttl_s`
per process, and concurrent requests with the same uncached key share one query. A revoked or
expired key therefore stops working within `ttl_s` (Settings keep it ≤ 30 s). When PostgreSQL
does not answer, a key seen within `stale_s` keeps working (the ingest stays up through a short
database outage); any other key gets a 503, never a 500.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
import time
from dataclasses import dataclass, field

from sqlalchemy import func, or_, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.datastructures import State
from starlette.requests import Request

from core.db.tables import api_keys
from core.http import bearer_token, unauthorized, unavailable
from core.settings import Settings

log = logging.getLogger("meterline.apikeys")


def new_api_key() -> str:
    return f"ml_{secrets.token_urlsafe(32)}"


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass
class _Entry:
    organization_id: str | None
    fresh_until: float
    stale_until: float


@dataclass
class ApiKeyResolver:
    engine: AsyncEngine
    ttl_s: float = 10.0
    stale_s: float = 30.0
    _cache: dict[str, _Entry] = field(default_factory=dict)
    _pending: dict[str, asyncio.Future[str | None]] = field(default_factory=dict)

    async def organization_of(self, key: str) -> str | None:
        """The organization owning `key`, None for an unknown, revoked or expired key."""
        entry = self._cache.get(key)  # keyed by the key itself: no hashing on the hot path
        now = time.monotonic()
        if entry is not None and entry.fresh_until > now:
            return entry.organization_id
        pending = self._pending.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        self._pending[key] = future
        try:
            organization_id = await self._lookup(key, entry, now)
            future.set_result(organization_id)
            return organization_id
        except Exception as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters get it, nobody logs "never retrieved"
            raise
        except BaseException:
            future.cancel()
            raise
        finally:
            del self._pending[key]

    async def _lookup(self, key: str, entry: _Entry | None, now: float) -> str | None:
        query = select(api_keys.c.organization_id).where(
            api_keys.c.key_sha256 == key_hash(key),
            or_(api_keys.c.expires_at.is_(None), api_keys.c.expires_at > func.now()),
        )
        try:
            async with self.engine.connect() as conn:
                organization_id = (await conn.execute(query)).scalar_one_or_none()
        except (SQLAlchemyError, OSError) as exc:
            if entry is not None and entry.organization_id is not None and entry.stale_until > now:
                log.warning("PostgreSQL unavailable, using a cached API key: %s", exc)
                return entry.organization_id
            raise unavailable("API keys cannot be checked right now, retry") from exc
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[key] = _Entry(organization_id, now + self.ttl_s, now + self.stale_s)
        return organization_id


def attach(state: State, settings: Settings, engine: AsyncEngine) -> None:
    """What every authenticated handler finds on `app.state`: the database, the request body limit
    and the cached API key resolver (set up once in each HTTP process's lifespan)."""
    state.engine = engine
    state.max_body_bytes = settings.max_body_bytes
    state.api_keys = ApiKeyResolver(engine, ttl_s=settings.api_key_cache_ttl_s)


async def authenticate(request: Request) -> str:
    """The organization of the request's Bearer key; 401 in Lago's format otherwise."""
    resolver: ApiKeyResolver = request.app.state.api_keys
    organization_id = await resolver.organization_of(bearer_token(request))
    if organization_id is None:
        raise unauthorized()
    return organization_id
