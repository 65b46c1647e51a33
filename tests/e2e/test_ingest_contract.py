"""The event endpoints' contract against the running ingest (and the API that mounts them), real Kafka.

Every validation rule and every status code of POST /events, POST /events/batch and
GET /events/{transaction_id}, with exact bodies.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from tests.builders import api
from tests.conftest import Services, Stack
from tests.e2e.ingest_support import Org, new_org
from tests.kafka_reading import end_offsets, read_since

TOPIC = "events"
UNAUTHORIZED = {"status": 401, "error": "Unauthorized"}


@pytest.fixture
def org(services: Services, unique: str) -> Org:
    return new_org(services, f"test-ingest-{unique}")


@pytest.fixture(params=["ingest", "api"])
def http(request: pytest.FixtureRequest, stack: Stack, org: Org) -> Iterator[httpx.Client]:
    """The standalone ingest, and the API where the same routes are mounted."""
    with api(stack.ingest_url if request.param == "ingest" else stack.api_url, org.key) as client:
        yield client


@pytest.fixture
def ingest_http(stack: Stack, org: Org) -> Iterator[httpx.Client]:
    with api(stack.ingest_url, org.key) as client:
        yield client


def event(n: int = 1, **overrides: Any) -> dict[str, Any]:
    body = {"transaction_id": f"tr-{n}", "code": "api_calls", "external_subscription_id": "sub-1",
            "timestamp": 1_781_049_600 + n, "properties": {"user_id": f"u{n}"}}
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not ...}


def invalid(details: dict[str, Any]) -> dict[str, Any]:
    return {"status": 422, "error": "Unprocessable Entity", "code": "validation_errors", "error_details": details}


def records_of(services: Services, org: Org, start: dict[int, int]) -> list[dict[str, Any]]:
    prefix = f"{org.id}:".encode()
    return [orjson.loads(r.value) for r in read_since(services.kafka_bootstrap, TOPIC, start)
            if r.key.startswith(prefix)]


# --- 200 -----------------------------------------------------------------------------------------

def test_single_event_is_echoed_with_a_lago_id_and_is_in_the_topic_as_sent(
        http: httpx.Client, services: Services, org: Org) -> None:
    start = end_offsets(services.kafka_bootstrap, TOPIC)
    sent = event(7, timestamp="1781049600.25", precise_total_amount_cents="12.5",
                 properties={"user_id": "u7", "nested": {"a": [1, 2]}}, external_customer_id="ignored")
    response = http.post("/events", json={"event": sent})
    assert response.status_code == 200, response.text
    echoed = response.json()["event"]
    assert set(echoed) == {"lago_id", "transaction_id", "lago_customer_id", "code", "timestamp", "properties",
                           "lago_subscription_id", "external_subscription_id", "precise_total_amount_cents",
                           "created_at"}
    assert echoed["transaction_id"] == "tr-7"
    assert echoed["timestamp"] == "2026-06-10T00:00:00.250Z"
    assert echoed["properties"] == {"user_id": "u7", "nested": {"a": [1, 2]}}
    assert echoed["precise_total_amount_cents"] == "12.5"
    assert echoed["lago_customer_id"] is None and echoed["lago_subscription_id"] is None
    [record] = records_of(services, org, start)
    assert record == {"v": 1, "lago_id": echoed["lago_id"], "organization_id": org.id, "transaction_id": "tr-7",
                      "code": "api_calls", "external_subscription_id": "sub-1",
                      "timestamp_us": 1_781_049_600_250_000, "received_at_us": record["received_at_us"],
                      "properties": {"user_id": "u7", "nested": {"a": [1, 2]}},
                      "precise_total_amount_cents": "12.5"}
    assert abs(record["received_at_us"] / 1e6 - time.time()) < 60


def test_batch_of_100_is_echoed_in_order_and_all_are_in_the_topic(
        http: httpx.Client, services: Services, org: Org) -> None:
    start = end_offsets(services.kafka_bootstrap, TOPIC)
    sent = [event(n, external_subscription_id=f"sub-{n % 5}") for n in range(100)]
    response = http.post("/events/batch", json={"events": sent})
    assert response.status_code == 200, response.text
    echoed = response.json()["events"]
    assert [e["transaction_id"] for e in echoed] == [e["transaction_id"] for e in sent]
    assert len({e["lago_id"] for e in echoed}) == 100
    records = {r["lago_id"]: r for r in records_of(services, org, start)}
    assert set(records) == {e["lago_id"] for e in echoed}
    for sent_event, echo in zip(sent, echoed, strict=True):
        record = records[echo["lago_id"]]
        assert (record["transaction_id"], record["external_subscription_id"], record["properties"],
                record["timestamp_us"]) == (sent_event["transaction_id"], sent_event["external_subscription_id"],
                                            sent_event["properties"], sent_event["timestamp"] * 1_000_000)


def test_event_without_timestamp_gets_the_time_of_receipt(http: httpx.Client) -> None:
    before = time.time()
    response = http.post("/events", json={"event": event(timestamp=..., properties=None)})
    assert response.status_code == 200, response.text
    echoed = response.json()["event"]
    assert echoed["timestamp"] == echoed["created_at"]
    assert echoed["properties"] == {}
    stamped = time.mktime(time.strptime(echoed["timestamp"][:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone
    assert before - 2 <= stamped <= time.time() + 1


def test_nulls_of_official_clients_mean_not_given(http: httpx.Client) -> None:
    sent = event(timestamp=None, properties=None, precise_total_amount_cents=None)
    response = http.post("/events", json={"event": sent})
    assert response.status_code == 200, response.text
    assert response.json()["event"]["precise_total_amount_cents"] is None


def test_repeated_transaction_id_is_accepted_again(http: httpx.Client) -> None:
    """Deviation from Lago's PostgreSQL mode: retries answer 200, the aggregator counts them once."""
    first = http.post("/events", json={"event": event(3)})
    second = http.post("/events", json={"event": event(3)})
    assert (first.status_code, second.status_code) == (200, 200)
    assert first.json()["event"]["lago_id"] != second.json()["event"]["lago_id"]


