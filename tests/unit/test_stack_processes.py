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
