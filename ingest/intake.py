"""What the event endpoints need on `app.state` beside the API keys, set up and torn down in one place.

Used by the standalone ingest and by the API (which mounts the same routes, see meterline/cli.py),
so both answer the same way: the per-organization rate limit (one bucket per organization in Redis, shared
by all of them: ingest.ratelimit), the Kafka publisher, and the test clocks' times (ingest.clocks).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette

from core.clients import reconnecting_redis
from core.settings import Settings
from ingest.clocks import ClockTimes
from ingest.publisher import EventPublisher
from ingest.ratelimit import REDIS_DEADLINE_S, SharedRateLimiter


@asynccontextmanager
async def event_intake(app: Starlette, settings: Settings) -> AsyncIterator[None]:
    # its own client, with short timeouts: a rate-limit answer later than the deadline is not waited for
    redis = reconnecting_redis(settings.redis_url, timeout_s=REDIS_DEADLINE_S, connect_timeout_s=REDIS_DEADLINE_S)
    app.state.rate_limiter = SharedRateLimiter(redis, settings.ingest_rate_limit_events_per_s,
                                               settings.ingest_rate_limit_burst)
    app.state.publisher = EventPublisher(settings.kafka_bootstrap, settings.events_topic,
                                         settings.publish_timeout_s)
    app.state.clock_times = ClockTimes()
    reading = asyncio.create_task(app.state.clock_times.run(app.state.engine))
    try:
        yield
    finally:
        reading.cancel()
        # Runs after the server stopped taking requests and the in-flight ones finished (uvicorn's
        # graceful shutdown): whatever librdkafka still holds is flushed before the process exits.
        app.state.publisher.close()
        await redis.aclose()