# --- 400 -----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("path", "content"), [
    ("/events", b'{"event": {"transaction_id": '), ("/events/batch", b"not json"), ("/events", b""),
    ("/events/batch", b'{"events": [1,]}'),
])
def test_malformed_json_is_400(http: httpx.Client, path: str, content: bytes) -> None:
    response = http.post(path, content=content, headers={"content-type": "application/json"})
    assert response.status_code == 400
    body = response.json()
    assert body["status"] == 400
    assert body["error"].startswith("BadRequest: the body is not valid JSON")


@pytest.mark.parametrize(("path", "body", "key"), [
    ("/events", {}, "event"), ("/events", {"events": [event()]}, "event"), ("/events", {"event": None}, "event"),
    ("/events", [event()], "event"), ("/events/batch", {}, "events"), ("/events/batch", {"event": event()}, "events"),
    ("/events/batch", {"events": None}, "events"), ("/events/batch", "events", "events"),
])
def test_missing_root_key_is_400(http: httpx.Client, path: str, body: Any, key: str) -> None:
    response = http.post(path, json=body)
    assert response.status_code == 400
    assert response.json() == {"status": 400, "error": f"BadRequest: param is missing or the value is empty: {key}"}


@pytest.mark.parametrize("events", [{"0": event()}, "event", 5])
def test_batch_events_not_an_array_is_422(http: httpx.Client, events: Any) -> None:
    response = http.post("/events/batch", json={"events": events})
    assert response.status_code == 422
    assert response.json() == {"status": 422, "error": "Unprocessable Entity", "code": "validation_errors",
                               "error_details": {"events": ["invalid_format"]}}


# --- 401 -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("headers", [
    {}, {"Authorization": "Bearer ml_not_a_key"}, {"Authorization": "Bearer"}, {"Authorization": "Basic abc"},
    {"Authorization": "ml_no_scheme"},
])
@pytest.mark.parametrize(("method", "path"), [("POST", "/events"), ("POST", "/events/batch"),
                                              ("GET", "/events/tr-1")])
def test_missing_or_unknown_key_is_401(stack: Stack, headers: dict[str, str], method: str, path: str) -> None:
    for base in (stack.ingest_url, stack.api_url):
        response = httpx.request(method, f"{base}/api/v1{path}", headers=headers, timeout=10,
                                 json={"event": event()} if path == "/events" else {"events": [event()]})
        assert response.status_code == 401, (base, response.text)
        assert response.json() == UNAUTHORIZED


# --- 413 -----------------------------------------------------------------------------------------

def test_body_over_the_limit_is_413(http: httpx.Client) -> None:
    huge = {"events": [event(n, properties={"pad": "x" * 20_000}) for n in range(60)]}  # ~1.2 MB > 1 MiB
    response = http.post("/events/batch", json=huge)
    assert response.status_code == 413
    assert response.json() == {"status": 413, "error": "Payload Too Large", "code": "payload_too_large",
                               "message": "request bodies are limited to 1048576 bytes"}


