"""Operations endpoints of the API: /metrics (Prometheus), /ops (the page), /ops/data (its JSON), /ready."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from meterline.http import JSONResponse, ok

PAGE = (Path(__file__).resolve().parents[1] / "static" / "ops.html").read_text()


async def metrics(request: Request) -> Response:
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)


async def ops_page(request: Request) -> HTMLResponse:
    return HTMLResponse(PAGE)


async def ops_data(request: Request) -> JSONResponse:
    return ok(request.app.state.monitor.ops_data())


ROUTES = [
    Route("/metrics", metrics, methods=["GET"]),
    Route("/ops", ops_page, methods=["GET"]),
    Route("/ops/data", ops_data, methods=["GET"]),
]
