"""Organizations and their API keys (administration, used by the CLI and the stack bootstrap).

Only SHA-256 hashes of keys are stored. Rotating a key issues a new one and gives every older key
of the organization an expiry `grace` from now (default 24 hours): clients can switch over without
downtime, then the old keys stop working (within the API key cache TTL, ≤ 30 s, after expiry).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from babel import Locale
from sqlalchemy import Connection, create_engine, or_, select, update

from core.apikeys import key_hash, new_api_key
from core.db.tables import ORGANIZATION_DETAILS, api_keys, organizations

DEFAULT_GRACE = timedelta(hours=24)


class UnknownOrganization(LookupError):
    pass


def ensure_organization(sqlalchemy_url: str, name: str, api_key: str | None = None) -> tuple[str, str | None]:
    """Create `name` with a key (the given one, else a new one) unless it exists.

    Returns (organization_id, key); key is None when the organization already existed and no key
    was given, since only hashes are stored. A given key is attached if it is not yet known.
    """
    engine = create_engine(sqlalchemy_url)
    try:
        with engine.begin() as conn:
            existing: str | None = conn.execute(
                select(organizations.c.id).where(organizations.c.name == name)
            ).scalar_one_or_none()
            created = existing is None
            organization_id = existing or str(uuid.uuid4())
            if created:
                conn.execute(organizations.insert().values(id=organization_id, name=name))
            if api_key is None and not created:
                return organization_id, None
            key = api_key or new_api_key()
            owner = conn.execute(
                select(api_keys.c.organization_id).where(api_keys.c.key_sha256 == key_hash(key))
            ).scalar_one_or_none()
            if owner is None:
                _add_key(conn, organization_id, key)
            elif owner != organization_id:
                raise ValueError("that API key already belongs to another organization")
            return organization_id, key
    finally:
        engine.dispose()


def _add_key(conn: Connection, organization_id: str, key: str) -> None:
    conn.execute(api_keys.insert().values(id=str(uuid.uuid4()), organization_id=organization_id,
                                          key_sha256=key_hash(key)))


def rotate_key(sqlalchemy_url: str, name: str, grace: timedelta = DEFAULT_GRACE,
               now: datetime | None = None) -> tuple[str, datetime]:
    """Issue a new key for organization `name`; older keys expire at `now + grace` (sooner expiries
    are kept). Returns (new key, when the old keys stop working)."""
    if grace < timedelta(0):
        raise ValueError("the grace period cannot be negative")
    expires_at = (now or datetime.now(UTC)) + grace
    engine = create_engine(sqlalchemy_url)
    try:
        with engine.begin() as conn:
            organization_id = conn.execute(
                select(organizations.c.id).where(organizations.c.name == name).with_for_update()
            ).scalar_one_or_none()
            if organization_id is None:
                raise UnknownOrganization(name)
            conn.execute(update(api_keys).where(
                api_keys.c.organization_id == organization_id,
                or_(api_keys.c.expires_at.is_(None), api_keys.c.expires_at > expires_at),
            ).values(expires_at=expires_at))
            key = new_api_key()
            _add_key(conn, organization_id, key)
            return key, expires_at
    finally:
        engine.dispose()


MAX_PAYMENT_TERM = 36_500  # days, as a customer's net_payment_term (rater.inputs.MAX_DAYS)


def payment_term_of(sqlalchemy_url: str, name: str, net_payment_term: int | None = None) -> int:
    """The organization's default `net_payment_term` (days from an invoice's issuing date to its due date for
    its customers without their own), after setting it when given. UnknownOrganization; ValueError out of
    0..MAX_PAYMENT_TERM."""
    if net_payment_term is not None and not 0 <= net_payment_term <= MAX_PAYMENT_TERM:
        raise ValueError(f"net_payment_term must be from 0 to {MAX_PAYMENT_TERM} days")
    engine = create_engine(sqlalchemy_url)
    try:
        with engine.begin() as conn:
            if net_payment_term is not None:
                conn.execute(update(organizations).where(organizations.c.name == name)
                             .values(net_payment_term=net_payment_term))
            term: int | None = conn.execute(select(organizations.c.net_payment_term)
                                            .where(organizations.c.name == name)).scalar_one_or_none()
            if term is None:
                raise UnknownOrganization(name)
            return term
    finally:
        engine.dispose()


FOOTER_MAX = 600  # characters, as Lago's invoice_footer
# two-letter regions CLDR (Babel) names that are no country: the EU, the Eurozone, the UN, outlying Oceania,
# unknown, pseudo-locales
NOT_COUNTRIES = frozenset({"EU", "EZ", "UN", "QO", "ZZ", "XA", "XB"})
DOCUMENT_DETAILS = (*ORGANIZATION_DETAILS, "invoice_footer")


def _checked_detail(name: str, value: str) -> str | None:
    """A detail as stored: blank clears it; ValueError for a value its document could not show."""
    value = value.strip()
    if not value:
        return None
    if name == "invoice_footer":
        if len(value) > FOOTER_MAX:
            raise ValueError(f"invoice_footer must be at most {FOOTER_MAX} characters")
        return value
    if len(value) > 255 or "\n" in value:
        raise ValueError(f"{name} must be one line of at most 255 characters")
    if name == "country":
        value = value.upper()
        if value not in Locale("en").territories or not value.isalpha() or len(value) != 2 \
                or value in NOT_COUNTRIES:
            raise ValueError(f"country must be an ISO 3166 alpha-2 code (US, FR, …), got {value!r}")
    if name == "email" and ("@" not in value or " " in value):
        raise ValueError(f"email must be an email address, got {value!r}")
    return value


def document_details(sqlalchemy_url: str, name: str, changes: Mapping[str, str] | None = None
                     ) -> dict[str, str | None]:
    """What the organization's invoice documents show of it (DOCUMENT_DETAILS), after applying `changes` (a
    blank value clears one). UnknownOrganization; ValueError for a detail refused (nothing is changed then)."""
    changes = dict(changes or {})
    unknown = set(changes) - set(DOCUMENT_DETAILS)
    if unknown:
        raise ValueError(f"unknown detail(s): {', '.join(sorted(unknown))}")
    values = {detail: _checked_detail(detail, value) for detail, value in changes.items()}
    engine = create_engine(sqlalchemy_url)
    try:
        with engine.begin() as conn:
            if values:
                conn.execute(update(organizations).where(organizations.c.name == name).values(**values))
            row = conn.execute(select(*(organizations.c[detail] for detail in DOCUMENT_DETAILS))
                               .where(organizations.c.name == name)).one_or_none()
            if row is None:
                raise UnknownOrganization(name)
            return dict(row._mapping)
    finally:
        engine.dispose()
