from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from meterline.orgs import ensure_organization
from tests.builders import api
from tests.conftest import Services, Stack
from tests.e2e.webhook_support import Receiver


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


@pytest.fixture
def receiver(client: httpx.Client) -> Iterator[Receiver]:
    """A webhook endpoint of the test's organization, answering 200."""
    found = Receiver(failures=0)
    assert client.post("/webhook_endpoints", json={"webhook_endpoint": {"webhook_url": found.url}}).status_code == 200
    yield found
    found.server.shutdown()
