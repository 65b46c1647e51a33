"""Every validation rule of the event schema, the Kafka encoding, and the events topic contract."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from schemas.events import (
    Event,
    EventValidationError,
    event_from_message,
    event_to_api,
    event_to_message,
    iso_ms,
    parse_event,
)

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
TOPIC_SCHEMA = json.loads((SCHEMAS / "event.schema.json").read_text())
EXAMPLES = sorted((SCHEMAS / "examples").glob("*.json"))
ORG = "0b6f5d1e-7d52-4c47-a7b8-4f0c2a9e6e01"
NOW_US = 1_781_049_600_123_456


def body(**overrides: Any) -> dict[str, Any]:
    event = {"transaction_id": "tr_1", "code": "api_calls", "external_subscription_id": "sub_1",
             "timestamp": 1_781_049_600, "properties": {"user_id": "u1"}}
    event.update(overrides)
    return {k: v for k, v in event.items() if v is not ...}


def errors_of(raw: Any) -> dict[str, list[str]]:
    with pytest.raises(EventValidationError) as caught:
        parse_event(raw, ORG, NOW_US)
    return caught.value.details


def validate_message(payload: bytes) -> None:
    jsonschema.validate(json.loads(payload), TOPIC_SCHEMA, format_checker=jsonschema.FormatChecker())


# --- required identifiers ------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["transaction_id", "code", "external_subscription_id"])
@pytest.mark.parametrize("value", [..., None, ""])
def test_missing_identifier_is_value_is_mandatory(name: str, value: Any) -> None:
    assert errors_of(body(**{name: value})) == {name: ["value_is_mandatory"]}


@pytest.mark.parametrize("name", ["transaction_id", "code", "external_subscription_id"])
@pytest.mark.parametrize("value", [1.5, True, ["a"], {"a": 1}, "x" * 256, "bad\x00id"])
def test_identifier_of_wrong_shape_is_invalid_format(name: str, value: Any) -> None:
    assert errors_of(body(**{name: value})) == {name: ["invalid_format"]}


def test_integer_identifier_is_taken_as_its_string() -> None:
    event = parse_event(body(transaction_id=42), ORG, NOW_US)
    assert event.transaction_id == "42"


def test_identifier_of_255_characters_is_accepted() -> None:
    assert parse_event(body(transaction_id="t" * 255), ORG, NOW_US).transaction_id == "t" * 255


# --- timestamp -----------------------------------------------------------------------------------

@pytest.mark.parametrize(("value", "expected_us"), [
    (1_781_049_600, 1_781_049_600_000_000),
    (1_781_049_600.25, 1_781_049_600_250_000),
    (1_781_049_600.123456, 1_781_049_600_123_456),
    ("1781049600", 1_781_049_600_000_000),
    (" 1781049600.5 ", 1_781_049_600_500_000),
    ("1.7810496e9", 1_781_049_600_000_000),
    (0, 0),
    (253402300799, 253402300799_000_000),
])
def test_timestamp_in_unix_seconds(value: Any, expected_us: int) -> None:
    assert parse_event(body(timestamp=value), ORG, NOW_US).timestamp_us == expected_us


@pytest.mark.parametrize("value", [..., None])
def test_absent_timestamp_is_time_of_receipt(value: Any) -> None:
    event = parse_event(body(timestamp=value), ORG, NOW_US)
    assert (event.timestamp_us, event.received_at_us) == (NOW_US, NOW_US)


@pytest.mark.parametrize("value", ["2026-06-10T00:00:00Z", "", "abc", "NaN", "Infinity", True, False, -1,
                                   "-1", 253402300800, 1e300, [1], {"s": 1}])
def test_timestamp_not_unix_seconds_is_invalid_format(value: Any) -> None:
    assert errors_of(body(timestamp=value)) == {"timestamp": ["invalid_format"]}


# --- properties ----------------------------------------------------------------------------------

@pytest.mark.parametrize("value", [..., None, {}])
def test_absent_properties_are_empty(value: Any) -> None:
    assert parse_event(body(properties=value), ORG, NOW_US).properties == {}


def test_nested_properties_are_kept_as_sent() -> None:
    properties = {"user_id": "u1", "gb": 12.5, "tags": ["a", "b"], "nested": {"deep": [1, {"x": None}]}}
    assert parse_event(body(properties=properties), ORG, NOW_US).properties == properties


@pytest.mark.parametrize("value", ["user_id", 1, True, ["a"], {"k": "nul\x00inside"}, {"nul\x00key": 1},
                                   {"list": ["ok", "x\x00"]}])
def test_properties_not_an_object_or_holding_nul_are_invalid_format(value: Any) -> None:
    assert errors_of(body(properties=value)) == {"properties": ["invalid_format"]}


# --- precise_total_amount_cents ------------------------------------------------------------------

@pytest.mark.parametrize(("value", "expected"), [
    (None, None), (..., None), ("1234.5", "1234.5"), (12, "12"), (0.5, "0.5"), ("1e3", "1000"),
    (" 7 ", "7"), ("-3.25", "-3.25"),
])
def test_precise_total_amount_cents(value: Any, expected: str | None) -> None:
    assert parse_event(body(precise_total_amount_cents=value), ORG, NOW_US).precise_total_amount_cents == expected


@pytest.mark.parametrize("value", ["abc", "", "NaN", "Infinity", True, [1], {"a": 1}, "1" * 65,
                                   "1E+999999999", "1E-999999999", "1e64"])
def test_precise_total_amount_cents_not_a_number_is_invalid_format(value: Any) -> None:
    assert errors_of(body(precise_total_amount_cents=value)) == {"precise_total_amount_cents": ["invalid_format"]}


# --- the event as a whole ------------------------------------------------------------------------

@pytest.mark.parametrize("raw", [[], "event", 1, None, True])
def test_event_that_is_not_an_object_is_invalid_format(raw: Any) -> None:
    assert errors_of(raw) == {"event": ["invalid_format"]}


def test_every_invalid_field_is_reported_at_once() -> None:
    raw = {"code": "", "timestamp": "yesterday", "properties": [], "precise_total_amount_cents": "x"}
    assert errors_of(raw) == {
        "transaction_id": ["value_is_mandatory"], "code": ["value_is_mandatory"],
        "external_subscription_id": ["value_is_mandatory"], "timestamp": ["invalid_format"],
        "properties": ["invalid_format"], "precise_total_amount_cents": ["invalid_format"],
    }


def test_unknown_fields_are_ignored_as_lago_does() -> None:
    event = parse_event(body(external_customer_id="cus_1", extra={"x": 1}), ORG, NOW_US)
    assert "external_customer_id" not in event_to_message(event).decode()


def test_each_event_gets_its_own_lago_id() -> None:
    first, second = (parse_event(body(), ORG, NOW_US) for _ in range(2))
    assert first.lago_id != second.lago_id
    assert len(first.lago_id) == 36


def test_partition_key_is_organization_and_subscription() -> None:
    assert parse_event(body(), ORG, NOW_US).partition_key == f"{ORG}:sub_1".encode()


# --- the API shape -------------------------------------------------------------------------------

def test_event_to_api_is_lagos_shape() -> None:
    event = parse_event(body(timestamp="1781049600.5", precise_total_amount_cents="10"), ORG, NOW_US,
                        lago_id="5a3e2a4c-2d0c-4f5e-9a53-0a4f3b8f8c11")
    assert event_to_api(event) == {
        "lago_id": "5a3e2a4c-2d0c-4f5e-9a53-0a4f3b8f8c11", "transaction_id": "tr_1", "lago_customer_id": None,
        "code": "api_calls", "timestamp": "2026-06-10T00:00:00.500Z", "properties": {"user_id": "u1"},
        "lago_subscription_id": None, "external_subscription_id": "sub_1", "precise_total_amount_cents": "10",
        "created_at": "2026-06-10T00:00:00.123Z",
    }


@pytest.mark.parametrize(("epoch_us", "text"), [
    (0, "1970-01-01T00:00:00.000Z"), (1_781_049_600_999_999, "2026-06-10T00:00:00.999Z"),
    (253402300799_000_000, "9999-12-31T23:59:59.000Z"),
])
def test_iso_ms(epoch_us: int, text: str) -> None:
    assert iso_ms(epoch_us) == text


# --- the topic contract: every example through the JSON Schema and every consumer ----------------

def test_there_are_examples() -> None:
    assert sorted(path.name for path in EXAMPLES) == [
        "count_event_no_properties.json", "mtu_event.json", "sum_event_with_amount.json"]


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_matches_the_json_schema_and_decodes(path: Path) -> None:
    payload = path.read_bytes()
    validate_message(payload)
    event = event_from_message(payload)
    assert json.loads(event_to_message(event)) == json.loads(payload)  # lossless round trip


@pytest.mark.parametrize("overrides", [
    {}, {"timestamp": "1781049600.123456", "precise_total_amount_cents": "1e3"},
    {"properties": None, "transaction_id": 7}, {"transaction_id": "t" * 255, "timestamp": 253402300799},
    {"precise_total_amount_cents": 0.1},
])
def test_every_accepted_event_encodes_to_a_valid_message(overrides: dict[str, Any]) -> None:
    event = parse_event(body(**overrides), ORG, NOW_US)
    payload = event_to_message(event)
    validate_message(payload)
    assert event_from_message(payload) == event


@pytest.mark.parametrize(("payload", "reason"), [
    (b"not json", "not JSON"), (b"[]", "not an events message of version 1"),
    (b'{"v": 2}', "not an events message of version 1"), (b'{"v": 1, "lago_id": "x"}', "malformed events message"),
])
def test_a_message_not_of_the_schema_is_refused(payload: bytes, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        event_from_message(payload)


@pytest.mark.parametrize(("field", "value"), [
    ("lago_id", 7), ("organization_id", None), ("transaction_id", 12), ("code", ["calls"]),
    ("external_subscription_id", {"id": "s"}), ("timestamp_us", "1781049600000000"), ("timestamp_us", True),
    ("received_at_us", 1.5), ("properties", ["a"]), ("properties", []), ("properties", 0), ("properties", False),
    ("properties", ""), ("properties", None), ("precise_total_amount_cents", 12),
])
def test_a_message_field_of_another_type_is_refused_not_converted(field: str, value: object) -> None:
    good = json.loads(event_to_message(parse_event(body(), ORG, NOW_US)))
    with pytest.raises(ValueError, match=f"^malformed events message: {field} is not of its type$"):
        event_from_message(json.dumps({**good, field: value}).encode())


def test_a_message_without_properties_is_refused() -> None:
    good = json.loads(event_to_message(parse_event(body(), ORG, NOW_US)))
    del good["properties"]  # required by schemas/event.schema.json
    with pytest.raises(ValueError, match="^malformed events message: no 'properties'$"):
        event_from_message(json.dumps(good).encode())


def test_the_schema_refuses_what_the_ingest_refuses() -> None:
    good = json.loads(event_to_message(parse_event(body(), ORG, NOW_US)))
    for field, bad in [("transaction_id", ""), ("transaction_id", "t" * 256), ("timestamp_us", -1),
                       ("precise_total_amount_cents", "1E+3"), ("properties", []), ("v", 2)]:
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate({**good, field: bad}, TOPIC_SCHEMA)
    assert isinstance(event_from_message(json.dumps(good).encode()), Event)


def test_epoch_microseconds_round_trip_exactly() -> None:
    from datetime import UTC, datetime

    from schemas.events import epoch_us, moment_of

    moment = datetime(2026, 6, 30, 23, 59, 59, 999_999, tzinfo=UTC)
    assert epoch_us(moment) == 1_782_863_999_999_999
    assert moment_of(1_782_863_999_999_999) == moment
    assert epoch_us(moment_of(-1)) == -1  # before 1970 too
