"""The standalone ingest (port 3001): event intake only, stateless, run as many replicas as needed."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.middleware import Middleware

from core.apikeys import attach
from core.clients import database
from core.http import EXCEPTION_HANDLERS, RefuseNulMiddleware
from core.logs import RequestIdMiddleware
from core.openapi.document import openapi_route
from core.ready import OPS_ROUTES
from core.settings import Settings
from ingest.intake import event_intake
from ingest.openapi import ingest_document
from ingest.routes import EVENT_ROUTES


def create_app(settings: Settings) -> Starlette:

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        engine = database(settings, pool_size=5)
        app.state.service = "ingest"
        # Each 100-event batch allocates thousands of short-lived objects; with the default gen-0
        # threshold (700) the cyclic GC ran several times per request and rescanned the long-lived
        # heap. Start-up objects are frozen out of its view and young collections made rarer.
        gc.collect()
        gc.freeze()
        gc.set_threshold(50_000, 20, 20)
        app.state.settings = settings
        attach(app.state, settings, engine)
        try:
            async with event_intake(app, settings):
                yield
        finally:
            await engine.dispose()

    return Starlette(
        routes=[*OPS_ROUTES, *EVENT_ROUTES, openapi_route(ingest_document())],
        exception_handlers=EXCEPTION_HANDLERS,
        middleware=[Middleware(RequestIdMiddleware), Middleware(RefuseNulMiddleware)],
        lifespan=lifespan,
    )


def app_from_env() -> Starlette:
    """The factory uvicorn's worker processes call (`meterline ingest` with METERLINE_INGEST_WORKERS > 1)."""
    from core.logs import configure
    from core.settings import load_settings

    configure("ingest")
    return create_app(load_settings())
