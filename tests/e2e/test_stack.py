"""`make up` against a running stack: idempotent, restarts what died, leaves the rest alone."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import httpx

from meterline.stack.proc import RunDir, running_pid
from tests.conftest import HOME, ROOT, STACK_PROCESSES, Stack

MARKERS = {p.name: p.marker for p in STACK_PROCESSES}


def pid_of(name: str) -> int | None:
    return running_pid(RunDir(HOME), name, MARKERS[name])


def meterline_up() -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "meterline.cli", "up"], cwd=ROOT, capture_output=True,
                          text=True, timeout=180, env={**os.environ, "METERLINE_HOME": str(HOME)})


def test_health_endpoints_answer(stack: Stack) -> None:
    for url in (stack.api_url, stack.ingest_url):
        response = httpx.get(f"{url}/health", timeout=5)
        assert response.status_code == 200
        assert response.json()["status"] == "ok"


def test_up_restarts_a_killed_aggregator_and_leaves_the_rest_alone(stack: Stack) -> None:
    before = {name: pid_of(name) for name in MARKERS}
    assert all(before.values()), f"the stack is not fully up: {before}"
    os.kill(before["aggregator-1"], signal.SIGKILL)
    deadline = time.monotonic() + 10
    while pid_of("aggregator-1") is not None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert pid_of("aggregator-1") is None

    result = meterline_up()

    assert result.returncode == 0, result.stdout + result.stderr
    assert "started aggregator-1" in result.stdout
    assert "started api" not in result.stdout and "started ingest" not in result.stdout
    after = {name: pid_of(name) for name in MARKERS}
    assert after["aggregator-1"] not in (None, before["aggregator-1"])
    assert after["api"] == before["api"] and after["ingest"] == before["ingest"]


def test_up_twice_changes_nothing(stack: Stack) -> None:
    before = {name: pid_of(name) for name in MARKERS}
    result = meterline_up()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "started" not in result.stdout.replace("meterline is up", "")
    assert {name: pid_of(name) for name in MARKERS} == before
