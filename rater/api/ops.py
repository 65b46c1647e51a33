"""Operations endpoints of the API: /ops (the page), /ops/data (its JSON), plus /ready and /metrics."""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from core.http import JSONResponse, ok
from core.ready import OPS_ROUTES

PAGE = (Path(__file__).resolve().parents[1] / "static" / "ops.html").read_text()


async def ops_page(request: Request) -> HTMLResponse:
    return HTMLResponse(PAGE)


async def ops_data(request: Request) -> JSONResponse:
    return ok(request.app.state.monitor.ops_data())


ROUTES = [
    *OPS_ROUTES,
    Route("/ops", ops_page, methods=["GET"]),
    Route("/ops/data", ops_data, methods=["GET"]),
]
