"""Which cached views a catalog notification outdates (core/db/catalog_changes.py, pure part)."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from core.db import catalog_changes
from core.db.catalog_changes import CONFIRMED_S, CatalogChanges


def changes() -> CatalogChanges:
    return CatalogChanges(create_async_engine("postgresql+psycopg://u:p@127.0.0.1:1/db"))


def test_a_scope_s_change_outdates_that_scope_only_and_only_views_read_before_it() -> None:
    found = changes()
    before = found.now()
    found.heard("scope:org-1:sub:with:colons")
    assert found.changed_since(before, "org-1", "sub:with:colons")
    assert not found.changed_since(before, "org-1", "other")
    assert not found.changed_since(before, "org-2", "sub:with:colons")
    assert not found.changed_since(found.now(), "org-1", "sub:with:colons")  # read after it: current


def test_an_organization_s_change_outdates_all_its_scopes_and_an_unnamed_one_everything() -> None:
    found = changes()
    before = found.now()
    found.heard("organization:org-1")
    assert found.changed_since(before, "org-1", "any")
    assert not found.changed_since(before, "org-2", "any")
    middle = found.now()
    found.heard("")  # a TRUNCATE, or the listening connection made or lost
    assert found.changed_since(middle, "org-2", "any")
    found.heard("nonsense")
    assert found.changed_since(found.now() - 1, "org-3", "x")


def test_views_are_trusted_long_only_while_a_ping_answered_within_half_a_second(
        monkeypatch: pytest.MonkeyPatch) -> None:
    found = changes()
    clock = [1000.0]
    monkeypatch.setattr(catalog_changes.time, "monotonic", lambda: clock[0])
    assert not found.listening  # never confirmed
    found._confirmed_at = 1000.0  # a ping sent then was answered
    clock[0] = 1000.0 + CONFIRMED_S - 0.01
    assert found.listening
    clock[0] = 1000.0 + CONFIRMED_S  # the connection died quietly: no answer since
    assert not found.listening
