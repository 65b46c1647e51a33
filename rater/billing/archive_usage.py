"""A usage window's aggregates from the PostgreSQL event archive (the durable ledger), in one query.

The aggregates agree with the aggregator's Redis state (core/domain/aggregation.py `fold`):
- count_agg: events; sum_agg: exact numeric sum; max_agg: largest value (0 without events);
- latest_agg: value of the newest event (among equal timestamps the one archived last), negative → 0
  when priced (core.domain.charges.units_of);
- unique_count_agg: distinct `str(value)` as Python writes it (booleans True/False; JSON numbers with
  a fraction keep it without trailing zeros, e.g. 1.50 → "1.5");
- weighted_sum_agg: sum of value × (period end − timestamp) in microseconds over the period length,
  rounded half-even to 6 decimals, as the aggregator's `weighted_units`.
Only applied events are archived, so every archived value passed the aggregator's validation.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from core.domain.aggregation import UNITS_QUANTUM, Metric, MetricUsage
from core.domain.periods import Period
from schemas.events import epoch_us

_NUMBER = r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$"


def _numeric(field: str) -> str:
    value = f"(properties ->> :{field})"
    return (f"(CASE jsonb_typeof(properties -> :{field}) WHEN 'number' THEN CAST({value} AS numeric) "
            f"WHEN 'string' THEN CASE WHEN btrim({value}) ~ '{_NUMBER}' THEN CAST(btrim({value}) AS numeric) END END)")


def _unique_text(field: str) -> str:
    value = f"(properties ->> :{field})"
    kind = f"jsonb_typeof(properties -> :{field})"
    trimmed = f"CAST(trim_scale(CAST({value} AS numeric)) AS text)"
    return (f"(CASE {kind} WHEN 'boolean' THEN CASE {value} WHEN 'true' THEN 'True' ELSE 'False' END "
            f"WHEN 'number' THEN CASE WHEN strpos({value}, '.') > 0 THEN "
            f"CASE WHEN strpos({trimmed}, '.') > 0 THEN {trimmed} ELSE {trimmed} || '.0' END "
            f"ELSE {value} END ELSE {value} END)")


def _columns(index: int, metric: Metric) -> list[str]:
    where = f"FILTER (WHERE code = :c{index})"
    columns = [f"count(*) {where} AS n{index}"]
    kind = metric.aggregation_type
    if kind == "count_agg" or metric.field_name is None:
        return columns
    if kind == "unique_count_agg":
        return [*columns, f"count(DISTINCT {_unique_text(f'f{index}')}) {where} AS u{index}"]
    number = _numeric(f"f{index}")
    if kind == "sum_agg":
        return [*columns, f"sum({number}) {where} AS s{index}"]
    if kind == "max_agg":
        return [*columns, f"max({number}) {where} AS x{index}"]
    if kind == "latest_agg":
        return [*columns, f"(array_agg({number} ORDER BY timestamp DESC, created_at DESC) {where})[1] AS l{index}"]
    if kind == "weighted_sum_agg":
        span = "(:period_end_us - CAST(extract(epoch FROM timestamp) * 1000000 AS numeric))"
        return [*columns, f"sum({number} * {span}) {where} AS w{index}"]
    return columns


def _usage(index: int, metric: Metric, row: Any, period_us: int) -> MetricUsage:
    count = int(getattr(row, f"n{index}") or 0)
    kind = metric.aggregation_type

    def value(prefix: str) -> Decimal:
        raw = getattr(row, f"{prefix}{index}", None)
        return Decimal(raw) if raw is not None else Decimal(0)

    if kind == "unique_count_agg":
        distinct = int(getattr(row, f"u{index}", 0) or 0)
        return MetricUsage(distinct, distinct, Decimal(0), Decimal(0), Decimal(0))
    weighted = Decimal(0)
    if kind == "weighted_sum_agg" and period_us > 0:
        weighted = (value("w") / period_us).quantize(UNITS_QUANTUM)
    return MetricUsage(0, count, value("s"), value("x"), value("l"), weighted)


def _params(organization_id: str, window: Period, period: Period, unique: list[Metric]) -> tuple[dict, list]:
    params: dict[str, Any] = {"org": organization_id, "start": window.start, "end": window.end,
                              "codes": [m.code for m in unique],
                              "period_end_us": epoch_us(period.end)}
    columns: list[str] = []
    for index, metric in enumerate(unique):
        params[f"c{index}"] = metric.code
        if metric.field_name is not None:
            params[f"f{index}"] = metric.field_name
        columns += _columns(index, metric)
    return params, columns


_WHERE = ("FROM events WHERE organization_id = :org AND timestamp >= :start AND timestamp < :end "
          "AND code = ANY(:codes)")


async def windows_usage(conn: AsyncConnection, organization_id: str, external_subscription_ids: Sequence[str],
                        window: Period, period: Period, metrics: Sequence[Metric]
                        ) -> dict[str, dict[str, MetricUsage]]:
    """Aggregates of every metric over `window` for many subscriptions sharing it, in one query.
    Subscriptions without events are absent from the answer (their usage is zero)."""
    unique = list({m.id: m for m in metrics}.values())
    if not unique or not external_subscription_ids:
        return {}
    params, columns = _params(organization_id, window, period, unique)
    params["subs"] = list(external_subscription_ids)
    query = text(f"SELECT external_subscription_id, {', '.join(columns)} {_WHERE} "  # noqa: S608
                 "AND external_subscription_id = ANY(:subs) GROUP BY external_subscription_id")
    period_us = (period.end - period.start) // timedelta(microseconds=1)
    return {row.external_subscription_id: {m.id: _usage(i, m, row, period_us) for i, m in enumerate(unique)}
            for row in (await conn.execute(query, params)).all()}


async def window_usage(conn: AsyncConnection, organization_id: str, external_subscription_id: str,
                       window: Period, period: Period, metrics: Sequence[Metric]) -> dict[str, MetricUsage]:
    """Aggregates of every metric over the events of `window` (within the billing `period`)."""
    found = await windows_usage(conn, organization_id, [external_subscription_id], window, period, metrics)
    return found.get(external_subscription_id, {})
