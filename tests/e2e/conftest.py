from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from meterline.orgs import ensure_organization
from tests.builders import api
from tests.conftest import Services, Stack


@pytest.fixture
def org_key(services: Services, unique: str) -> str:
    """A fresh organization per test, so catalog codes never collide between tests."""
    _, key = ensure_organization(services.sqlalchemy_url, f"test-{unique}")
    assert key is not None
    return key


@pytest.fixture
def client(stack: Stack, org_key: str) -> Iterator[httpx.Client]:
    with api(stack.api_url, org_key) as http:
        yield http


@pytest.fixture
def ingest(stack: Stack, org_key: str) -> Iterator[httpx.Client]:
    with api(stack.ingest_url, org_key) as http:
        yield http
