"""Alembic environment: the URL comes from the caller's Config (meterline migrate), never from a file."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from core.db.tables import metadata

config = context.config
url = config.get_main_option("sqlalchemy.url")
if not url:
    raise RuntimeError("run migrations through `meterline migrate`, which passes the database URL")
engine = create_engine(url)
with engine.connect() as connection:
    context.configure(connection=connection, target_metadata=metadata, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()
engine.dispose()
