"""The API service (port 3000): Lago's v1 API for the catalog, current usage, and the event endpoints."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import create_async_engine
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Route

from ingest.app import health
from ingest.intake import event_intake
from ingest.routes import EVENT_ROUTES
from meterline.http import EXCEPTION_HANDLERS
from meterline.lag import LagReader
from meterline.logs import RequestIdMiddleware
from meterline.metrics import PipelineCollector
from meterline.redis_clients import reconnecting_redis
from meterline.settings import Settings
from rater.api import customers, invoices, metrics, ops, plans, subscriptions, usage, webhooks
from rater.api.activation import activation_loop
from rater.monitor import PipelineMonitor

_live_monitor: list[PipelineMonitor] = []  # the process-wide Prometheus collector reads the newest one


def _register_pipeline_metrics(monitor: PipelineMonitor) -> None:
    first = not _live_monitor
    _live_monitor[:] = [monitor]
    if first:
        from prometheus_client import REGISTRY

        REGISTRY.register(PipelineCollector(lambda: _live_monitor[0].snapshot()))


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or Settings.from_env()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        engine = create_async_engine(settings.sqlalchemy_url, pool_size=10, max_overflow=10, pool_pre_ping=True)
        app.state.service = "api"
        app.state.settings = settings
        app.state.engine = engine
        app.state.redis = reconnecting_redis(settings.redis_url, timeout_s=5, connect_timeout_s=3)
        activator = asyncio.create_task(activation_loop(engine))  # pending subscriptions start on time
        app.state.monitor = PipelineMonitor(
            lambda: LagReader(settings.kafka_bootstrap, settings.consumer_group, settings.events_topic),
            app.state.redis,
        )
        _register_pipeline_metrics(app.state.monitor)
        watcher = asyncio.create_task(app.state.monitor.run())
        try:
            async with event_intake(app, settings, engine):  # API keys, rate limit, Kafka publisher
                yield
        finally:
            activator.cancel()
            watcher.cancel()
            app.state.monitor.close()
            await app.state.redis.aclose()
            await engine.dispose()

    routes = [Route("/health", health), *EVENT_ROUTES, *usage.ROUTES, *metrics.ROUTES, *plans.ROUTES,
              *customers.ROUTES, *subscriptions.ROUTES, *ops.ROUTES, *invoices.ROUTES, *webhooks.ROUTES]
    return Starlette(routes=routes, exception_handlers=EXCEPTION_HANDLERS,
        middleware=[Middleware(RequestIdMiddleware)], lifespan=lifespan)
