"""What the event endpoints need on `app.state`, set up and torn down in one place.

Used by the standalone ingest and by the API (which mounts the same routes), so both answer the
same way: cached API keys, the per-organization rate limit, the Kafka publisher, the archive.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette

from ingest.publisher import EventPublisher
from ingest.ratelimit import RateLimiter
from meterline.apikeys import ApiKeyResolver
from meterline.settings import Settings


@asynccontextmanager
async def event_intake(app: Starlette, settings: Settings, engine: AsyncEngine) -> AsyncIterator[None]:
    app.state.engine = engine
    app.state.max_body_bytes = settings.max_body_bytes
    app.state.api_keys = ApiKeyResolver(engine, ttl_s=settings.api_key_cache_ttl_s)
    app.state.rate_limiter = RateLimiter(settings.ingest_rate_limit_events_per_s,
                                         settings.ingest_rate_limit_burst)
    app.state.publisher = EventPublisher(settings.kafka_bootstrap, settings.events_topic,
                                         settings.publish_timeout_s)
    try:
        yield
    finally:
        # Runs after the server stopped taking requests and the in-flight ones finished (uvicorn's
        # graceful shutdown): whatever librdkafka still holds is flushed before the process exits.
        app.state.publisher.close()
