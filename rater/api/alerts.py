"""/api/v1/subscriptions/{external_id}/alerts: a subscription's usage alerts (Lago's).

An alert watches one value of the subscription's usage (`alert_type`: the current period's amount, one
metric's amount or units, or the amount since the external_id's first start) and fires when it crosses
its thresholds; the alerts worker evaluates them (aggregator/alerts.py). Alerts belong to the external_id,
so they follow its plan changes; the external_id must name a live (active or pending) subscription.

As in Lago: one live alert per type (per type and metric for the metric types: `alert_already_exists`),
codes unique among the external_id's live alerts, at most 20 thresholds. `POST` takes `{"alert": {...}}`
or, all or nothing, `{"alerts": [...]}` (errors keyed by index). `DELETE` marks alerts deleted (their
triggered alerts stay), so a code can be used again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import ColumnElement, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection
from starlette.requests import Request
from starlette.routing import Route

from core.apikeys import authenticate
from core.db.locks import lock_external_id
from core.db.tables import alerts, billable_metrics, threshold_states, triggered_alerts
from core.domain.charges import units_text
from core.domain.lifecycle import LIVE, STATUSES
from core.domain.thresholds import ALERT_TYPES, METRIC_ALERT_TYPES
from core.http import JSONResponse, not_found, ok, read_json, root_object, validation_error
from rater import serializers
from rater.api.common import engine, new_id, page_params, paginate
from rater.api.subscriptions import find_subscription
from rater.inputs import BAD_FORMAT, INVALID, MANDATORY, MAX_AMOUNT_CENTS, NOT_SUPPORTED, TAKEN, Input

MAX_THRESHOLDS = 20  # Lago's limit per alert
MAX_BATCH = 100  # alerts per POST: one evaluation compares each of them with every usage change
MAX_DECIMALS = 5  # Lago keeps threshold values with 5 decimals
MAX_VALUE = Decimal(MAX_AMOUNT_CENTS)  # cents, or units
TRIGGERED_SHOWN = 20  # the latest triggered alerts shown on an alert
_VALUE_TEXT_LENGTH = 64


@dataclass
class AlertInput:
    """An alert's fields as given (None: not given), validated."""

    alert_type: str | None
    code: str | None
    name: str | None
    metric_code: str | None
    thresholds: list[dict[str, Any]] | None
    name_given: bool


def _threshold_value(raw: Any) -> Decimal | None:
    """A threshold value: an integer, a finite number or a decimal string; None when it is none of them."""
    if isinstance(raw, bool):
        return None
    try:
        if isinstance(raw, int):
            value = Decimal(raw)
        elif isinstance(raw, float):
            value = Decimal(repr(raw))
        elif isinstance(raw, str) and len(raw) <= _VALUE_TEXT_LENGTH:
            value = Decimal(raw.strip())
        else:
            return None
    except (InvalidOperation, ValueError):
        return None
    return value if value.is_finite() else None


def _decimals(value: Decimal) -> int:
    exponent = value.normalize().as_tuple().exponent
    return -exponent if isinstance(exponent, int) and exponent < 0 else 0


def read_thresholds(raw: Any, errors: dict[str, list[str]]) -> list[dict[str, Any]] | None:
    """Validated thresholds, stored as `{code, value, recurring}` in ascending order of value (decimal text as
    Lago writes it); None when there are none to store. Lago's codes and keys (`thresholds:value`)."""
    def fail(field: str, code: str) -> None:
        if code not in errors.setdefault(field, []):
            errors[field].append(code)

    if raw is None or raw == []:
        fail("thresholds", MANDATORY)
        return None
    if not isinstance(raw, list):
        fail("thresholds", BAD_FORMAT)
        return None
    if len(raw) > MAX_THRESHOLDS:
        fail("thresholds", "too_many_thresholds")
        return None
    found: list[tuple[Decimal, dict[str, Any]]] = []
    for item in raw:
        if not isinstance(item, dict):
            fail("thresholds", BAD_FORMAT)
            continue
        data = Input(item)
        code = data.text("code")
        recurring = data.boolean("recurring")
        for field, codes in data.errors.items():
            for error in codes:
                fail(f"thresholds:{field}", error)
        value = _threshold_value(item.get("value"))
        if item.get("value") is None:
            fail("thresholds:value", MANDATORY)
        elif value is None or abs(value) > MAX_VALUE or _decimals(value) > MAX_DECIMALS:
            fail("thresholds:value", INVALID)
        elif recurring and value <= 0:
            fail("thresholds:value", "recurring_value_is_negative")  # a recurring step must move forward
        elif value <= 0:
            fail("thresholds:value", INVALID)  # usage starts at 0: a threshold at or below it never fires
        elif not data.errors:
            found.append((value, {"code": code, "value": units_text(value),
                                  "recurring": bool(recurring)}))
    keys = [(value, threshold["recurring"]) for value, threshold in found]
    if len(set(keys)) != len(keys):
        fail("thresholds", "duplicate_threshold_values")
    if sum(recurring for _, recurring in keys) > 1:
        fail("thresholds:recurring", INVALID)  # one recurring threshold at most
    found.sort(key=lambda pair: (pair[0], pair[1]["recurring"]))
    return [threshold for _, threshold in found]


