"""The usage event: what a client sends, what travels on the `events` topic, what is archived.

`parse_event` turns one client-supplied JSON object into an `Event` or raises
`EventValidationError` carrying Lago-style `error_details` (field -> [code]).
`event_to_message` / `event_from_message` are the Kafka encoding, described by
`schemas/event.schema.json` and exemplified by `schemas/examples/*.json`.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson

MAX_BATCH_EVENTS = 100
MESSAGE_VERSION = 1
REQUIRED_FIELDS = ("transaction_id", "code", "external_subscription_id")


class EventValidationError(ValueError):
    def __init__(self, details: dict[str, list[str]]):
        super().__init__(f"invalid event: {details}")
        self.details = details


@dataclass(frozen=True, slots=True)
class Event:
    """A validated usage event, as accepted at the edge. Times are integer microseconds since the epoch."""

    lago_id: str
    organization_id: str
    transaction_id: str
    code: str
    external_subscription_id: str
    timestamp_us: int
    received_at_us: int
    properties: dict[str, Any] = field(default_factory=dict)
    precise_total_amount_cents: str | None = None

    @property
    def partition_key(self) -> bytes:
        return f"{self.organization_id}:{self.external_subscription_id}".encode()

    @property
    def timestamp(self) -> datetime:
        return datetime.fromtimestamp(self.timestamp_us / 1_000_000, tz=UTC)


def _identifier(raw: dict[str, Any], name: str, errors: dict[str, list[str]]) -> str:
    value = raw.get(name)
    if value is None or value == "":
        errors[name] = ["value_is_mandatory"]
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int):
        errors[name] = ["invalid_format"]
        return ""
    return str(value)


def _timestamp_us(value: Any, now_us: int) -> int | None:
    """Unix seconds as int, float or numeric string; None (absent) means now. Returns None when invalid."""
    if value is None:
        return now_us
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        seconds = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    elif isinstance(value, str):
        try:
            seconds = Decimal(value.strip())
        except InvalidOperation:
            return None
    else:
        return None
    if not seconds.is_finite() or seconds < 0 or seconds > Decimal(253402300799):  # up to year 9999
        return None
    return int(seconds * 1_000_000)


def _amount(value: Any) -> str | None | bool:
    """`precise_total_amount_cents`: a decimal number or string; returns False when invalid."""
    if value is None:
        return None
    if isinstance(value, bool):
        return False
    if isinstance(value, float) and not math.isfinite(value):
        return False
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        return False
    return str(number) if number.is_finite() else False


def parse_event(raw: Any, organization_id: str, now_us: int, lago_id: str | None = None) -> Event:
    if not isinstance(raw, dict):
        raise EventValidationError({"event": ["invalid_format"]})
    errors: dict[str, list[str]] = {}
    ids = {name: _identifier(raw, name, errors) for name in REQUIRED_FIELDS}
    timestamp_us = _timestamp_us(raw.get("timestamp"), now_us)
    if timestamp_us is None:
        errors["timestamp"] = ["invalid_format"]
    properties = raw.get("properties")
    if properties is None:
        properties = {}
    elif not isinstance(properties, dict):
        errors["properties"] = ["invalid_format"]
    amount = _amount(raw.get("precise_total_amount_cents"))
    if amount is False:
        errors["precise_total_amount_cents"] = ["invalid_format"]
    if errors:
        raise EventValidationError(errors)
    return Event(
        lago_id=lago_id or str(uuid.uuid4()),
        organization_id=organization_id,
        transaction_id=ids["transaction_id"],
        code=ids["code"],
        external_subscription_id=ids["external_subscription_id"],
        timestamp_us=timestamp_us or now_us,
        received_at_us=now_us,
        properties=properties,
        precise_total_amount_cents=amount if isinstance(amount, str) else None,
    )


def event_to_message(event: Event) -> bytes:
    return orjson.dumps(
        {
            "v": MESSAGE_VERSION,
            "lago_id": event.lago_id,
            "organization_id": event.organization_id,
            "transaction_id": event.transaction_id,
            "code": event.code,
            "external_subscription_id": event.external_subscription_id,
            "timestamp_us": event.timestamp_us,
            "received_at_us": event.received_at_us,
            "properties": event.properties,
            "precise_total_amount_cents": event.precise_total_amount_cents,
        }
    )


def event_from_message(payload: bytes) -> Event:
    """Decode a message from the events topic. Raises ValueError on anything not of this schema."""
    try:
        data = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"not JSON: {exc}") from exc
    if not isinstance(data, dict) or data.get("v") != MESSAGE_VERSION:
        raise ValueError("not an events message of version 1")
    try:
        return Event(
            lago_id=str(data["lago_id"]),
            organization_id=str(data["organization_id"]),
            transaction_id=str(data["transaction_id"]),
            code=str(data["code"]),
            external_subscription_id=str(data["external_subscription_id"]),
            timestamp_us=int(data["timestamp_us"]),
            received_at_us=int(data["received_at_us"]),
            properties=dict(data.get("properties") or {}),
            precise_total_amount_cents=data.get("precise_total_amount_cents"),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"malformed events message: {exc!r}") from exc


def iso_ms(epoch_us: int) -> str:
    """ISO 8601 UTC with milliseconds, as every timestamp meterline returns."""
    moment = datetime.fromtimestamp(epoch_us // 1000 / 1000, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def event_to_api(event: Event) -> dict[str, Any]:
    """The event as Lago's API returns it."""
    return {
        "lago_id": event.lago_id,
        "transaction_id": event.transaction_id,
        "lago_customer_id": None,
        "code": event.code,
        "timestamp": iso_ms(event.timestamp_us),
        "properties": event.properties,
        "lago_subscription_id": None,
        "external_subscription_id": event.external_subscription_id,
        "precise_total_amount_cents": event.precise_total_amount_cents,
        "created_at": iso_ms(event.received_at_us),
    }
