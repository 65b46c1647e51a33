"""What time it is for a customer: its test clock's `frozen_time` when it lives on one, else the wall clock's.

One home for "now" wherever it concerns a customer: subscriptions starting, changing plan and ending,
activation, trial ends, progressive billing crossings, current usage. A clock's customers are billed only as
their clock advances (rater.clocks); the real-time billing rounds and `meterline bill` leave them alone
(`on_clock(None)`).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ColumnElement, func, literal, select
from sqlalchemy.ext.asyncio import AsyncConnection

from core.db.tables import customers, test_clocks


def customer_now(customer_id: ColumnElement[str]) -> ColumnElement[datetime]:
    """SQL, per row: the time for the customer `customer_id` names (its clock's, else the transaction's)."""
    frozen = (select(test_clocks.c.frozen_time).join(customers, customers.c.test_clock_id == test_clocks.c.id)
              .where(customers.c.id == customer_id).scalar_subquery())
    return func.coalesce(frozen, func.now())


async def now_for(conn: AsyncConnection, customer_id: str) -> datetime:
    """The time for one customer: its clock's frozen_time, else the transaction's (`customer_now`, read once)."""
    now: datetime = (await conn.execute(select(customer_now(literal(customer_id, customers.c.id.type))))).scalar_one()
    return now


def on_clock(clock_id: str | None) -> ColumnElement[bool]:
    """The customers of that clock; with None, the customers on no clock (billed as the wall clock goes)."""
    return customers.c.test_clock_id.is_(None) if clock_id is None else customers.c.test_clock_id == clock_id
