"""The event endpoints, served by the standalone ingest and mounted in the API as well."""

from __future__ import annotations

import time
from typing import Any

from starlette.requests import Request
from starlette.routing import Route

from ingest.publisher import EventPublisher, PublishError
from meterline.apikeys import authenticate
from meterline.http import (
    JSONResponse,
    bad_request,
    ok,
    read_json,
    root_object,
    unavailable,
    validation_error,
)
from schemas.events import MAX_BATCH_EVENTS, Event, EventValidationError, event_to_api, parse_event


def _now_us() -> int:
    return time.time_ns() // 1000


async def _publish(request: Request, events: list[Event]) -> None:
    publisher: EventPublisher = request.app.state.publisher
    try:
        await publisher.publish(events)
    except PublishError as exc:
        raise unavailable(f"events were not stored, retry: {exc}") from exc


async def create_event(request: Request) -> JSONResponse:
    organization_id = await authenticate(request)
    raw = root_object(await read_json(request, request.app.state.max_body_bytes), "event")
    try:
        event = parse_event(raw, organization_id, _now_us())
    except EventValidationError as exc:
        raise validation_error(exc.details) from exc
    await _publish(request, [event])
    return ok({"event": event_to_api(event)})


async def create_batch(request: Request) -> JSONResponse:
    organization_id = await authenticate(request)
    raw = root_object(await read_json(request, request.app.state.max_body_bytes), "events")
    if not isinstance(raw, list):
        raise bad_request("events must be an array")
    if not raw:
        raise validation_error({"events": ["no_events"]})
    if len(raw) > MAX_BATCH_EVENTS:
        raise validation_error({"events": ["too_many_events"]})
    now_us = _now_us()
    events: list[Event] = []
    errors: dict[str, Any] = {}
    for index, item in enumerate(raw):
        try:
            events.append(parse_event(item, organization_id, now_us))
        except EventValidationError as exc:
            errors[str(index)] = exc.details
    if errors:
        raise validation_error(errors)
    await _publish(request, events)
    return ok({"events": [event_to_api(event) for event in events]})


EVENT_ROUTES = [
    Route("/api/v1/events", create_event, methods=["POST"]),
    Route("/api/v1/events/batch", create_batch, methods=["POST"]),
]
