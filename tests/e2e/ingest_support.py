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
class ServerProcess:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def terminate(self, timeout_s: float = 30) -> int:
        self.process.terminate()
        return self.process.wait(timeout_s)


@contextmanager
def private_ingest(**settings: str) -> Iterator[ServerProcess]:
    """A standalone ingest of its own (e.g. with a tiny rate limit) on a free port, beside the stack's."""
    with private_server("ingest", **settings) as ingest:
        yield ingest


@contextmanager
def private_server(command: str, **settings: str) -> Iterator[ServerProcess]:
    """A `meterline ingest` or `meterline api` of its own on a free port, beside the stack's, with
    `settings` (METERLINE_* variables) over the stack's; yielded once /health answers."""
    port = free_port()
    port_variable = "METERLINE_API_PORT" if command == "api" else "METERLINE_INGEST_PORT"
    env = {**os.environ, **_stack_env(), "METERLINE_HOME": str(HOME), port_variable: str(port),
           "PYTHONUNBUFFERED": "1", **settings}
    log = HOME / "log" / f"test-{command}-{port}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as output:
        process = subprocess.Popen([sys.executable, "-m", "meterline.cli", command], cwd=ROOT, env=env,
                                   stdout=output, stderr=subprocess.STDOUT)
    server = ServerProcess(f"http://127.0.0.1:{port}", process, log)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, f"the {command} exited at start: {log.read_text()[-2000:]}"
            try:
                if httpx.get(f"{server.url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, f"the {command} did not come up: {log.read_text()[-2000:]}"
            time.sleep(0.2)
        yield server
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
