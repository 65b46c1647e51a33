"""The operations routes every HTTP process serves (`core.ready.OPS_ROUTES`): /health, /ready, /metrics."""

from __future__ import annotations

from typing import Any

from core.openapi.document import json_content, operation
from core.openapi.schema import Schema, closed, const, text

_CHECK = text("`ok`, or `unreachable: <error>`.")
READY = closed({"status": text(enum=("ready", "not_ready")),
                "checks": closed({"kafka": _CHECK, "redis": _CHECK, "postgres": _CHECK})})


def ops_paths(service: str) -> dict[str, Any]:
    """The three routes of `core.ready`, for the process named `service` (`api` or `ingest`)."""
    health: Schema = closed({"status": const("ok"), "service": const(service)})
    name = service.capitalize()
    ready = operation(f"get{name}Ready", "Are Kafka, Redis and PostgreSQL reachable from this process?",
                      "operations", READY, public=True)
    ready["responses"]["503"] = {"description": "One of them is not (the body says which).",
                                 "content": json_content(READY)}
    return {
        "/health": {"get": operation(f"get{name}Health", "The process runs", "operations", health, public=True)},
        "/ready": {"get": ready},
        "/metrics": {"get": operation(
            f"get{name}Metrics", "Prometheus metrics of this process", "operations", None, public=True,
            ok_content={"text/plain": {"schema": text("Prometheus' text exposition format.")}})},
    }
