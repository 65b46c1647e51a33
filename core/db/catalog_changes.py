"""Whether the catalog changed since a view of it was read: the `meterline_catalog` notifications that every
committed change to it sends (migration 0017), counted as a generation number.

The aggregator and the alerts worker cache their views of subscriptions (aggregator/catalog.py). Reading them
again every half second cost the aggregator half of its time with 10,000 subscriptions; with this, a view is
read again once something changed (or after a longer safety time), and a change shows as soon as its
notification arrives, milliseconds after its commit, instead of within the half second.
"""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy.ext.asyncio import AsyncEngine

log = logging.getLogger("meterline.catalog")
CATALOG_CHANNEL = "meterline_catalog"
RECONNECT_S = 1.0


class CatalogChanges:
    """`generation` moves on with every notification, and whenever one may have been missed (the listening
    connection made or lost). `listening` says whether a cached view can be trusted until the generation moves;
    while it is False, only for a short time."""

    def __init__(self, engine: AsyncEngine):
        self.generation = 0
        self.listening = False
        self._dsn = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        self._task: asyncio.Future[None] | None = None

    def start(self) -> None:
        """Listen from now on, in a task of the running loop (once)."""
        if self._task is None:
            self._task = asyncio.ensure_future(self._listen())

    async def _listen(self) -> None:
        import psycopg

        while True:
            try:
                async with await psycopg.AsyncConnection.connect(self._dsn, autocommit=True) as conn:
                    await conn.execute(f"LISTEN {CATALOG_CHANNEL}")
                    self._moved(listening=True)
                    async for _ in conn.notifies():
                        self.generation += 1
            except Exception as exc:  # noqa: BLE001 - whatever broke the connection, short trust covers meanwhile
                log.warning("listening for catalog changes failed, reading the catalog more often meanwhile: %r", exc)
            self._moved(listening=False)
            await asyncio.sleep(RECONNECT_S)

    def _moved(self, listening: bool) -> None:
        self.generation += 1
        self.listening = listening
