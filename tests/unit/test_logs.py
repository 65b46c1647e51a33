import asyncio
import json
import logging

from core.logs import JsonFormatter, RepeatFilter, RequestIdMiddleware, work_id


def record(message: str, **extra: object) -> logging.LogRecord:
    entry = logging.LogRecord("meterline.test", logging.WARNING, __file__, 1, message, None, None)
    entry.__dict__.update(extra)
    return entry


def test_json_line_carries_service_level_message_extras_and_work_id() -> None:
    token = work_id.set("batch-7")
    try:
        line = JsonFormatter("aggregator").format(record("held back %s", batch_size=500))
    finally:
        work_id.reset(token)
    entry = json.loads(line)
    assert entry["service"] == "aggregator"
    assert entry["level"] == "warning"
    assert entry["message"] == "held back %s"
    assert entry["batch_size"] == 500
    assert entry["work_id"] == "batch-7"
    assert entry["ts"].endswith("Z")


def call(app: RequestIdMiddleware, headers: list[tuple[bytes, bytes]]) -> dict[bytes, bytes]:
    """Drive the middleware as an ASGI server would; the response headers it sent."""
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": "/", "headers": headers}
    asyncio.run(app(scope, receive, send))  # type: ignore[arg-type]
    return dict(sent[0]["headers"])


def test_request_id_is_echoed_or_generated_and_bound_while_handling() -> None:
    seen: list[str | None] = []

    async def inner(scope: dict, receive: object, send) -> None:  # type: ignore[no-untyped-def]
        seen.append(work_id.get())
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    app = RequestIdMiddleware(inner)  # type: ignore[arg-type]
    given = call(app, [(b"x-request-id", b"req-42")])
    generated = call(app, [])
    assert given[b"x-request-id"] == b"req-42"
    assert len(generated[b"x-request-id"]) == 32
    assert seen == ["req-42", generated[b"x-request-id"].decode()]
    assert work_id.get() is None


def test_repeats_of_a_library_message_are_let_through_once_per_interval_with_a_count() -> None:
    now = [100.0]
    repeats = RepeatFilter(prefixes=("aiokafka",), every_s=10.0, clock=lambda: now[0])

    def copy(name: str = "aiokafka", message: str = "Unable connect to node with id %s: %s") -> logging.LogRecord:
        return logging.LogRecord(name, logging.ERROR, __file__, 1, message, (1, "refused"), None)

    first = copy()
    assert repeats.filter(first) is True
    assert not hasattr(first, "repeats_suppressed")
    assert [repeats.filter(copy()) for _ in range(5000)] == [False] * 5000
    assert repeats.filter(copy("aiokafka", "Unable to update metadata from %r")) is True  # another message
    assert repeats.filter(copy("meterline.aggregator")) is True  # other loggers are never held back
    now[0] = 109.9
    assert repeats.filter(copy()) is False
    now[0] = 110.0
    after = copy()
    assert repeats.filter(after) is True
    assert after.repeats_suppressed == 5001  # type: ignore[attr-defined]
    assert json.loads(JsonFormatter("aggregator").format(after))["repeats_suppressed"] == 5001
    now[0] = 125.0
    quiet = copy()
    assert repeats.filter(quiet) is True
    assert not hasattr(quiet, "repeats_suppressed")
