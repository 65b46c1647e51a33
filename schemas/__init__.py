"""Message schemas shared by the ingest, the aggregator and the tests: one definition per message."""

from schemas.events import (
    MAX_BATCH_EVENTS,
    Event,
    EventValidationError,
    event_from_message,
    event_to_message,
    parse_event,
)

__all__ = [
    "MAX_BATCH_EVENTS",
    "Event",
    "EventValidationError",
    "event_from_message",
    "event_to_message",
    "parse_event",
]
