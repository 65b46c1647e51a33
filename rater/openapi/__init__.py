"""The API's OpenAPI 3.1 document (served at `GET /api/v1/openapi.json` by `rater.api.openapi`).

`objects` holds the response objects, `inputs` the request bodies, `paths` the operations; the
event routes, errors and pagination come from `core.openapi`, shared with the ingest's document.
"""

from rater.openapi.paths import api_document

__all__ = ["api_document"]
