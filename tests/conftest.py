"""Where the tests find real services.

Order: METERLINE_* environment variables; else the local stack that `make up` started (its
`.meterline/env` and `.meterline/api-key`); else, when a Docker engine answers, testcontainers.
Integration and end-to-end tests never replace Kafka, Redis or PostgreSQL by a fake: without
services they fail with a message saying how to start them.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from meterline.stack.up import processes

ROOT = Path(__file__).resolve().parents[1]
HOME = Path(os.environ.get("METERLINE_HOME", ROOT / ".meterline"))
# the processes of the stack under test: `make test-cluster` runs it with METERLINE_AGGREGATORS=2
STACK_PROCESSES = processes(int(os.environ.get("METERLINE_AGGREGATORS", "1")))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        parts = Path(str(item.fspath)).parts
        if "integration" in parts:
            item.add_marker(pytest.mark.integration)
        elif "e2e" in parts or "conformance" in parts:
            item.add_marker(pytest.mark.e2e)


def _stack_env() -> dict[str, str]:
    values: dict[str, str] = {}
    env_file = HOME / "env"
    if env_file.exists():
        for line in env_file.read_text().splitlines():
            name, sep, value = line.partition("=")
            if sep:
                values[name.strip()] = value.strip()
    values.update({k: v for k, v in os.environ.items() if k.startswith("METERLINE_")})
    return values


@dataclass(frozen=True)
class Services:
    kafka_bootstrap: str
    redis_url: str
    database_url: str

    @property
    def sqlalchemy_url(self) -> str:
        return "postgresql+psycopg://" + self.database_url.split("://", 1)[1]


def _docker_answers() -> bool:
    try:
        import docker  # testcontainers' dependency

        docker.from_env().ping()
        return True
    except Exception:
        return False


@pytest.fixture(scope="session")
def services() -> Iterator[Services]:
    env = _stack_env()
    wanted = ("METERLINE_KAFKA_BOOTSTRAP", "METERLINE_REDIS_URL", "METERLINE_DATABASE_URL")
    if all(env.get(name) for name in wanted):
        yield Services(*(env[name] for name in wanted))
        return
    if not _docker_answers():
        pytest.fail("no services: run `make up` (or set METERLINE_KAFKA_BOOTSTRAP, METERLINE_REDIS_URL and "
                    "METERLINE_DATABASE_URL); no Docker engine answers for testcontainers either")
    from testcontainers.kafka import KafkaContainer
    from testcontainers.postgres import PostgresContainer
    from testcontainers.redis import RedisContainer

    with KafkaContainer("apache/kafka:4.1.1").with_kraft() as kafka, RedisContainer("redis:7") as redis, \
            PostgresContainer("postgres:16", driver="psycopg") as postgres:
        from core.db.migrate import upgrade
        from meterline.stack.topics import ensure_topics

        host = redis.get_container_host_ip()
        found = Services(kafka.get_bootstrap_server(), f"redis://{host}:{redis.get_exposed_port(6379)}/0",
                         postgres.get_connection_url().replace("postgresql+psycopg://", "postgresql://"))
        ensure_topics(found.kafka_bootstrap, "events", "events.rejected", 4, "usage.touched")
        upgrade(found.sqlalchemy_url)
        yield found


@dataclass(frozen=True)
class Stack:
    api_url: str
    ingest_url: str
    api_key: str


@pytest.fixture(scope="session")
def stack() -> Stack:
    env = _stack_env()
    key_file = HOME / "api-key"
    key = env.get("METERLINE_API_KEY") or (key_file.read_text().strip() if key_file.exists() else "")
    if not (env.get("METERLINE_API_URL") and key):
        pytest.fail("the meterline processes are not running: run `make up` first (or set METERLINE_API_URL, "
                    "METERLINE_INGEST_URL and METERLINE_API_KEY)")
    return Stack(env["METERLINE_API_URL"], env.get("METERLINE_INGEST_URL", env["METERLINE_API_URL"]), key)


@pytest.fixture
def unique() -> str:
    """A short unique suffix, so tests sharing one database never collide."""
    return uuid.uuid4().hex[:10]
