"""Organizations and their API keys (administration, used by the CLI and the stack bootstrap)."""

from __future__ import annotations

import uuid

from sqlalchemy import create_engine, select

from meterline.apikeys import key_hash, new_api_key
from rater.tables import api_keys, organizations


def ensure_organization(sqlalchemy_url: str, name: str, api_key: str | None = None) -> tuple[str, str | None]:
    """Create `name` with a key (the given one, else a new one) unless it exists.

    Returns (organization_id, key); key is None when the organization already existed and no key
    was given, since only hashes are stored. A given key is attached if it is not yet known.
    """
    engine = create_engine(sqlalchemy_url)
    try:
        with engine.begin() as conn:
            organization_id = conn.execute(
                select(organizations.c.id).where(organizations.c.name == name)
            ).scalar_one_or_none()
            created = organization_id is None
            if created:
                organization_id = str(uuid.uuid4())
                conn.execute(organizations.insert().values(id=organization_id, name=name))
            if api_key is None and not created:
                return organization_id, None
            key = api_key or new_api_key()
            known = conn.execute(select(api_keys.c.organization_id).where(api_keys.c.key_sha256 == key_hash(key)))
            owner = known.scalar_one_or_none()
            if owner is None:
                conn.execute(api_keys.insert().values(id=str(uuid.uuid4()), organization_id=organization_id,
                                                      key_sha256=key_hash(key)))
            elif owner != organization_id:
                raise ValueError("that API key already belongs to another organization")
            return organization_id, key
    finally:
        engine.dispose()
