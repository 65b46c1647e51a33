"""`make up` knows whether a process it just started has ended from the process itself (its exit status),
not only from /proc (meterline.stack.proc.exited)."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

from meterline.stack.proc import RunDir, exited, start


def test_a_started_process_has_exited_only_once_it_ended(tmp_path: Path) -> None:
    rundir = RunDir(tmp_path)
    running = start(rundir, "sleeper", [sys.executable, "-c", "import time; time.sleep(30)"])
    failing = start(rundir, "failing", [sys.executable, "-c", "raise SystemExit(3)"])
    try:
        deadline = time.monotonic() + 20
        while not exited(failing):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert exited(running) is False
        assert exited(1) is True  # not a child of this process
    finally:
        os.kill(running, signal.SIGKILL)


def test_the_stack_runs_n_aggregators_each_with_its_own_name_and_metrics_port() -> None:
    from meterline.stack.up import processes

    started = processes(3)
    assert [p.name for p in started] == ["api", "ingest", "aggregator-1", "aggregator-2", "aggregator-3", "biller",
                                         "alerts"]
    assert [dict(p.env).get("METERLINE_AGGREGATOR_METRICS_PORT") for p in started if p.command == "aggregator"] == [
        None, "9470", "9471"]  # the first one serves its setting's port (9464)
    # with the setting at 0 (no /metrics), none of them serves one
    assert [dict(p.env).get("METERLINE_AGGREGATOR_METRICS_PORT") for p in processes(3, 0)
            if p.command == "aggregator"] == [None, "0", "0"]


def test_aggregators_beyond_the_wanted_count_and_the_old_single_one_are_strays(tmp_path: Path) -> None:
    from meterline.stack.up import stray_aggregators

    rundir = RunDir(tmp_path)
    rundir.ensure()
    assert stray_aggregators(rundir, 2) == []
    for name in ("aggregator", "aggregator-1", "aggregator-2", "aggregator-3", "alerts"):
        rundir.pidfile(name).write_text("1\n")
    assert stray_aggregators(rundir, 2) == ["aggregator", "aggregator-3"]
    assert stray_aggregators(rundir, 0) == ["aggregator", "aggregator-1", "aggregator-2", "aggregator-3"]


def test_the_stack_s_redis_is_the_environment_s_else_the_local_one_asked_for() -> None:
    from core.settings import DEFAULT_REDIS_URL, Settings
    from meterline.stack import redis_cluster
    from meterline.stack.up import local_redis_url

    cluster = Settings.from_env({"METERLINE_LOCAL_REDIS": "cluster"})
    # `.meterline/env` may still name the previous `up`'s Redis: only the environment's own variable wins
    stale = Settings.from_env({"METERLINE_REDIS_URL": redis_cluster.URL})
    assert local_redis_url(cluster, {}) == redis_cluster.URL
    assert local_redis_url(stale, {}) == DEFAULT_REDIS_URL
    given = Settings.from_env({"METERLINE_REDIS_URL": "redis://10.0.0.5:6379/0", "METERLINE_LOCAL_REDIS": "cluster"})
    assert local_redis_url(given, {"METERLINE_REDIS_URL": "redis://10.0.0.5:6379/0"}) == "redis://10.0.0.5:6379/0"
