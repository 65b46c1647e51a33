"""The standalone ingest's OpenAPI document: the event routes, the operations routes and itself."""

from __future__ import annotations

from typing import Any

from core.openapi.document import OPENAPI_PATH, document, self_path
from core.openapi.events import EVENT_PATHS, EVENT_SCHEMAS
from core.openapi.ops import ops_paths

DESCRIPTION = """meterline's event intake (port 3001), wire-compatible with Lago's `POST /api/v1/events` and
`POST /api/v1/events/batch`. Stateless: run as many replicas as needed. The same event routes are served by
the API (port 3000), whose document describes the rest of Lago's API that meterline serves."""


def ingest_document() -> dict[str, Any]:
    paths = {**EVENT_PATHS, **ops_paths("ingest"), OPENAPI_PATH: self_path("Ingest")}
    return document("meterline ingest", DESCRIPTION, paths, EVENT_SCHEMAS)
