"""`GET /api/v1/openapi.json`: the API's OpenAPI 3.1 document (rater.openapi), no API key needed."""

from __future__ import annotations

from core.openapi.document import openapi_route
from rater.openapi import api_document

ROUTES = [openapi_route(api_document())]