def read_alert(raw: Any, *, creating: bool) -> tuple[AlertInput, dict[str, list[str]]]:
    """An alert of a create (every field required but `name` and `billable_metric_code`) or an update."""
    if not isinstance(raw, dict):
        return AlertInput(None, None, None, None, None, False), {"alert": [BAD_FORMAT]}
    data = Input(raw)
    alert_type = None
    if creating:
        if raw.get("alert_type") is None:
            data.errors["alert_type"] = [MANDATORY, INVALID]  # Lago's pair
        else:
            alert_type = data.text("alert_type")
            if alert_type is not None and alert_type not in ALERT_TYPES:
                data.fail("alert_type", "invalid_type")
                alert_type = None
    elif raw.get("alert_type") is not None:  # an alert's type is what it is: the update handler compares
        alert_type = data.text("alert_type")
    if raw.get("direction") not in (None, "increasing"):  # Lago's `decreasing` alerts: not evaluated here
        data.fail("direction", NOT_SUPPORTED)
    code = data.identifier("code", required=creating)
    name = data.text("name")
    metric_code = data.identifier("billable_metric_code")
    thresholds = None
    if creating or data.given_of("thresholds"):  # an update without them (null, []) keeps them, as Lago does
        thresholds = read_thresholds(raw.get("thresholds"), data.errors)
    if creating and alert_type is not None:
        if alert_type in METRIC_ALERT_TYPES and metric_code is None and "billable_metric_code" not in data.errors:
            data.fail("billable_metric", MANDATORY)
        elif alert_type not in METRIC_ALERT_TYPES and metric_code is not None:
            data.fail("billable_metric", "value_must_be_blank")
    return AlertInput(alert_type, code, name, metric_code, thresholds, data.given("name")), data.errors


def subscription_statuses(request: Request) -> tuple[str, ...]:
    """Which subscription the path's external_id names (Lago's `subscription_status`): a live one by default;
    the alerts of a terminated or canceled one are not kept apart from those of its external_id's next one."""
    wanted = request.query_params.get("subscription_status")
    if wanted is None:
        return LIVE
    if wanted in LIVE:
        return (wanted,)
    raise validation_error({"subscription_status": [NOT_SUPPORTED if wanted in STATUSES else INVALID]})


async def _external_id(request: Request, conn: AsyncConnection, organization_id: str) -> str:
    """The path's external_id, once a live subscription of the organization has it (404 otherwise)."""
    row = await find_subscription(conn, organization_id, request.path_params["external_id"],
                                  subscription_statuses(request))
    return str(row.external_id)


def _live(organization_id: str, external_id: str) -> ColumnElement[bool]:
    return ((alerts.c.organization_id == organization_id) & (alerts.c.subscription_external_id == external_id)
            & alerts.c.deleted_at.is_(None))


async def _alert(conn: AsyncConnection, organization_id: str, external_id: str, code: str) -> Any:
    row = (await conn.execute(select(alerts).where(_live(organization_id, external_id), alerts.c.code == code))
           ).one_or_none()
    if row is None:
        raise not_found("alert")
    return row


async def _metric_ids(conn: AsyncConnection, organization_id: str, codes: set[str]) -> dict[str, str]:
    """The live metrics of these codes, by code."""
    if not codes:
        return {}
    rows = await conn.execute(select(billable_metrics.c.code, billable_metrics.c.id).where(
        billable_metrics.c.organization_id == organization_id, billable_metrics.c.code.in_(sorted(codes)),
        billable_metrics.c.deleted_at.is_(None)))
    return {code: str(metric_id) for code, metric_id in rows}


