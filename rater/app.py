"""The API service (port 3000): Lago's v1 API for the catalog, current usage, invoices and webhooks.

Lago's clients send events to the API's address too: `meterline api` (meterline/cli.py) passes the
ingest's event routes and their set-up (`Intake`) in, so the rater serves them without importing
the ingest.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import BaseRoute

from core.apikeys import attach
from core.clients import database, reconnecting_redis
from core.http import EXCEPTION_HANDLERS, RefuseNulMiddleware
from core.lag import LagReader
from core.logs import RequestIdMiddleware
from core.metrics import PipelineCollector
from core.settings import Settings
from rater.activation import activation_loop
from rater.api import (
    alerts,
    coupons,
    credit_notes,
    customers,
    invoices,
    metrics,
    openapi,
    ops,
    plans,
    subscriptions,
    taxes,
    test_clocks,
    usage,
    webhooks,
)
from rater.monitor import PipelineMonitor

Intake = Callable[[Starlette, Settings], AbstractAsyncContextManager[None]]
_live_monitor: list[PipelineMonitor] = []  # the process-wide Prometheus collector reads the newest one


def _register_pipeline_metrics(monitor: PipelineMonitor) -> None:
    first = not _live_monitor
    _live_monitor[:] = [monitor]
    if first:
        from prometheus_client import REGISTRY

        REGISTRY.register(PipelineCollector(lambda: _live_monitor[0].snapshot()))


def create_app(settings: Settings, event_routes: Sequence[BaseRoute] = (), event_intake: Intake | None = None
               ) -> Starlette:
    """The API; `event_routes` are served beside it, `event_intake` (when given) sets up what they need."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        engine = database(settings, pool_size=10)
        app.state.service = "api"
        app.state.settings = settings
        attach(app.state, settings, engine)
        app.state.redis = reconnecting_redis(settings.redis_url, timeout_s=5, connect_timeout_s=3)
        activator = asyncio.create_task(activation_loop(engine))  # pending subscriptions start on time
        app.state.monitor = PipelineMonitor(
            lambda: LagReader(settings.kafka_bootstrap, settings.consumer_group, settings.events_topic),
            app.state.redis,
            alerts_reader_factory=lambda: LagReader(settings.kafka_bootstrap, settings.alerts_group,
                                                    settings.touched_topic),
        )
        _register_pipeline_metrics(app.state.monitor)
        watcher = asyncio.create_task(app.state.monitor.run())
        try:
            async with event_intake(app, settings) if event_intake else nullcontext():
                yield
        finally:
            activator.cancel()
            watcher.cancel()
            app.state.monitor.close()
            await app.state.redis.aclose()
            await engine.dispose()

    # usage's /customers/{id}/current_usage before customers' /customers/{id:path}, which would take it (and
    # /subscriptions/{id}/lifetime_usage, like the alerts', before /subscriptions/{id:path})
    # before the customers' `{external_id:path}`: /customers/{id}/applied_coupons is the coupons'
    routes = [*event_routes, *usage.ROUTES, *alerts.ROUTES, *metrics.ROUTES, *plans.ROUTES, *coupons.ROUTES,
              *customers.ROUTES, *subscriptions.ROUTES, *ops.ROUTES, *invoices.ROUTES, *credit_notes.ROUTES,
              *webhooks.ROUTES, *taxes.ROUTES, *test_clocks.ROUTES,
              *openapi.ROUTES]
    return Starlette(routes=routes, exception_handlers=EXCEPTION_HANDLERS,
        middleware=[Middleware(RequestIdMiddleware), Middleware(RefuseNulMiddleware)], lifespan=lifespan)
