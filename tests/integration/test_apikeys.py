"""The API key cache against the real PostgreSQL: one query per key per TTL, revocation within the TTL."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from sqlalchemy import create_engine, event, func, update
from sqlalchemy.ext.asyncio import create_async_engine

from core.apikeys import ApiKeyResolver, key_hash
from core.db.tables import api_keys
from core.http import ApiError
from meterline.orgs import ensure_organization
from tests.conftest import Services


def revoke(services: Services, key: str) -> None:
    engine = create_engine(services.sqlalchemy_url)
    with engine.begin() as conn:
        conn.execute(update(api_keys).where(api_keys.c.key_sha256 == key_hash(key)).values(expires_at=func.now()))
    engine.dispose()


def test_one_query_per_key_per_ttl_even_under_concurrency(services: Services) -> None:
    organization_id, key = ensure_organization(services.sqlalchemy_url, f"test-keys-{uuid.uuid4().hex[:10]}")
    assert key is not None

    async def resolve() -> tuple[list[str | None], int]:
        engine = create_async_engine(services.sqlalchemy_url)
        queries = []
        event.listen(engine.sync_engine, "before_cursor_execute", lambda *args: queries.append(args[2]))
        resolver = ApiKeyResolver(engine, ttl_s=10)
        try:
            found = list(await asyncio.gather(*(resolver.organization_of(key) for _ in range(50))))
            found += [await resolver.organization_of(key) for _ in range(200)]
            found.append(await resolver.organization_of("ml_unknown"))
            found.append(await resolver.organization_of("ml_unknown"))
            return found, len([q for q in queries if "api_keys" in q])
        finally:
            await engine.dispose()

    found, queries = asyncio.run(resolve())
    assert found == [organization_id] * 250 + [None, None]
    assert queries == 2  # the key once (50 concurrent misses share it), the unknown key once


def test_revoked_key_stops_working_when_its_cache_entry_expires(services: Services) -> None:
    organization_id, key = ensure_organization(services.sqlalchemy_url, f"test-keys-{uuid.uuid4().hex[:10]}")
    assert key is not None

    async def scenario() -> list[str | None]:
        engine = create_async_engine(services.sqlalchemy_url)
        resolver = ApiKeyResolver(engine, ttl_s=1.0)
        try:
            seen = [await resolver.organization_of(key)]
            revoke(services, key)
            seen.append(await resolver.organization_of(key))  # still cached: the hot path did not ask
            await asyncio.sleep(1.1)
            seen.append(await resolver.organization_of(key))
            return seen
        finally:
            await engine.dispose()

    assert asyncio.run(scenario()) == [organization_id, organization_id, None]


def test_database_down_keeps_recently_seen_keys_and_refuses_others_with_503(services: Services) -> None:
    """PostgreSQL unreachable: a key seen within stale_s still works, an unseen one gets 503, never a 500."""
    organization_id, key = ensure_organization(services.sqlalchemy_url, f"test-keys-{uuid.uuid4().hex[:10]}")
    assert key is not None

    async def scenario() -> tuple[str | None, int]:
        reachable = create_async_engine(services.sqlalchemy_url)
        unreachable = create_async_engine("postgresql+psycopg://nobody:nothing@127.0.0.1:1/none",
                                          connect_args={"connect_timeout": 2})
        resolver = ApiKeyResolver(reachable, ttl_s=0.2, stale_s=30)
        try:
            assert await resolver.organization_of(key) == organization_id
            resolver.engine = unreachable  # the database goes away
            await asyncio.sleep(0.3)  # the entry is no longer fresh, only stale
            kept = await resolver.organization_of(key)
            with pytest.raises(ApiError) as refused:
                await resolver.organization_of("ml_never_seen")
            return kept, refused.value.status
        finally:
            await reachable.dispose()
            await unreachable.dispose()

    assert asyncio.run(scenario()) == (organization_id, 503)
