"""`GET /health`, `GET /ready` (are Kafka, Redis and PostgreSQL reachable from this process?) and `GET /metrics`.

`/health` says the process runs; `/ready` says it can do its work. Each check has a short timeout so
the endpoint answers within ~3 s even when a service hangs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from confluent_kafka.admin import AdminClient
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from sqlalchemy import text
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from core.clients import AnyRedis, reconnecting_redis
from core.http import JSONResponse, ok

CHECK_TIMEOUT_S = 2.5


def _admin(request: Request) -> AdminClient:
    admin = getattr(request.app.state, "ready_admin", None)
    if admin is None:
        settings = request.app.state.settings
        admin = request.app.state.ready_admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap,
                                                             "log_level": 0})
    return admin


async def _kafka(request: Request) -> None:
    topic = request.app.state.settings.events_topic
    metadata = await asyncio.to_thread(_admin(request).list_topics, topic, 2.0)
    if not metadata.brokers or topic not in metadata.topics or metadata.topics[topic].error is not None:
        raise ConnectionError(f"no broker serves topic {topic!r}")


async def _redis(request: Request) -> None:
    state = request.app.state
    client: AnyRedis | None = getattr(state, "redis", None) or getattr(state, "ready_redis", None)
    # a process without `state.redis` (the ingest, whose rate limiter's client gives up after 0.5 s) makes one, once
    if client is None:
        client = state.ready_redis = reconnecting_redis(state.settings.redis_url, timeout_s=2, connect_timeout_s=2)
    await client.ping()


async def _postgres(request: Request) -> None:
    async with request.app.state.engine.connect() as conn:
        await conn.execute(text("SELECT 1"))


CHECKS: dict[str, Callable[[Request], Awaitable[None]]] = {"kafka": _kafka, "redis": _redis, "postgres": _postgres}


async def _run(check: Callable[[Request], Awaitable[None]], request: Request) -> str:
    try:
        await asyncio.wait_for(check(request), CHECK_TIMEOUT_S)
    except Exception as exc:  # every failure means "not ready"; the body says which and why
        return f"unreachable: {type(exc).__name__}: {exc}".strip()
    return "ok"


async def ready(request: Request) -> JSONResponse:
    results = await asyncio.gather(*(_run(check, request) for check in CHECKS.values()))
    checks = dict(zip(CHECKS, results, strict=True))
    healthy = all(result == "ok" for result in results)
    return JSONResponse({"status": "ready" if healthy else "not_ready", "checks": checks},
                        status_code=200 if healthy else 503)


async def health(request: Request) -> JSONResponse:
    return ok({"status": "ok", "service": request.app.state.service})


async def metrics(request: Request) -> Response:
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)


OPS_ROUTES = [Route("/health", health, methods=["GET"]), Route("/ready", ready, methods=["GET"]),
              Route("/metrics", metrics, methods=["GET"])]