def test_streamed_body_over_the_limit_is_413_without_content_length(http: httpx.Client) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"events": ['
        for n in range(1200):
            yield orjson.dumps(event(n, properties={"pad": "y" * 1000})) + b","
        yield b"{}]}"

    response = http.post("/events/batch", content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"


def test_body_just_under_the_limit_is_accepted(ingest_http: httpx.Client) -> None:
    batch = {"events": [event(n, properties={"pad": "z" * 10_000}) for n in range(100)]}  # ~1.0 MB
    assert len(orjson.dumps(batch)) < 1024 * 1024
    response = ingest_http.post("/events/batch", json=batch)
    assert response.status_code == 200, response.text


# --- 422: every validation rule ------------------------------------------------------------------

@pytest.mark.parametrize(("overrides", "details"), [
    ({"transaction_id": ...}, {"transaction_id": ["value_is_mandatory"]}),
    ({"transaction_id": ""}, {"transaction_id": ["value_is_mandatory"]}),
    ({"code": None}, {"code": ["value_is_mandatory"]}),
    ({"code": ...}, {"code": ["value_is_mandatory"]}),
    ({"external_subscription_id": ...}, {"external_subscription_id": ["value_is_mandatory"]}),
    ({"external_subscription_id": ""}, {"external_subscription_id": ["value_is_mandatory"]}),
    ({"transaction_id": 1.5}, {"transaction_id": ["invalid_format"]}),
    ({"code": ["a"]}, {"code": ["invalid_format"]}),
    ({"external_subscription_id": {"id": 1}}, {"external_subscription_id": ["invalid_format"]}),
    ({"transaction_id": "t" * 256}, {"transaction_id": ["invalid_format"]}),
    ({"code": "nul\u0000"}, {"code": ["invalid_format"]}),
    ({"timestamp": "2026-06-10T00:00:00Z"}, {"timestamp": ["invalid_format"]}),
    ({"timestamp": "soon"}, {"timestamp": ["invalid_format"]}),
    ({"timestamp": True}, {"timestamp": ["invalid_format"]}),
    ({"timestamp": -5}, {"timestamp": ["invalid_format"]}),
    ({"timestamp": 253402300800}, {"timestamp": ["invalid_format"]}),
    ({"timestamp": [1]}, {"timestamp": ["invalid_format"]}),
    ({"properties": "user_id"}, {"properties": ["invalid_format"]}),
    ({"properties": [1, 2]}, {"properties": ["invalid_format"]}),
    ({"properties": {"user_id": "u\u0000"}}, {"properties": ["invalid_format"]}),
    ({"precise_total_amount_cents": "ten"}, {"precise_total_amount_cents": ["invalid_format"]}),
    ({"precise_total_amount_cents": True}, {"precise_total_amount_cents": ["invalid_format"]}),
    ({"transaction_id": ..., "code": "", "timestamp": "x"},
     {"transaction_id": ["value_is_mandatory"], "code": ["value_is_mandatory"], "timestamp": ["invalid_format"]}),
])
def test_invalid_event_is_422_with_the_field_and_code(
        http: httpx.Client, overrides: dict[str, Any], details: dict[str, Any]) -> None:
    response = http.post("/events", json={"event": event(**overrides)})
    assert response.status_code == 422
    assert response.json() == invalid(details)


@pytest.mark.parametrize("raw", [[event()], "event", 3, True])
def test_event_that_is_not_an_object_is_422(http: httpx.Client, raw: Any) -> None:
    response = http.post("/events", json={"event": raw})
    assert response.status_code == 422
    assert response.json() == invalid({"event": ["invalid_format"]})


@pytest.mark.parametrize(("count", "code"), [(0, "no_events"), (101, "too_many_events"), (500, "too_many_events")])
def test_batch_size_outside_1_to_100_is_422(http: httpx.Client, count: int, code: str) -> None:
    response = http.post("/events/batch", json={"events": [event(n) for n in range(count)]})
    assert response.status_code == 422
    assert response.json() == invalid({"events": [code]})


def test_batch_errors_are_keyed_by_index_and_nothing_is_published(
        http: httpx.Client, services: Services, org: Org) -> None:
    start = end_offsets(services.kafka_bootstrap, TOPIC)
    batch = [event(n) for n in range(10)]
    batch[2] = event(2, code=...)
    batch[5] = event(5, timestamp="later", properties=[])
    batch[9] = "not an event"
    response = http.post("/events/batch", json={"events": batch})
    assert response.status_code == 422
    assert response.json() == invalid({
        "2": {"code": ["value_is_mandatory"]},
        "5": {"timestamp": ["invalid_format"], "properties": ["invalid_format"]},
        "9": {"event": ["invalid_format"]},
    })
    # all or nothing: a marker accepted afterwards is the only event of this organization in the topic
    marker = http.post("/events", json={"event": event(99)})
    assert marker.status_code == 200
    assert [r["transaction_id"] for r in records_of(services, org, start)] == ["tr-99"]


def test_batch_of_exactly_one_and_exactly_100_are_accepted(http: httpx.Client) -> None:
    for count in (1, 100):
        response = http.post("/events/batch", json={"events": [event(n) for n in range(count)]})
        assert response.status_code == 200, response.text
        assert len(response.json()["events"]) == count


# --- 404 / 405 -----------------------------------------------------------------------------------

def test_event_not_archived_is_404_event_not_found(http: httpx.Client) -> None:
    response = http.get("/events/never-sent")
    assert response.status_code == 404
    assert response.json() == {"status": 404, "error": "Not Found", "code": "event_not_found"}


def test_wrong_method_is_405(ingest_http: httpx.Client) -> None:
    response = ingest_http.put("/events/batch", json={"events": [event()]})
    assert response.status_code == 405
    assert response.json() == {"status": 405, "error": "Method Not Allowed", "code": "method_not_allowed"}
