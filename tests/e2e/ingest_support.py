"""Helpers for the ingest's end-to-end tests: an organization with its id, a private ingest process."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from meterline.orgs import ensure_organization
from tests.conftest import HOME, ROOT, Services, _stack_env


@dataclass(frozen=True)
class Org:
    id: str
    key: str


def new_org(services: Services, name: str) -> Org:
    organization_id, key = ensure_organization(services.sqlalchemy_url, name)
    assert key is not None
    return Org(organization_id, key)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class IngestProcess:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def terminate(self, timeout_s: float = 30) -> int:
        self.process.terminate()
        return self.process.wait(timeout_s)


@contextmanager
def private_ingest(**settings: str) -> Iterator[IngestProcess]:
    """A standalone ingest of its own (e.g. with a tiny rate limit) on a free port, beside the stack's."""
    port = free_port()
    env = {**os.environ, **_stack_env(), "METERLINE_HOME": str(HOME), "METERLINE_INGEST_PORT": str(port),
           "PYTHONUNBUFFERED": "1", **settings}
    log = HOME / "log" / f"test-ingest-{port}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as output:
        process = subprocess.Popen([sys.executable, "-m", "meterline.cli", "ingest"], cwd=ROOT, env=env,
                                   stdout=output, stderr=subprocess.STDOUT)
    ingest = IngestProcess(f"http://127.0.0.1:{port}", process, log)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, f"the ingest exited at start: {log.read_text()[-2000:]}"
            try:
                if httpx.get(f"{ingest.url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, f"the ingest did not come up: {log.read_text()[-2000:]}"
            time.sleep(0.2)
        yield ingest
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
