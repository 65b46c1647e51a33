"""The usage event: what a client sends, what travels on the `events` topic, what is archived.

`parse_event` turns one client-supplied JSON object into an `Event` or raises
`EventValidationError` carrying Lago-style `error_details` (field -> [code]).
`event_to_message` / `event_from_message` are the Kafka encoding, described by
`schemas/event.schema.json` and exemplified by `schemas/examples/*.json`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any

import orjson

MAX_BATCH_EVENTS = 100
MESSAGE_VERSION = 1
# The archive stores identifiers as VARCHAR(255) and the amount as VARCHAR(64): longer values are
# refused at the edge, where the client can still be told, instead of failing in the aggregator.
MAX_IDENTIFIER_CHARS = 255
MAX_AMOUNT_CHARS = 64
MAX_TIMESTAMP_S = 253402300799  # 9999-12-31T23:59:59Z, the last second PostgreSQL and datetime share
NUL_IN_JSON = b"\\u0000"  # how JSON spells U+0000, which PostgreSQL text and JSONB cannot hold


class EventValidationError(ValueError):
    def __init__(self, details: dict[str, list[str]]):
        super().__init__(f"invalid event: {details}")
        self.details = details


@dataclass(slots=True)
class Event:
    """A validated usage event, as accepted at the edge. Times are integer microseconds since the epoch.

    Treat it as immutable. It is not declared frozen because a frozen dataclass's __init__ (one
    object.__setattr__ per field) took 13% of the ingest's CPU.
    """

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


def _identifier(raw: dict[str, Any], name: str, errors: dict[str, list[str]], may_hold_nul: bool) -> str:
    """A required identifier: a non-empty string (an integer is taken as its decimal string)."""
    value = raw.get(name)
    if value is None or value == "":
        errors[name] = ["value_is_mandatory"]
        return ""
    if type(value) is int:
        value = str(value)
    elif not isinstance(value, str):
        errors[name] = ["invalid_format"]
        return ""
    if len(value) > MAX_IDENTIFIER_CHARS or (may_hold_nul and "\x00" in value):
        errors[name] = ["invalid_format"]
        return ""
    return value


def _timestamp_us(value: Any, now_us: int) -> int | None:
    """Unix seconds as int, float or numeric string; None (absent) means now. Returns None when invalid."""
    if value is None:
        return now_us
    if type(value) is int:  # the common case, kept off Decimal
        return value * 1_000_000 if 0 <= value <= MAX_TIMESTAMP_S else None
    if isinstance(value, float):
        seconds = Decimal(repr(value))  # repr: the shortest decimal that round-trips, no binary noise
    elif isinstance(value, str):
        try:
            seconds = Decimal(value.strip())
        except InvalidOperation:
            return None
    else:
        return None  # bool, list, object
    if not seconds.is_finite() or seconds < 0 or seconds > MAX_TIMESTAMP_S:
        return None
    return int(seconds * 1_000_000)


def _amount(value: Any) -> str | None | bool:
    """`precise_total_amount_cents`: a decimal number or numeric string; False when invalid."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return False
    try:
        number = Decimal(value.strip() if isinstance(value, str) else repr(value))
    except InvalidOperation:
        return False
    # Checked before formatting: "1E+999999999" would otherwise become a gigabyte of digits.
    if not number.is_finite() or abs(number.adjusted()) >= MAX_AMOUNT_CHARS:
        return False
    text = format(number, "f")  # plain notation: "1E+3" would not match the topic's JSON Schema
    return text if len(text) <= MAX_AMOUNT_CHARS else False


