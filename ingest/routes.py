"""The event endpoints, served by the standalone ingest and mounted in the API as well.

POST order: authenticate (cached key) → read the body (size-limited) → validate every event →
rate limit (the organization's tokens, taken in Redis: ingest.ratelimit) → publish and wait for Kafka's
acknowledgement → 200. Anything failing before the publish stores nothing; a failed publish answers 503
and the client retries the whole request (the tokens the rate limit took stay taken).
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.routing import Route

from core.apikeys import authenticate
from core.http import (
    ApiError,
    JSONResponse,
    not_found,
    ok,
    parse_json,
    read_body,
    root_object,
    unavailable,
    validation_error,
)
from core.metrics import INGEST_EVENTS, INGEST_LATENCY, INGEST_REQUESTS, KAFKA_ACK_LATENCY
from ingest.archive import archived_event
from ingest.publisher import EventPublisher, PublishError
from ingest.ratelimit import SharedRateLimiter, retry_after_header
from schemas.events import (
    MAX_BATCH_EVENTS,
    NUL_IN_JSON,
    Event,
    EventValidationError,
    event_to_api,
    new_lago_ids,
    parse_event,
)


def too_many_requests(wait_s: float) -> ApiError:
    return ApiError(429, {"error": "Too Many Requests", "code": "too_many_requests"},
                    headers={"Retry-After": retry_after_header(wait_s)})


def _now_us() -> int:
    return time.time_ns() // 1000


async def _admit(request: Request, organization_id: str, events: int) -> None:
    limiter: SharedRateLimiter = request.app.state.rate_limiter
    wait_s = await limiter.admit(organization_id, events)
    if wait_s > 0:
        raise too_many_requests(wait_s)


async def _publish(request: Request, events: list[Event]) -> None:
    publisher: EventPublisher = request.app.state.publisher
    began = time.perf_counter()
    try:
        await publisher.publish(events)
    except PublishError as exc:
        raise unavailable(f"events were not stored, retry: {exc}") from exc
    KAFKA_ACK_LATENCY.observe(time.perf_counter() - began)
    INGEST_EVENTS.inc(len(events))


Handler = Callable[[Request], Awaitable[JSONResponse]]


def instrumented(endpoint: str) -> Callable[[Handler], Handler]:
    """Count each request by status and time it (Prometheus), whatever way it ends."""
    def decorate(handler: Handler) -> Handler:
        latency = INGEST_LATENCY.labels(endpoint)

        @functools.wraps(handler)
        async def wrapper(request: Request) -> JSONResponse:
            began = time.perf_counter()
            status = "500"  # a bug: the error handler answers 500
            try:
                response = await handler(request)
                status = str(response.status_code)
                return response
            except ApiError as exc:
                status = str(exc.status)
                raise
            except asyncio.CancelledError:  # the client went away; nothing was answered
                status = "cancelled"
                raise
            finally:
                latency.observe(time.perf_counter() - began)
                INGEST_REQUESTS.labels(endpoint, status).inc()
        return wrapper
    return decorate


@instrumented("event")
async def create_event(request: Request) -> JSONResponse:
    organization_id = await authenticate(request)
    body = await read_body(request, request.app.state.max_body_bytes)
    raw = root_object(parse_json(body), "event")
    try:
        event = parse_event(raw, organization_id, _now_us(), may_hold_nul=NUL_IN_JSON in body)
    except EventValidationError as exc:
        raise validation_error(exc.details) from exc
    await request.app.state.clock_times.stamp(request.app.state.engine, [raw], [event])
    await _admit(request, organization_id, 1)
    await _publish(request, [event])
    return ok({"event": event_to_api(event)})


def _parse_batch(raw: Any, organization_id: str, may_hold_nul: bool = True) -> list[Event]:
    """All or nothing: every invalid event is reported under its index in the array."""
    if not isinstance(raw, list):
        raise validation_error({"events": ["invalid_format"]})
    if not raw:
        raise validation_error({"events": ["no_events"]})
    if len(raw) > MAX_BATCH_EVENTS:
        raise validation_error({"events": ["too_many_events"]})
    now_us = _now_us()
    lago_ids = new_lago_ids(len(raw))
    events: list[Event] = []
    errors: dict[str, Any] = {}
    for index, item in enumerate(raw):
        try:
            events.append(parse_event(item, organization_id, now_us, lago_ids[index], may_hold_nul))
        except EventValidationError as exc:
            errors[str(index)] = exc.details
    if errors:
        raise validation_error(errors)
    return events


@instrumented("batch")
async def create_batch(request: Request) -> JSONResponse:
    organization_id = await authenticate(request)
    body = await read_body(request, request.app.state.max_body_bytes)
    raw = root_object(parse_json(body), "events")
    events = _parse_batch(raw, organization_id, may_hold_nul=NUL_IN_JSON in body)
    await request.app.state.clock_times.stamp(request.app.state.engine, raw, events)
    await _admit(request, organization_id, len(events))
    await _publish(request, events)
    return ok({"events": [event_to_api(event) for event in events]})


async def get_event(request: Request) -> JSONResponse:
    """The archived event (written by the aggregator, < 1 s after ingestion) of the caller's organization."""
    organization_id = await authenticate(request)
    transaction_id = request.path_params["transaction_id"]
    event = await archived_event(request.app.state.engine, organization_id, transaction_id)
    if event is None:
        raise not_found("event")
    return ok({"event": event})


EVENT_ROUTES = [
    Route("/api/v1/events", create_event, methods=["POST"]),
    Route("/api/v1/events/batch", create_batch, methods=["POST"]),
    Route("/api/v1/events/{transaction_id:path}", get_event, methods=["GET"]),
]
