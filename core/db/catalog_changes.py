"""What changed in the catalog since a view of it was read: the `meterline_catalog` notifications that every
committed change to it sends (migration 0017), each naming a subscription's scope, an organization, or
everything.

The aggregator and the alerts worker cache their views of subscriptions (aggregator/catalog.py). Reading them
again every half second cost the aggregator half of its time with 10,000 subscriptions; with this, a view is
read again once something of its own changed (or after a longer safety time), and a change shows within
PING_S of its commit instead of within the half second.
"""

from __future__ import annotations

import asyncio
import logging
import time

from sqlalchemy.ext.asyncio import AsyncEngine

log = logging.getLogger("meterline.catalog")
CATALOG_CHANNEL = "meterline_catalog"
RECONNECT_S = 1.0
PING_S = 0.1  # a notification is read at the next ping at the latest
PING_TIMEOUT_S = 2.0
CONFIRMED_S = 0.5  # as long as the cache's fallback time-to-live (core/domain/lifecycle.py CATALOG_TTL_S)
REMEMBERED = 100_000  # changed scopes and organizations kept; past that, everything counts as changed


class CatalogChanges:
    """A clock of changes: `now()` before reading a view, `changed_since(moment, organization, scope)` after,
    to know whether it may be kept. A moment when a notification may have been missed (the listening
    connection made again) counts as a change of everything.

    `listening` says whether views can be trusted until a change: the connection proved it heard every change
    committed up to CONFIRMED_S ago. It is asked SELECT 1 every PING_S, and PostgreSQL sends a listening
    session's notifications before a query's answer, in order: an answer to a ping sent at T means every
    change committed before T was heard. A connection that died quietly (a half-open socket) stops answering,
    and within CONFIRMED_S views are trusted `ttl_s` only again; an upgrade waits UPGRADE_DELAY (1 s) for
    that (core/domain/lifecycle.py)."""

    def __init__(self, engine: AsyncEngine):
        self._dsn = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        self._task: asyncio.Future[None] | None = None
        self._clock = 0
        self._everything = 0  # when everything last changed
        self._organizations: dict[str, int] = {}
        self._scopes: dict[tuple[str, str], int] = {}
        self._confirmed_at = -CONFIRMED_S  # monotonic: changes committed before it were heard

    @property
    def listening(self) -> bool:
        return time.monotonic() - self._confirmed_at < CONFIRMED_S

    def now(self) -> int:
        return self._clock

    def changed_since(self, moment: int, organization_id: str, external_id: str) -> bool:
        return max(self._everything, self._organizations.get(organization_id, 0),
                   self._scopes.get((organization_id, external_id), 0)) > moment

    def start(self) -> None:
        """Listen from now on, in a task of the running loop (once)."""
        if self._task is None:
            self._task = asyncio.ensure_future(self._listen())

    def heard(self, payload: str) -> None:
        """One notification: `scope:<organization>:<external_id>`, `organization:<organization>`, or anything
        else for everything."""
        self._clock += 1
        kind, _, rest = payload.partition(":")
        if kind == "scope" and ":" in rest:
            organization_id, _, external_id = rest.partition(":")
            self._scopes[(organization_id, external_id)] = self._clock
        elif kind == "organization" and rest:
            self._organizations[rest] = self._clock
        else:
            self._everything = self._clock
        if len(self._scopes) + len(self._organizations) > REMEMBERED:
            self._scopes.clear()
            self._organizations.clear()
            self._everything = self._clock

    async def _listen(self) -> None:
        import psycopg

        while True:
            try:
                async with await psycopg.AsyncConnection.connect(self._dsn, autocommit=True,
                                                                 connect_timeout=5) as conn:
                    conn.add_notify_handler(lambda notification: self.heard(notification.payload))
                    await conn.execute(f"LISTEN {CATALOG_CHANNEL}")
                    self.heard("")  # whatever changed while nobody listened
                    while True:
                        asked = time.monotonic()
                        await asyncio.wait_for(conn.execute("SELECT 1"), PING_TIMEOUT_S)
                        self._confirmed_at = asked
                        await asyncio.sleep(PING_S)
            except Exception as exc:  # noqa: BLE001 - whatever broke the connection, short trust covers meanwhile
                log.warning("listening for catalog changes failed, reading the catalog more often meanwhile: %r", exc)
            await asyncio.sleep(RECONNECT_S)
