import json
import logging

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from meterline.logs import JsonFormatter, RequestIdMiddleware, work_id


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


def test_request_id_is_echoed_or_generated_and_bound_while_handling() -> None:
    seen: list[str | None] = []

    async def handler(request: Request) -> PlainTextResponse:
        seen.append(work_id.get())
        return PlainTextResponse("ok")

    app = Starlette(routes=[Route("/", handler)], middleware=[Middleware(RequestIdMiddleware)])
    with TestClient(app) as client:
        given = client.get("/", headers={"X-Request-Id": "req-42"})
        generated = client.get("/")
    assert given.headers["x-request-id"] == "req-42"
    assert len(generated.headers["x-request-id"]) == 32
    assert seen == ["req-42", generated.headers["x-request-id"]]
    assert work_id.get() is None
