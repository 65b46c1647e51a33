"""Structured logs: one JSON object per line, with the request id or event batch id of the work at hand.

The id travels in a context variable, so every log line written while handling a request (or a
batch) carries it without passing it around. HTTP responses echo it in `X-Request-Id`.
"""

from __future__ import annotations

import contextvars
import logging
import logging.config
import time
import uuid
from collections.abc import Callable
from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

work_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("work_id", default=None)
_RESERVED = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str):
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "message": record.getMessage(),
        }
        current = work_id.get()
        if current is not None:
            entry["work_id"] = current
        entry.update({k: v for k, v in record.__dict__.items() if k not in _RESERVED and not k.startswith("_")})
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


class RepeatFilter(logging.Filter):
    """Lets each message of the given libraries through at most once every `every_s` seconds.

    With the broker down, aiokafka logs the same connection error thousands of times a second
    (faust-streaming issue 624): hundreds of megabytes of identical lines per outage. A message is
    its logger and format string (not its arguments), and the first copy let through after a quiet
    spell carries `repeats_suppressed`, how many were left out.
    """

    def __init__(self, prefixes: tuple[str, ...] = ("aiokafka",), every_s: float = 10.0,
                 clock: Callable[[], float] = time.monotonic):
        super().__init__()
        self.prefixes = prefixes
        self.every_s = every_s
        self.clock = clock
        self._seen: dict[tuple[str, str], tuple[float, int]] = {}  # -> (last let through, left out since)

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith(self.prefixes):
            return True
        key = (record.name, str(record.msg))
        now = self.clock()
        seen = self._seen.get(key)
        if seen is not None and now - seen[0] < self.every_s:
            self._seen[key] = (seen[0], seen[1] + 1)
            return False
        if seen is not None and seen[1]:
            record.repeats_suppressed = seen[1]
        self._seen[key] = (now, 0)
        return True


def logging_config(service: str) -> dict[str, Any]:
    """Every logger's records to stderr as JSON lines, the libraries' chatter at WARNING: for
    `logging.config.dictConfig`, and for Faust's worker, which installs its own at start."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter, "service": service}},
        "filters": {"repeats": {"()": RepeatFilter}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "json", "filters": ["repeats"],
                                "stream": "ext://sys.stderr"}},
        "root": {"level": "INFO", "handlers": ["stderr"]},
        "loggers": {noisy: {"level": "WARNING"} for noisy in ("httpx", "alembic", "aiokafka", "uvicorn.access")},
    }


def configure(service: str) -> None:
    """Send every logger's records to stderr as JSON lines."""
    logging.config.dictConfig(logging_config(service))


class RequestIdMiddleware:
    """Takes `X-Request-Id` from the client (or makes one), binds it to the logs, echoes it back."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(b"x-request-id", b"").decode(errors="replace")[:64]
        request_id = given or uuid.uuid4().hex
        token = work_id.set(request_id)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", []).append((b"x-request-id", request_id.encode()))
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            work_id.reset(token)
