"""/api/v1/test_clocks: rehearse billing through time (a meterline addition, after Stripe's test clocks).

A customer created with `test_clock_id` (or given one before its first subscription) lives on that clock: every
"now" that concerns it is the clock's `frozen_time` (core.db.clocks). `POST /test_clocks/{id}/advance` moves the
clock forward and runs what would have happened meanwhile (rater.clocks), answering once it has (`ready`).
Deleting a clock ends its simulation: its customers are deleted, their subscriptions terminated at its time.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection
from starlette.requests import Request
from starlette.routing import Route

from core.apikeys import authenticate
from core.db.tables import customers, subscriptions, test_clocks
from core.http import JSONResponse, ok, read_json, validation_error
from rater import serializers
from rater.activation import terminate
from rater.api.common import engine, new_id, org_and_input, own_id, page_params, paginate
from rater.clocks import MAX_ADVANCE, clock_lease, run_clock
from rater.inputs import INVALID, Input

EARLIEST = datetime.fromisoformat("2000-01-01T00:00:00+00:00")  # a clock is no earlier
LATEST = datetime.fromisoformat("2200-01-01T00:00:00+00:00")  # nor later


def frozen_time_of(data: Input) -> datetime | None:
    frozen = data.moment("frozen_time")
    if frozen is None and not data.errors.get("frozen_time"):
        data.fail("frozen_time", "value_is_mandatory")
    elif frozen is not None and not EARLIEST <= frozen < LATEST:
        data.fail("frozen_time", INVALID)
    return frozen


async def _documents(conn: AsyncConnection, clock_ids: list[str]) -> list[dict[str, object]]:
    """The clocks in the order given, each with its live customers counted (two queries for a page)."""
    rows = {row.id: row for row in await conn.execute(select(test_clocks).where(test_clocks.c.id.in_(clock_ids)))}
    counts = dict((await conn.execute(
        select(customers.c.test_clock_id, func.count()).where(customers.c.test_clock_id.in_(clock_ids),
                                                              customers.c.deleted_at.is_(None))
        .group_by(customers.c.test_clock_id))).tuples().all())
    return [serializers.test_clock(rows[clock_id], counts.get(clock_id, 0)) for clock_id in clock_ids]


async def _document(conn: AsyncConnection, clock_id: str) -> dict[str, object]:
    return (await _documents(conn, [clock_id]))[0]


async def _own_clock(conn: AsyncConnection, organization_id: str, lago_id: str) -> str:
    return await own_id(conn, test_clocks, organization_id, lago_id, "test_clock", test_clocks.c.deleted_at.is_(None))


async def create_test_clock(request: Request) -> JSONResponse:
    organization_id, raw = await org_and_input(request, "test_clock")
    data = Input(raw)
    name = data.text("name", required=True)
    frozen = frozen_time_of(data)
    data.check()
    async with engine(request).begin() as conn:
        clock_id = new_id()
        await conn.execute(test_clocks.insert().values(id=clock_id, organization_id=organization_id, name=name,
                                                       frozen_time=frozen))
        return ok({"test_clock": await _document(conn, clock_id)})


async def get_test_clock(request: Request) -> JSONResponse:
    organization_id = await authenticate(request)
    async with engine(request).connect() as conn:
        clock_id = await _own_clock(conn, organization_id, request.path_params["lago_id"])
        return ok({"test_clock": await _document(conn, clock_id)})


async def list_test_clocks(request: Request) -> JSONResponse:
    organization_id = await authenticate(request)
    page, per_page = page_params(request)
    query = (select(test_clocks.c.id).where(test_clocks.c.organization_id == organization_id,
                                            test_clocks.c.deleted_at.is_(None))
             .order_by(test_clocks.c.created_at.desc(), test_clocks.c.id))
    async with engine(request).connect() as conn:
        rows, meta = await paginate(conn, query, page, per_page)
        return ok({"test_clocks": await _documents(conn, [row.id for row in rows]), "meta": meta})


async def advance_test_clock(request: Request) -> JSONResponse:
    """Move the clock forward to `frozen_time` (never back: 422), then run what would have happened meanwhile;
    answered once it has run (`status: ready`)."""
    organization_id = await authenticate(request)
    body = await read_json(request, request.app.state.max_body_bytes)
    data = Input(body.get("test_clock", body) if isinstance(body, dict) else body)
    frozen = frozen_time_of(data)
    data.check()
    async with engine(request).begin() as conn:
        clock_id = await _own_clock(conn, organization_id, request.path_params["lago_id"])
        current = (await conn.execute(select(test_clocks.c.frozen_time).where(test_clocks.c.id == clock_id)
                                      .with_for_update())).scalar_one()
        if frozen is None or frozen <= current:
            raise validation_error({"frozen_time": ["must_be_after_current_frozen_time"]})
        if frozen - current > MAX_ADVANCE:  # each moment meanwhile is billed in turn: a bounded amount of work
            raise validation_error({"frozen_time": ["value_is_out_of_range"]})
        await conn.execute(update(test_clocks).where(test_clocks.c.id == clock_id).values(
            frozen_time=frozen, status="advancing", updated_at=func.now()))
    await run_clock(engine(request), clock_id)
    async with engine(request).connect() as conn:
        return ok({"test_clock": await _document(conn, clock_id)})


async def delete_test_clock(request: Request) -> JSONResponse:
    """Delete the clock and what lives on it: its customers are deleted, their subscriptions terminated at its
    time (nothing more is billed: only advancing bills a clock's customers)."""
    organization_id = await authenticate(request)
    async with engine(request).connect() as conn:
        clock_id = await _own_clock(conn, organization_id, request.path_params["lago_id"])
    async with clock_lease(engine(request), clock_id), engine(request).begin() as conn:  # after a run going on
        clock_id = await _own_clock(conn, organization_id, clock_id)  # and not deleted meanwhile
        frozen = (await conn.execute(select(test_clocks.c.frozen_time).where(test_clocks.c.id == clock_id)
                                     .with_for_update())).scalar_one()
        theirs = select(customers.c.id).where(customers.c.test_clock_id == clock_id)
        await terminate(conn, frozen, subscriptions.c.customer_id.in_(theirs))
        await conn.execute(update(customers).where(customers.c.test_clock_id == clock_id,
                                                   customers.c.deleted_at.is_(None))
                           .values(deleted_at=frozen, updated_at=func.now()))
        document = await _document(conn, clock_id)
        await conn.execute(update(test_clocks).where(test_clocks.c.id == clock_id).values(
            deleted_at=func.now(), updated_at=func.now()))
    return ok({"test_clock": document})


ROUTES = [
    Route("/api/v1/test_clocks", create_test_clock, methods=["POST"]),
    Route("/api/v1/test_clocks", list_test_clocks, methods=["GET"]),
    Route("/api/v1/test_clocks/{lago_id}", get_test_clock, methods=["GET"]),
    Route("/api/v1/test_clocks/{lago_id}", delete_test_clock, methods=["DELETE"]),
    Route("/api/v1/test_clocks/{lago_id}/advance", advance_test_clock, methods=["POST"]),
]
