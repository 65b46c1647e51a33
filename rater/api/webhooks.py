"""/api/v1/webhook_endpoints: where an organization receives its webhooks (invoice.drafted for a draft,
invoice.created once the invoice is final, subscription.started/terminated/trial_ended,
credit_note.created, as Lago sends them).

Deviation: Lago keeps one HMAC key per organization and shows it in its UI; meterline has no UI,
so each endpoint gets its own key, returned as `hmac_key` when the endpoint is created or read.
"""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from starlette.requests import Request
from starlette.routing import Route

from core.apikeys import authenticate
from core.db.tables import webhook_endpoints
from core.http import JSONResponse, not_found, ok, validation_error
from rater.api.common import engine, new_id, org_and_input, page_params, paginate
from rater.billing.signing import new_hmac_key
from rater.inputs import BAD_FORMAT, INVALID, TAKEN, Input
from rater.serializers import iso


def render(row: Any) -> dict[str, Any]:
    return {
        "lago_id": row.id,
        "lago_organization_id": row.organization_id,
        "webhook_url": row.webhook_url,
        "signature_algo": row.signature_algo,
        "name": row.name,
        "event_types": None,
        "created_at": iso(row.created_at),
        "hmac_key": row.hmac_key,
    }


def _valid_url(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.hostname)


async def create_endpoint(request: Request) -> JSONResponse:
    organization_id, raw = await org_and_input(request, "webhook_endpoint")
    data = Input(raw)
    url = data.text("webhook_url", required=True, max_length=2048)
    name = data.text("name")
    algo = data.choice("signature_algo", ("hmac", "jwt")) or "hmac"
    if url is not None and not _valid_url(url):
        data.fail("webhook_url", BAD_FORMAT)
    if algo == "jwt":  # meterline signs with HMAC only
        data.fail("signature_algo", INVALID)
    data.unsupported("event_types")  # an endpoint receives every webhook type (Lago's `null`)
    data.check()
    try:
        async with engine(request).begin() as conn:
            row = (await conn.execute(webhook_endpoints.insert().values(
                id=new_id(), organization_id=organization_id, webhook_url=url, name=name, signature_algo="hmac",
                hmac_key=new_hmac_key()).returning(*webhook_endpoints.c))).one()
    except IntegrityError as exc:
        raise validation_error({"webhook_url": [TAKEN]}) from exc
    return ok({"webhook_endpoint": render(row)})


async def list_endpoints(request: Request) -> JSONResponse:
    organization_id = await authenticate(request)
    page, per_page = page_params(request)
    query = (select(webhook_endpoints).where(webhook_endpoints.c.organization_id == organization_id)
             .order_by(webhook_endpoints.c.created_at, webhook_endpoints.c.id))
    async with engine(request).connect() as conn:
        rows, meta = await paginate(conn, query, page, per_page)
    return ok({"webhook_endpoints": [render(r) for r in rows], "meta": meta})


def _endpoint_id(request: Request) -> str:
    try:
        return str(uuid.UUID(request.path_params["lago_id"]))
    except ValueError as exc:
        raise not_found("webhook_endpoint") from exc


async def get_endpoint(request: Request) -> JSONResponse:
    organization_id = await authenticate(request)
    async with engine(request).connect() as conn:
        row = (await conn.execute(select(webhook_endpoints).where(
            webhook_endpoints.c.id == _endpoint_id(request),
            webhook_endpoints.c.organization_id == organization_id))).one_or_none()
    if row is None:
        raise not_found("webhook_endpoint")
    return ok({"webhook_endpoint": render(row)})


async def delete_endpoint(request: Request) -> JSONResponse:
    organization_id = await authenticate(request)
    async with engine(request).begin() as conn:
        row = (await conn.execute(delete(webhook_endpoints).where(
            webhook_endpoints.c.id == _endpoint_id(request),
            webhook_endpoints.c.organization_id == organization_id).returning(*webhook_endpoints.c))).one_or_none()
    if row is None:
        raise not_found("webhook_endpoint")
    return ok({"webhook_endpoint": render(row)})


ROUTES = [
    Route("/api/v1/webhook_endpoints", create_endpoint, methods=["POST"]),
    Route("/api/v1/webhook_endpoints", list_endpoints, methods=["GET"]),
    Route("/api/v1/webhook_endpoints/{lago_id}", get_endpoint, methods=["GET"]),
    Route("/api/v1/webhook_endpoints/{lago_id}", delete_endpoint, methods=["DELETE"]),
]
