"""Background processes with pid files: start, find alive, stop. Shared by every service of the stack."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path


class StackError(RuntimeError):
    """A service of the local stack could not be brought up; the message says what to do."""


@dataclass(frozen=True)
class RunDir:
    """`.meterline/`: pid files in run/, logs in log/, service data in their own folders."""

    home: Path

    @property
    def run(self) -> Path:
        return self.home / "run"

    @property
    def log(self) -> Path:
        return self.home / "log"

    def pidfile(self, name: str) -> Path:
        return self.run / f"{name}.pid"

    def logfile(self, name: str) -> Path:
        return self.log / f"{name}.log"

    def ensure(self) -> None:
        for folder in (self.home, self.run, self.log):
            folder.mkdir(parents=True, exist_ok=True)


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def running_pid(rundir: RunDir, name: str, marker: str) -> int | None:
    """The pid recorded for `name` if that process is alive and still the one we started (pid reuse)."""
    try:
        pid = int(rundir.pidfile(name).read_text().strip())
    except (OSError, ValueError):
        return None
    state = _proc_state(pid)
    if state is None or state == "Z" or marker not in _cmdline(pid):
        return None
    return pid


def exited(pid: int) -> bool:
    """Whether a child this process started has ended: the authority when `running_pid` answers None for a
    process just started (`make up` said "exited at start" twice, right after a start, of a process found
    running when it then stopped the stack)."""
    try:
        ended, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:  # not a child of this process, or reaped already
        return True
    return ended != 0


def _proc_state(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[0]


def start(rundir: RunDir, name: str, argv: Sequence[str], env: Mapping[str, str] | None = None,
          cwd: Path | None = None, user: str | None = None) -> int:
    """Start `argv` detached (own session), output appended to log/<name>.log, pid in run/<name>.pid."""
    rundir.ensure()
    if user is not None:
        argv = ["runuser", "-u", user, "--", *argv]
    with open(rundir.logfile(name), "ab") as log:
        process = subprocess.Popen(
            list(argv), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=dict(env) if env is not None else None, cwd=cwd, start_new_session=True,
        )
    rundir.pidfile(name).write_text(f"{process.pid}\n")
    return process.pid


def stop(rundir: RunDir, name: str, marker: str, timeout_s: float = 20.0) -> bool:
    """SIGTERM the process group, then SIGKILL after `timeout_s`. True when something was stopped."""
    pid = running_pid(rundir, name, marker)
    rundir.pidfile(name).unlink(missing_ok=True)
    if pid is None:
        return False
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if _proc_state(pid) in (None, "Z"):
            return True
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    return True


def port_open(host: str, port: int, timeout_s: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def wait_until(check: Callable[[], bool], timeout_s: float, what: str, logfile: Path | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    hint = f"; see {logfile}" if logfile else ""
    tail = ""
    if logfile and logfile.exists():
        tail = "\n" + "\n".join(logfile.read_text(errors="replace").splitlines()[-15:])
    raise StackError(f"{what} did not come up within {timeout_s:.0f}s{hint}{tail}")


def apt_install(*packages: str) -> None:
    """Install Debian packages (the stack's Redis and PostgreSQL) when their binaries are missing."""
    if os.geteuid() != 0:
        raise StackError(f"{', '.join(packages)} missing: run `sudo apt-get install -y {' '.join(packages)}`")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages]
    if subprocess.run(install, env=env, capture_output=True).returncode != 0:
        subprocess.run(["apt-get", "update", "-qq"], env=env, check=False, capture_output=True)
        result = subprocess.run(install, env=env, capture_output=True, text=True)
        if result.returncode != 0:
            raise StackError(f"apt-get install {' '.join(packages)} failed:\n{result.stderr[-2000:]}")
