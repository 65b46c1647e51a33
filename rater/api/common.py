"""What every handler needs: the caller's organization, its JSON input, the database, pagination."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import ColumnElement, Select, Table, func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from starlette.requests import Request

from core.apikeys import authenticate
from core.http import bad_request, canonical_uuid, not_found, read_json, root_object
from rater.serializers import pagination

DEFAULT_PER_PAGE = 100
MAX_PER_PAGE = 1000
MAX_PAGE = 2**31 - 1  # past it, the offset would overflow PostgreSQL's bigint and the answer orjson's integers


def new_id() -> str:
    return str(uuid.uuid4())


async def own_id(conn: AsyncConnection, table: Table, organization_id: str, lago_id: str, resource: str,
                 *where: ColumnElement[bool]) -> str:
    """The id of the row `lago_id` of `table` in the caller's organization (and matching `where`); else
    404 `<resource>_not_found`, also for a malformed id."""
    wanted = canonical_uuid(lago_id)
    if wanted is None:
        raise not_found(resource)
    found = (await conn.execute(select(table.c.id).where(
        table.c.id == wanted, table.c.organization_id == organization_id, *where))).scalar_one_or_none()
    if found is None:
        raise not_found(resource)
    return str(found)


async def live_by_code(conn: AsyncConnection, table: Table, organization_id: str, code: str, resource: str, *,
                       for_update: bool = False) -> Any:
    """The caller's live (not deleted) row of `table` with this code; else 404 `<resource>_not_found`.
    `for_update`: FOR NO KEY UPDATE until the transaction ends, which rows pointing at it (FOR KEY SHARE, what
    a foreign key takes) neither wait for nor deadlock with."""
    query = select(table).where(table.c.organization_id == organization_id, table.c.code == code,
                                table.c.deleted_at.is_(None))
    row = (await conn.execute(query.with_for_update(key_share=True) if for_update else query)).one_or_none()
    if row is None:
        raise not_found(resource)
    return row


def engine(request: Request) -> AsyncEngine:
    return request.app.state.engine


async def org_and_input(request: Request, root: str) -> tuple[str, Any]:
    organization_id = await authenticate(request)
    body = await read_json(request, request.app.state.max_body_bytes)
    return organization_id, root_object(body, root)


def page_params(request: Request) -> tuple[int, int]:
    try:
        page = int(request.query_params.get("page", "1"))
        per_page = int(request.query_params.get("per_page", str(DEFAULT_PER_PAGE)))
    except ValueError as exc:
        raise bad_request("page and per_page must be integers") from exc
    if not 1 <= page <= MAX_PAGE or not 1 <= per_page <= MAX_PER_PAGE:
        raise bad_request(f"page must be between 1 and {MAX_PAGE} and per_page between 1 and {MAX_PER_PAGE}")
    return page, per_page


async def paginate(conn: AsyncConnection, query: Select, page: int, per_page: int) -> tuple[list[Any], dict]:
    total = (await conn.execute(select(func.count()).select_from(query.order_by(None).subquery()))).scalar_one()
    rows = (await conn.execute(query.limit(per_page).offset((page - 1) * per_page))).all()
    return list(rows), pagination(page, per_page, total)
