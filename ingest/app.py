"""The standalone ingest (port 3001): event intake only, stateless, run as many replicas as needed."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import create_async_engine
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.routing import Route

from ingest.intake import event_intake
from ingest.routes import EVENT_ROUTES
from meterline.http import EXCEPTION_HANDLERS, JSONResponse, ok
from meterline.logs import RequestIdMiddleware
from meterline.ready import OPS_ROUTES
from meterline.settings import Settings


async def health(request: Request) -> JSONResponse:
    return ok({"status": "ok", "service": request.app.state.service})


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or Settings.from_env()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        engine = create_async_engine(settings.sqlalchemy_url, pool_size=5, pool_pre_ping=True)
        app.state.service = "ingest"
        # Each 100-event batch allocates thousands of short-lived objects; with the default gen-0
        # threshold (700) the cyclic GC ran several times per request and rescanned the long-lived
        # heap. Start-up objects are frozen out of its view and young collections made rarer.
        gc.collect()
        gc.freeze()
        gc.set_threshold(50_000, 20, 20)
        app.state.settings = settings
        try:
            async with event_intake(app, settings, engine):
                yield
        finally:
            await engine.dispose()

    return Starlette(
        routes=[Route("/health", health), *OPS_ROUTES, *EVENT_ROUTES],
        exception_handlers=EXCEPTION_HANDLERS,
        middleware=[Middleware(RequestIdMiddleware)],
        lifespan=lifespan,
    )


def app_from_env() -> Starlette:
    """The factory uvicorn's worker processes call (`meterline ingest` with METERLINE_INGEST_WORKERS > 1)."""
    from meterline.cli import load_settings
    from meterline.logs import configure

    configure("ingest")
    return create_app(load_settings())