def _conflicts(wanted: dict[str, Any], others: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Lago's uniqueness among an external_id's live alerts: a code once; a type once (a metric type once per
    metric)."""
    errors: dict[str, list[str]] = {}
    if any(other["code"] == wanted["code"] for other in others):
        errors["code"] = [TAKEN]
    if any((other["alert_type"], other["billable_metric_id"]) == (wanted["alert_type"], wanted["billable_metric_id"])
           for other in others):
        errors["base"] = ["alert_already_exists"]
    return errors


def _unique_fields(row: Any) -> dict[str, Any]:
    return {"code": row.code, "alert_type": row.alert_type, "billable_metric_id": row.billable_metric_id}


async def documents(conn: AsyncConnection, rows: list[Any]) -> list[dict[str, Any]]:
    """Alerts as the API shows them: with their metric, their latest evaluation that fired and their latest
    triggered alerts (three queries for a page)."""
    if not rows:
        return []
    ids = [row.id for row in rows]
    metric_ids = sorted({row.billable_metric_id for row in rows if row.billable_metric_id})
    metrics = {row.id: row for row in await conn.execute(
        select(billable_metrics).where(billable_metrics.c.id.in_(metric_ids)))} if metric_ids else {}
    states = {row.subject_id: row for row in await conn.execute(
        select(threshold_states).where(threshold_states.c.subject_id.in_(ids))
        .order_by(threshold_states.c.subject_id, threshold_states.c.updated_at.desc())
        .distinct(threshold_states.c.subject_id))}
    ranked = select(triggered_alerts, func.row_number().over(
        partition_by=triggered_alerts.c.alert_id,
        order_by=(triggered_alerts.c.triggered_at.desc(), triggered_alerts.c.id)).label("rank")
    ).where(triggered_alerts.c.alert_id.in_(ids)).subquery()
    triggered: dict[str, list[Any]] = {}
    for row in await conn.execute(select(ranked).where(ranked.c.rank <= TRIGGERED_SHOWN)
                                  .order_by(ranked.c.alert_id, ranked.c.rank)):
        triggered.setdefault(row.alert_id, []).append(row)
    return [serializers.alert(row, metrics.get(row.billable_metric_id), states.get(row.id), triggered.get(row.id, []))
            for row in rows]


async def _create(conn: AsyncConnection, organization_id: str, external_id: str, wanted: list[AlertInput],
                  batch: bool) -> list[Any]:
    """Insert every alert, or none: 404 for an unknown metric of one alert, 422 when one is taken (a batch keys
    each alert's errors by its index)."""
    await lock_external_id(conn, organization_id, external_id)  # the uniqueness checks see every write before
    metric_ids = await _metric_ids(conn, organization_id, {w.metric_code for w in wanted if w.metric_code})
    others = [_unique_fields(row) for row in await conn.execute(select(alerts).where(_live(organization_id,
                                                                                           external_id)))]
    errors: dict[str, Any] = {}
    values: list[dict[str, Any]] = []
    for index, alert in enumerate(wanted):
        metric_id = metric_ids.get(alert.metric_code) if alert.metric_code else None
        if alert.metric_code and metric_id is None:
            if not batch:
                raise not_found("billable_metric")
            errors[str(index)] = {"billable_metric": ["billable_metric_not_found"]}
            continue
        row = {"id": new_id(), "organization_id": organization_id, "subscription_external_id": external_id,
               "alert_type": alert.alert_type, "code": alert.code, "name": alert.name,
               "billable_metric_id": metric_id, "thresholds": alert.thresholds}
        conflicts = _conflicts(row, others)
        if conflicts:
            errors[str(index)] = conflicts
        others.append(row)
        values.append(row)
    if errors:
        raise validation_error(errors if batch else errors["0"])
    try:
        async with conn.begin_nested():
            return list((await conn.execute(alerts.insert().returning(*alerts.c), values)).all())
    except IntegrityError as exc:  # cannot happen under the lock; a clear 422 rather than a 500 if it does
        raise validation_error({"code": [TAKEN]}) from exc


def _read_create(body: Any) -> tuple[list[AlertInput], bool]:
    """The alerts of a POST: `{"alert": {...}}`, or `{"alerts": [...]}` (a batch) when that key holds something,
    as Lago reads it."""
    batch = isinstance(body, dict) and Input(body).given_of("alerts") == ["alerts"]
    if not batch:
        alert, errors = read_alert(root_object(body, "alert"), creating=True)
        if errors:
            raise validation_error(errors)
        return [alert], False
    raw = body["alerts"]
    if not isinstance(raw, list):
        raise validation_error({"alerts": [BAD_FORMAT]})
    if len(raw) > MAX_BATCH:
        raise validation_error({"alerts": ["too_many_alerts"]})
    parsed = [read_alert(item, creating=True) for item in raw]
    batch_errors = {str(index): errors for index, (_, errors) in enumerate(parsed) if errors}
    if batch_errors:
        raise validation_error(batch_errors)
    return [alert for alert, _ in parsed], True


async def create_alerts(request: Request) -> JSONResponse:
    organization_id = await authenticate(request)
    body = await read_json(request, request.app.state.max_body_bytes)
    async with engine(request).begin() as conn:
        external_id = await _external_id(request, conn, organization_id)  # 404 first, as Lago answers
        wanted, batch = _read_create(body)
        created = await documents(conn, await _create(conn, organization_id, external_id, wanted, batch))
    return ok({"alerts": created} if batch else {"alert": created[0]})


async def list_alerts(request: Request) -> JSONResponse:
    organization_id = await authenticate(request)
    page, per_page = page_params(request)
    async with engine(request).begin() as conn:
        external_id = await _external_id(request, conn, organization_id)
        rows, meta = await paginate(conn, select(alerts).where(_live(organization_id, external_id))
                                    .order_by(alerts.c.created_at.desc(), alerts.c.id), page, per_page)
        return ok({"alerts": await documents(conn, rows), "meta": meta})


async def get_alert(request: Request) -> JSONResponse:
    organization_id = await authenticate(request)
    async with engine(request).begin() as conn:
        external_id = await _external_id(request, conn, organization_id)
        row = await _alert(conn, organization_id, external_id, request.path_params["code"])
        return ok({"alert": (await documents(conn, [row]))[0]})


async def update_alert(request: Request) -> JSONResponse:
    """PUT: `name`, `code`, `thresholds` (the new list) and `billable_metric_code` (alerts of a metric type)."""
    organization_id = await authenticate(request)
    body = await read_json(request, request.app.state.max_body_bytes)
    async with engine(request).begin() as conn:
        external_id = await _external_id(request, conn, organization_id)
        await lock_external_id(conn, organization_id, external_id)
        row = await _alert(conn, organization_id, external_id, request.path_params["code"])
        wanted, errors = read_alert(root_object(body, "alert"), creating=False)
        if errors:
            raise validation_error(errors)
        changes: dict[str, Any] = {}
        if wanted.alert_type is not None and wanted.alert_type != row.alert_type:
            raise validation_error({"alert_type": [INVALID]})  # as Lago, the type of an alert never changes
        if wanted.metric_code is not None:
            if row.alert_type not in METRIC_ALERT_TYPES:
                raise validation_error({"billable_metric": ["value_must_be_blank"]})
            metric_id = (await _metric_ids(conn, organization_id, {wanted.metric_code})).get(wanted.metric_code)
            if metric_id is None:
                raise not_found("billable_metric")
            changes["billable_metric_id"] = metric_id
        if wanted.code is not None:
            changes["code"] = wanted.code
        if wanted.name_given:
            changes["name"] = wanted.name
        if wanted.thresholds is not None:
            changes["thresholds"] = wanted.thresholds
        others = [_unique_fields(other) for other in await conn.execute(
            select(alerts).where(_live(organization_id, external_id), alerts.c.id != row.id))]
        conflicts = _conflicts({**_unique_fields(row), **changes}, others)
        if conflicts:
            raise validation_error(conflicts)
        if changes:
            row = (await conn.execute(update(alerts).where(alerts.c.id == row.id)
                                      .values(**changes, updated_at=func.now()).returning(*alerts.c))).one()
        return ok({"alert": (await documents(conn, [row]))[0]})


async def _delete(conn: AsyncConnection, where: ColumnElement[bool]) -> list[dict[str, Any]]:
    rows = (await conn.execute(update(alerts).where(where).values(deleted_at=datetime.now(UTC))
                               .returning(*alerts.c))).all()
    return await documents(conn, sorted(rows, key=lambda row: (row.created_at, row.id), reverse=True))


async def delete_alert(request: Request) -> JSONResponse:
    organization_id = await authenticate(request)
    async with engine(request).begin() as conn:
        external_id = await _external_id(request, conn, organization_id)
        row = await _alert(conn, organization_id, external_id, request.path_params["code"])
        return ok({"alert": (await _delete(conn, alerts.c.id == row.id))[0]})


async def delete_alerts(request: Request) -> JSONResponse:
    """Every live alert of the external_id (Lago answers an empty 200; meterline lists what it deleted)."""
    organization_id = await authenticate(request)
    async with engine(request).begin() as conn:
        external_id = await _external_id(request, conn, organization_id)
        return ok({"alerts": await _delete(conn, _live(organization_id, external_id))})


# Before the subscription routes, whose `{external_id:path}` would take these paths.
ROUTES = [
    Route("/api/v1/subscriptions/{external_id:path}/alerts", create_alerts, methods=["POST"]),
    Route("/api/v1/subscriptions/{external_id:path}/alerts", list_alerts, methods=["GET"]),
    Route("/api/v1/subscriptions/{external_id:path}/alerts", delete_alerts, methods=["DELETE"]),
    Route("/api/v1/subscriptions/{external_id:path}/alerts/{code:path}", get_alert, methods=["GET"]),
    Route("/api/v1/subscriptions/{external_id:path}/alerts/{code:path}", update_alert, methods=["PUT"]),
    Route("/api/v1/subscriptions/{external_id:path}/alerts/{code:path}", delete_alert, methods=["DELETE"]),
]
