"""`meterline org create` and `meterline org key rotate`: keys stored as hashes, rotation with a grace period."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import create_engine, select

from core.apikeys import key_hash
from core.db.tables import api_keys, organizations
from meterline.orgs import rotate_key
from tests.conftest import ROOT, Services, Stack


def meterline(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "meterline.cli", *args], capture_output=True, text=True,
                          cwd=ROOT, env=dict(os.environ), timeout=60)


def create_org(name: str) -> str:
    """`meterline org create NAME`, which must succeed; the key it printed."""
    created = meterline("org", "create", name)
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    assert key.startswith("ml_")
    return key


def status_with(stack: Stack, key: str) -> int:
    return httpx.get(f"{stack.api_url}/api/v1/plans", headers={"Authorization": f"Bearer {key}"},
                     timeout=10).status_code


def stored_keys(services: Services, name: str) -> list[tuple[str, datetime | None]]:
    engine = create_engine(services.sqlalchemy_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(select(api_keys.c.key_sha256, api_keys.c.expires_at)
                                .join(organizations, organizations.c.id == api_keys.c.organization_id)
                                .where(organizations.c.name == name).order_by(api_keys.c.created_at)).all()
    finally:
        engine.dispose()
    return [(row.key_sha256, row.expires_at) for row in rows]


def test_rotation_keeps_the_old_key_working_for_the_grace_period(stack: Stack, services: Services,
                                                                 unique: str) -> None:
    name = f"rotate-{unique}"
    old = create_org(name)
    rotated = meterline("org", "key", "rotate", name, "--grace-hours", "2")
    assert rotated.returncode == 0, rotated.stderr
    new = rotated.stdout.strip()
    assert new != old and new.startswith("ml_")
    assert "stop working at" in rotated.stderr

    # only hashes are stored; the old key expires in 2 hours, the new one never
    keys = stored_keys(services, name)
    assert [digest for digest, _ in keys] == [key_hash(old), key_hash(new)]
    old_expiry, new_expiry = keys[0][1], keys[1][1]
    assert new_expiry is None and old_expiry is not None
    assert timedelta(hours=1, minutes=59) < old_expiry - datetime.now(UTC) <= timedelta(hours=2)
    assert status_with(stack, old) == 200
    assert status_with(stack, new) == 200


def test_rotation_without_grace_revokes_the_old_key(stack: Stack, services: Services, unique: str) -> None:
    name = f"revoke-{unique}"
    old = create_org(name)
    new, expires_at = rotate_key(services.sqlalchemy_url, name, timedelta(0))
    assert expires_at <= datetime.now(UTC)
    # neither key was seen by the API before, so no cache hides the revocation
    assert status_with(stack, old) == 401
    assert status_with(stack, new) == 200
    # a second rotation with a long grace does not bring the revoked key back
    newest, _ = rotate_key(services.sqlalchemy_url, name, timedelta(hours=24))
    assert status_with(stack, old) == 401
    assert status_with(stack, newest) == 200
    keys = stored_keys(services, name)
    assert [digest for digest, _ in keys] == [key_hash(old), key_hash(new), key_hash(newest)]
    assert [expiry is None for _, expiry in keys] == [False, False, True]


def test_rotation_errors(services: Services, unique: str) -> None:
    unknown = meterline("org", "key", "rotate", f"nobody-{unique}")
    assert unknown.returncode == 1 and "no organization named" in unknown.stderr
    create_org(f"neg-{unique}")
    negative = meterline("org", "key", "rotate", f"neg-{unique}", "--grace-hours", "-1")
    assert negative.returncode == 2 and "cannot be negative" in negative.stderr
    with pytest.raises(ValueError):
        rotate_key(services.sqlalchemy_url, f"neg-{unique}", timedelta(seconds=-1))
