"""HTTP plumbing shared by the ingest and the API: Lago's error bodies, JSON bodies, Bearer auth."""

from __future__ import annotations

import logging
import uuid
from typing import Any
from urllib.parse import parse_qsl

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

log = logging.getLogger("meterline.http")


class ApiError(Exception):
    """A client-facing error in Lago's format. Raised anywhere in a handler, rendered by `error_handler`."""

    def __init__(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None):
        super().__init__(body.get("error"))
        self.status = status
        self.body = {"status": status, **body}
        self.headers = headers or {}


def bad_request(message: str) -> ApiError:
    return ApiError(400, {"error": f"BadRequest: {message}"})


def unauthorized() -> ApiError:
    return ApiError(401, {"error": "Unauthorized"})


def not_found(resource: str) -> ApiError:
    return ApiError(404, {"error": "Not Found", "code": f"{resource}_not_found"})


def not_allowed(code: str) -> ApiError:
    return ApiError(405, {"error": "Method Not Allowed", "code": code})


def validation_error(details: dict[str, Any]) -> ApiError:
    return ApiError(422, {"error": "Unprocessable Entity", "code": "validation_errors",
                          "error_details": details})


def unavailable(message: str) -> ApiError:
    return ApiError(503, {"error": "Service Unavailable", "code": "service_unavailable", "message": message},
                    headers={"Retry-After": "1"})


def too_large(limit: int) -> ApiError:
    return ApiError(413, {"error": "Payload Too Large", "code": "payload_too_large",
                          "message": f"request bodies are limited to {limit} bytes"})


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def ok(body: Any) -> JSONResponse:
    return JSONResponse(body, status_code=200)


async def error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return JSONResponse(exc.body, status_code=exc.status, headers=exc.headers)


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The request's body; 413 past `max_bytes` (checked while reading, whatever Content-Length says)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise too_large(max_bytes)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise too_large(max_bytes)
        chunks.append(chunk)
    return b"".join(chunks)


def canonical_uuid(text: str) -> str | None:
    """`text` as the UUID PostgreSQL reads (hyphenated hex, lowercased); None for anything else, also for the
    forms Python's uuid.UUID takes besides (braces, `urn:uuid:`, no hyphens), which PostgreSQL refuses."""
    try:
        found = str(uuid.UUID(text))
    except ValueError:
        return None
    return found if found == text.lower() else None


def parse_json(body: bytes) -> Any:
    """The JSON value of `body`; 400 in Lago's format when it is not JSON."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise bad_request(f"the body is not valid JSON ({exc.msg} at position {exc.pos})") from exc


async def read_json(request: Request, max_bytes: int) -> Any:
    """The request's JSON body; 413 past `max_bytes`, 400 when not JSON."""
    return parse_json(await read_body(request, max_bytes))


def root_object(body: Any, key: str) -> Any:
    """Lago wraps every input in a root key (`{"event": {...}}`); a missing one is a 400."""
    if not isinstance(body, dict) or key not in body or body[key] is None:
        raise bad_request(f"param is missing or the value is empty: {key}")
    return body[key]


def bearer_token(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise unauthorized()
    return token.strip()


async def http_error_handler(request: Request, exc: Exception) -> Response:
    """Starlette's own errors (unknown route, wrong method) in Lago's shape."""
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        body = not_found("resource").body
    elif exc.status_code == 405:
        body = not_allowed("method_not_allowed").body
    else:
        body = {"status": exc.status_code, "error": str(exc.detail)}
    return JSONResponse(body, status_code=exc.status_code, headers=getattr(exc, "headers", None))


async def internal_error_handler(request: Request, exc: Exception) -> Response:
    """A bug: logged with its traceback server-side, never shown to the client."""
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return JSONResponse({"status": 500, "error": "Internal Server Error"}, status_code=500)


EXCEPTION_HANDLERS = {ApiError: error_handler, HTTPException: http_error_handler,
                      Exception: internal_error_handler}


def nul_error(path: str, query_string: bytes) -> ApiError | None:
    """PostgreSQL text cannot hold U+0000, so nothing meterline stores does: a path holding it names no
    object (404, `<collection>_not_found` as Lago names it), and a query value holding it is refused (422
    naming the parameter) before a handler passes it to PostgreSQL, which would fail (a 500)."""
    if "\x00" in path:
        parts = path.split("/")  # "/api/v1/customers/..." -> customer
        collection = parts[3] if len(parts) > 3 and parts[1:3] == ["api", "v1"] else "resources"
        return not_found(collection.removesuffix("s"))
    if b"%00" not in query_string and b"\x00" not in query_string:
        return None
    pairs = parse_qsl(query_string.decode("latin-1"), keep_blank_values=True)  # as Starlette reads it
    refused = {name.replace("\x00", ""): ["value_is_invalid"] for name, value in pairs if "\x00" in name + value}
    return validation_error(refused) if refused else None


class RefuseNulMiddleware:
    """Answers `nul_error` for a request whose path or query string holds U+0000; passes the rest on."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        error = nul_error(scope["path"], scope.get("query_string", b"")) if scope["type"] == "http" else None
        if error is None:
            await self.app(scope, receive, send)
            return
        await JSONResponse(error.body, status_code=error.status)(scope, receive, send)
