"""The event routes' part of the documents: served by the ingest (:3001) and mounted in the API (:3000).

Written from `schemas.events` (what `parse_event` accepts, what `event_to_api` and the archive answer).
"""

from __future__ import annotations

from typing import Any

from core.openapi.document import operation, path_parameter
from core.openapi.schema import (
    NO_NUL,
    Schema,
    answer,
    array,
    closed,
    moment,
    nullable,
    number,
    open_object,
    ref,
    text,
    uuid,
    wrapped,
)
from schemas.events import MAX_AMOUNT_CHARS, MAX_BATCH_EVENTS, MAX_IDENTIFIER_CHARS, MAX_TIMESTAMP_S

_IDENTIFIER = {"anyOf": [text(min_length=1, max_length=MAX_IDENTIFIER_CHARS, pattern=NO_NUL),
                         {"type": "integer", "description": "taken as its decimal string"}]}

EVENT_INPUT = open_object({
    "transaction_id": {**_IDENTIFIER, "description": "Unique per subscription: a repeated one is answered 200 and "
                                                    "counted once (the first copy wins)."},
    "external_subscription_id": {**_IDENTIFIER, "description": "The subscription the event is billed to."},
    "code": {**_IDENTIFIER, "description": "The billable metric's code."},
    "timestamp": {"description": f"Unix seconds (an integer, a number or a numeric string), from 0 to "
                                 f"{MAX_TIMESTAMP_S}; now when absent.",
                  "anyOf": [{"type": "integer", "minimum": 0, "maximum": MAX_TIMESTAMP_S},
                            {"type": "number", "minimum": 0, "maximum": MAX_TIMESTAMP_S},
                            text("a decimal number"), {"type": "null"}]},
    "properties": {"description": "The values the metric aggregates (no U+0000 in any string).",
                   "type": ["object", "null"]},
    "precise_total_amount_cents": {"description": f"A decimal number (or numeric string) of at most "
                                                  f"{MAX_AMOUNT_CHARS} digits in plain notation.",
                                   "anyOf": [text(), number(), {"type": "null"}]},
}, "A usage event. Events that cannot be billed (unknown subscription or metric, a closed period, ...) are "
   "accepted here and routed to the `events.rejected` topic with a reason.",
    required=("transaction_id", "external_subscription_id", "code"))

EVENT_OBJECT = closed({
    "lago_id": uuid(),
    "transaction_id": text(),
    "lago_customer_id": nullable(uuid("null when answering a POST: the event is not matched to a customer at the "
                                      "edge")),
    "code": text(),
    "timestamp": moment(),
    "properties": {"type": "object"},
    "lago_subscription_id": nullable(uuid("null when answering a POST, or when no subscription has this "
                                          "external id")),
    "external_subscription_id": text(),
    "precise_total_amount_cents": nullable(text("In plain decimal notation.")),
    "created_at": moment("When meterline received the event."),
})

EVENT_SCHEMAS: dict[str, Schema] = {"EventInput": EVENT_INPUT, "Event": EVENT_OBJECT}
# A monthly tracked user of Segment's pricing (the examples of the API's document make that catalog).
EVENT_EXAMPLE = {"transaction_id": "tx-0001", "code": "monthly_tracked_users", "external_subscription_id": "sub-acme",
                 "timestamp": 1767225600, "properties": {"user_id": "u-1"}}

_ACCEPTED = ("200 means the events are durably in Kafka (acknowledged by every in-sync replica); retrying is "
             "always safe. 503 means nothing was stored: retry the whole request.")

EVENT_PATHS: dict[str, Any] = {
    "/api/v1/events": {"post": operation(
        "createEvent", "Send a usage event", "events", answer("event", ref("Event")), (422, 429, 503),
        description=_ACCEPTED, body=wrapped("event", ref("EventInput")), example={"event": EVENT_EXAMPLE})},
    "/api/v1/events/batch": {"post": operation(
        "createBatchEvents", "Send up to 100 usage events at once", "events",
        answer("events", array(ref("Event"))), (422, 429, 503),
        description=f"All or nothing: one invalid event refuses the request, each event's errors under its index. "
                    f"{_ACCEPTED}",
        body=wrapped("events", array(ref("EventInput"), min_items=1, max_items=MAX_BATCH_EVENTS)),
        example={"events": [EVENT_EXAMPLE, {**EVENT_EXAMPLE, "transaction_id": "tx-0002",
                                             "properties": {"user_id": "u-2"}}]})},
    "/api/v1/events/{transaction_id}": {"get": operation(
        "findEvent", "Find an archived event by transaction id", "events", answer("event", ref("Event")), (404,),
        description="Events are archived by the aggregator within a second of their 200; before that, 404 "
                    "(`event_not_found`).",
        parameters=[path_parameter("transaction_id", "The event's transaction_id.", "tx-0001")])},
}
