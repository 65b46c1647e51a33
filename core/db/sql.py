"""Query pieces every store shares."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import ColumnElement, any_, bindparam
from sqlalchemy.dialects.postgresql import ARRAY


def any_of(column: ColumnElement[Any], values: Iterable[Any]) -> ColumnElement[bool]:
    """`column = ANY(:values)`, one array parameter however many values. The workers look up thousands of
    subscriptions a batch: as an expanding `IN (...)`, rendering the statement and converting its thousands of
    placeholders (SQLAlchemy, then psycopg) cost the alerts worker a sixth of its time, more than PostgreSQL
    took to answer."""
    return column == any_(bindparam(None, sorted(set(values)), type_=ARRAY(column.type)))