def _properties(value: Any, may_hold_nul: bool) -> dict[str, Any] | None:
    """An object (absent means empty); None when invalid."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        return None
    if may_hold_nul and value and NUL_IN_JSON in orjson.dumps(value):
        return None
    return value


_UUID_VARIANT = {digit: "89ab"[int(digit, 16) & 3] for digit in "0123456789abcdef"}


def new_lago_ids(count: int) -> list[str]:
    """`count` random (version 4) UUIDs from one read of the OS's randomness.

    uuid.uuid4() per event (a getrandom call and a UUID object each) was a fifth of the ingest's
    time for 100-event batches; this is the same 122 random bits, formatted directly.
    """
    raw = os.urandom(16 * count).hex()
    ids = []
    for start in range(0, 32 * count, 32):
        h = raw[start:start + 32]
        ids.append(f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_UUID_VARIANT[h[16]]}{h[17:20]}-{h[20:]}")
    return ids


def parse_event(raw: Any, organization_id: str, now_us: int, lago_id: str | None = None,
                may_hold_nul: bool = True) -> Event:
    """Validate one client event; every invalid field is reported at once, as Lago does.

    `may_hold_nul=False` skips the search for U+0000: the caller knows the JSON text it parsed
    has no `\\u0000` escape (JSON cannot carry a raw NUL), so no string in it holds one.
    """
    if not isinstance(raw, dict):
        raise EventValidationError({"event": ["invalid_format"]})
    errors: dict[str, list[str]] = {}
    transaction_id = _identifier(raw, "transaction_id", errors, may_hold_nul)
    code = _identifier(raw, "code", errors, may_hold_nul)
    external_subscription_id = _identifier(raw, "external_subscription_id", errors, may_hold_nul)
    timestamp_us = _timestamp_us(raw.get("timestamp"), now_us)
    if timestamp_us is None:
        errors["timestamp"] = ["invalid_format"]
    properties = _properties(raw.get("properties"), may_hold_nul)
    if properties is None:
        errors["properties"] = ["invalid_format"]
    amount = _amount(raw.get("precise_total_amount_cents"))
    if amount is False:
        errors["precise_total_amount_cents"] = ["invalid_format"]
    if errors:
        raise EventValidationError(errors)
    return Event(
        lago_id=lago_id or new_lago_ids(1)[0],
        organization_id=organization_id,
        transaction_id=transaction_id,
        code=code,
        external_subscription_id=external_subscription_id,
        timestamp_us=timestamp_us or 0,
        received_at_us=now_us,
        properties=properties or {},
        precise_total_amount_cents=amount if isinstance(amount, str) else None,
    )


def event_to_message(event: Event) -> bytes:
    """The topic message, described by schemas/event.schema.json.

    A dict literal per event: faster with orjson than serializing the slotted dataclass itself.
    """
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
    """Decode a message from the events topic. Raises ValueError on anything not of this schema.

    Fields are taken as they are and their types checked afterwards, not converted: this runs for
    every event the aggregator reads, and a conversion call per field cost a quarter of it."""
    try:
        data = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"not JSON: {exc}") from exc
    if type(data) is not dict or data.get("v") != MESSAGE_VERSION:
        raise ValueError("not an events message of version 1")
    try:
        event = Event(data["lago_id"], data["organization_id"], data["transaction_id"], data["code"],
                      data["external_subscription_id"], data["timestamp_us"], data["received_at_us"],
                      data["properties"], data.get("precise_total_amount_cents"))
    except KeyError as exc:
        raise ValueError(f"malformed events message: no {exc}") from exc
    if not (type(event.lago_id) is str and type(event.organization_id) is str and type(event.transaction_id) is str
            and type(event.code) is str and type(event.external_subscription_id) is str
            and type(event.timestamp_us) is int and type(event.received_at_us) is int
            and type(event.properties) is dict
            and (event.precise_total_amount_cents is None or type(event.precise_total_amount_cents) is str)):
        raise ValueError(f"malformed events message: {_mistyped(event)} is not of its type")
    return event


def _mistyped(event: Event) -> str:
    """The first field of a decoded message whose type is not the schema's (the error path only)."""
    expected: dict[str, tuple[type, ...]] = {
        "properties": (dict,), "timestamp_us": (int,), "received_at_us": (int,),
        "precise_total_amount_cents": (str, type(None))}
    for name in Event.__dataclass_fields__:
        if type(getattr(event, name)) not in expected.get(name, (str,)):
            return name
    return "a field"


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def epoch_us(moment: datetime) -> int:
    """An aware datetime as integer microseconds since the epoch, exactly (the unit of every event time)."""
    return (moment - EPOCH) // _MICROSECOND


def moment_of(epoch_us: int) -> datetime:
    """Integer microseconds since the epoch as an aware UTC datetime, exactly."""
    return EPOCH + timedelta(microseconds=epoch_us)


@lru_cache(maxsize=4096)  # a batch's events share their created_at, and mostly a few timestamps
def iso_ms(epoch_us: int) -> str:
    """ISO 8601 UTC with milliseconds, as every timestamp meterline returns."""
    seconds, micros = divmod(epoch_us, 1_000_000)
    return f"{_iso_seconds(seconds)}.{micros // 1000:03d}Z"


@lru_cache(maxsize=8192)
def _iso_seconds(seconds: int) -> str:
    # Cached: the events of one batch mostly share a few seconds, and formatting dominates event_to_api.
    return datetime.fromtimestamp(seconds, tz=UTC).replace(tzinfo=None).isoformat()


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
