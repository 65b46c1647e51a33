"""What every meterline document shares: Lago's error bodies as `core.http` writes them, Bearer
authentication, the operation builder, and the route serving a document.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from core.openapi.schema import Schema, array, closed, const, text

OPENAPI_PATH = "/api/v1/openapi.json"


def _error(status: int, error: str | None, code: str | None = None, *, message: bool = False,
           code_pattern: str | None = None, details: Schema | None = None) -> Schema:
    properties: dict[str, Schema] = {
        "status": const(status),
        "error": text() if error is None else const(error),
    }
    if code is not None:
        properties["code"] = const(code)
    elif code_pattern is not None:
        properties["code"] = text(pattern=code_pattern)
    if message:
        properties["message"] = text("What went wrong, for a person to read.")
    if details is not None:
        properties["error_details"] = details
    return closed(properties)


_FIELD_CODES = array(text(), min_items=1)
ERROR_SCHEMAS: dict[str, Schema] = {
    "ErrorBadRequest": _error(400, None),
    "ErrorUnauthorized": _error(401, "Unauthorized"),
    "ErrorForbidden": _error(403, "Forbidden", "invalid_signature"),
    "ErrorNotFound": _error(404, "Not Found", code_pattern="^[a-z_]+_not_found$"),
    "ErrorNotAllowed": _error(405, "Method Not Allowed", code_pattern="^[a-z_]+$"),
    "ErrorPayloadTooLarge": _error(413, "Payload Too Large", "payload_too_large", message=True),
    "ErrorValidation": _error(422, "Unprocessable Entity", "validation_errors", details={
        "type": "object", "minProperties": 1,
        "description": "Each field at fault with its error codes (`value_is_mandatory`, `invalid_format`, "
                       "`value_is_invalid`, `value_is_too_long`, `value_already_exist`, `not_supported`, ...). "
                       "A batch of events keys each invalid event's fields by its index in the array.",
        "additionalProperties": {"anyOf": [_FIELD_CODES, {"type": "object", "additionalProperties": _FIELD_CODES}]},
    }),
    "ErrorTooManyRequests": _error(429, "Too Many Requests", "too_many_requests"),
    "ErrorUnavailable": _error(503, "Service Unavailable", "service_unavailable", message=True),
}

_RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait before retrying.", "schema": {"type": "string"}}}
ERROR_RESPONSES: dict[int, tuple[str, str, dict[str, Any]]] = {
    400: ("BadRequest", "The body is not JSON, its root key is missing, or a query parameter is malformed.", {}),
    401: ("Unauthorized", "No `Authorization: Bearer <api key>` header, or an unknown, revoked or expired key.", {}),
    403: ("Forbidden", "The link's signature does not hold: altered, expired, or naming no invoice.", {}),
    404: ("NotFound", "No such object in the caller's organization (another organization's objects are 404 "
                      "too).", {}),
    405: ("NotAllowed", "Not possible in the object's state (`no_active_subscription`, `no_voidable_amount`).", {}),
    413: ("PayloadTooLarge", "The body is larger than the configured limit (METERLINE_MAX_BODY_BYTES).", {}),
    422: ("Validation", "A field is invalid, or asks for a Lago feature meterline does not have "
                       "(`not_supported`). Nothing was changed.", {}),
    429: ("TooManyRequests", "The organization sends events faster than its rate limit (METERLINE_INGEST_RATE_LIMIT).",
          _RETRY_AFTER),
    503: ("Unavailable", "A service meterline depends on (PostgreSQL, Kafka or Redis) does not answer; retry.",
          _RETRY_AFTER),
}


def _component_responses() -> dict[str, Any]:
    responses: dict[str, Any] = {}
    for name, description, headers in ERROR_RESPONSES.values():
        response: dict[str, Any] = {"description": description,
                                    "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/"
                                                                                         f"Error{name}"}}}}
        if headers:
            response["headers"] = headers
        responses[name] = response
    return responses


def json_content(schema: Schema) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def operation(operation_id: str, summary: str, tag: str, ok: Schema | None, errors: Sequence[int] = (), *,
              description: str | None = None, parameters: Sequence[Mapping[str, Any]] = (),
              body: Schema | None = None, example: Any = None, public: bool = False,
              ok_content: Mapping[str, Any] | None = None, body_required: bool = True) -> dict[str, Any]:
    """One operation. Authenticated ones answer 401 and 503 (the API key cannot be checked) besides
    `errors`; a body is JSON, so 400 and 413 come with it; a query parameter can be refused (422)."""
    statuses = set(errors)
    if not public:
        statuses |= {401, 503}
    if body is not None:
        statuses |= {400, 413}
    if any(parameter["in"] == "query" for parameter in parameters):
        statuses.add(422)  # a query value holding U+0000 (core.http.refuse_nul)
    result: dict[str, Any] = {"operationId": operation_id, "summary": summary, "tags": [tag]}
    if description:
        result["description"] = description
    if public:
        result["security"] = []
    if parameters:
        result["parameters"] = list(parameters)
    if body is not None:
        result["requestBody"] = {"required": body_required, "content": json_content(body)}
        if example is not None:
            result["requestBody"]["content"]["application/json"]["example"] = example
    responses: dict[str, Any] = {"200": {"description": "OK", "content": ok_content or json_content(ok or {})}}
    for status in sorted(statuses):
        responses[str(status)] = {"$ref": f"#/components/responses/{ERROR_RESPONSES[status][0]}"}
    result["responses"] = responses
    return result


def path_parameter(name: str, description: str, example: str | None = None) -> dict[str, Any]:
    parameter = {"name": name, "in": "path", "required": True, "description": description,
                 "schema": {"type": "string"}}
    return parameter if example is None else {**parameter, "example": example}


def query_parameter(name: str, schema: Schema, description: str, *, required: bool = False,
                    example: str | None = None) -> dict[str, Any]:
    parameter: dict[str, Any] = {"name": name, "in": "query", "required": required, "description": description,
                                 "schema": schema}
    if example is not None:
        parameter["example"] = example
    if schema.get("type") == "array":
        parameter.update(style="form", explode=True)
    return parameter


def self_path(service: str) -> dict[str, Any]:
    """This document, served without an API key."""
    return {"get": operation(f"get{service}OpenApi", "This OpenAPI document", "documentation", {"type": "object"},
                             public=True)}


def document(title: str, description: str, paths: Mapping[str, Any], schemas: Mapping[str, Schema]
             ) -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": "1", "description": description,
                 "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"}},
        "security": [{"bearerAuth": []}],
        "paths": dict(paths),
        "components": {
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer",
                                               "description": "The organization's API key."}},
            "schemas": {**ERROR_SCHEMAS, **schemas},
            "responses": _component_responses(),
        },
    }


def openapi_route(built: Mapping[str, Any]) -> Route:
    """`GET /api/v1/openapi.json`: the document, rendered once."""
    body = orjson.dumps(built)

    async def serve(request: Request) -> Response:
        return Response(body, media_type="application/json")

    return Route(OPENAPI_PATH, serve, methods=["GET"])
