"""`meterline up` / `down` / `status`: bring the whole local stack up idempotently, or stop what we started.

Each step uses what already answers and starts only what is missing or dead, so running `up`
again restarts a killed process and leaves the rest alone.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from core.apikeys import new_api_key
from core.db.migrate import upgrade
from core.settings import DEFAULT_FONT_DIR, DOCUMENT_FONTS, Settings
from meterline.orgs import ensure_organization
from meterline.stack import kafka, postgres, redis_server
from meterline.stack.proc import RunDir, StackError, apt_install, exited, running_pid, start, stop, wait_until
from meterline.stack.topics import ensure_topics

DEFAULT_ORGANIZATION = "default"


@dataclass(frozen=True)
class Process:
    name: str
    command: str  # the `meterline` subcommand that runs it in the foreground
    health_url: Callable[[Settings], str] | None = None
    ready_line: str | None = None

    @property
    def marker(self) -> str:
        return f"meterline.cli {self.command}"


PROCESSES = (
    Process("api", "api", health_url=lambda s: f"http://{s.api_host}:{s.api_port}/health"),
    Process("ingest", "ingest", health_url=lambda s: f"http://{s.ingest_host}:{s.ingest_port}/health"),
    Process("aggregator", "aggregator", ready_line="Ready"),
    Process("biller", "biller", ready_line="biller ready"),
    Process("alerts", "alerts", ready_line="Ready"),
)
SERVICES = (("kafka", kafka.MARKER), ("redis", redis_server.MARKER), ("postgres", postgres.MARKER))


def env_lines(settings: Settings) -> list[str]:
    return [
        f"METERLINE_KAFKA_BOOTSTRAP={settings.kafka_bootstrap}",
        f"METERLINE_REDIS_URL={settings.redis_url}",
        f"METERLINE_DATABASE_URL={settings.database_url}",
        f"METERLINE_API_URL=http://{settings.api_host}:{settings.api_port}",
        f"METERLINE_INGEST_URL=http://{settings.ingest_host}:{settings.ingest_port}",
    ]


def _healthy(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


def _log_has(rundir: RunDir, name: str, offset: int, text: str) -> bool:
    logfile = rundir.logfile(name)
    if not logfile.exists():
        return False
    with open(logfile, "rb") as handle:
        handle.seek(offset)
        return text.encode() in handle.read()


def ensure_process(rundir: RunDir, settings: Settings, process: Process, say: Callable[[str], None]) -> None:
    if running_pid(rundir, process.name, process.marker) is not None:
        return
    logfile = rundir.logfile(process.name)
    offset = logfile.stat().st_size if logfile.exists() else 0
    env = {**os.environ, **dict(line.split("=", 1) for line in env_lines(settings)),
           "METERLINE_HOME": str(settings.home), "PYTHONUNBUFFERED": "1"}
    pid = start(rundir, process.name, [sys.executable, "-m", "meterline.cli", process.command], env=env)
    say(f"started {process.name}")

    def ready() -> bool:
        if running_pid(rundir, process.name, process.marker) is None and exited(pid):
            raise StackError(f"{process.name} exited at start; see {logfile}:\n"
                             + logfile.read_text(errors="replace")[offset:][-3000:])
        if process.health_url is not None:
            return _healthy(process.health_url(settings))
        return process.ready_line is None or _log_has(rundir, process.name, offset, process.ready_line)

    wait_until(ready, 90, process.name, logfile)


def init(settings: Settings) -> str:
    """Topics, migrations, `.meterline/env` and the default organization; returns its API key.

    `meterline init` runs this alone (docker-compose's one-shot `init` service); `up` runs it too.
    """
    ensure_topics(settings.kafka_bootstrap, settings.events_topic, settings.rejected_topic,
                  settings.events_partitions, settings.touched_topic)
    upgrade(settings.sqlalchemy_url)
    settings.home.mkdir(parents=True, exist_ok=True)
    (settings.home / "env").write_text("\n".join(env_lines(settings)) + "\n")
    key_file = settings.home / "api-key"
    key = settings.bootstrap_api_key or (key_file.read_text().strip() if key_file.exists() else None)
    _, key = ensure_organization(settings.sqlalchemy_url, DEFAULT_ORGANIZATION, key or new_api_key())
    assert key is not None
    key_file.write_text(key + "\n")
    key_file.chmod(0o600)
    return key


def ensure_fonts(settings: Settings) -> bool:
    """The API writes invoice documents in DejaVu Sans (rater.billing.pdf): Debian's fonts-dejavu-core, installed
    when missing from the default font folder (True then). A folder of one's own is left to its owner."""
    if all((settings.document_font_dir / name).is_file() for name in DOCUMENT_FONTS.values()) or \
            settings.document_font_dir != DEFAULT_FONT_DIR:
        return False
    apt_install("fonts-dejavu-core")
    return True


def up(settings: Settings, say: Callable[[str], None] = print) -> str:
    """Bring everything up; returns the default organization's API key."""
    began = time.monotonic()
    rundir = RunDir(settings.home)
    rundir.ensure()
    if kafka.ensure_running(rundir, settings):
        say(f"started Kafka {kafka.kafka_version()} (KRaft) at {settings.kafka_bootstrap}")
    if redis_server.ensure_running(rundir, settings.redis_url):
        say(f"started Redis at {settings.redis_url}")
    if postgres.ensure_running(rundir, settings.database_url):
        say("started PostgreSQL")
    if ensure_fonts(settings):
        say(f"installed the fonts invoice documents are written in ({settings.document_font_dir})")
    key = init(settings)
    for process in PROCESSES:
        ensure_process(rundir, settings, process, say)
    say(f"meterline is up in {time.monotonic() - began:.1f}s: API http://{settings.api_host}:{settings.api_port}, "
        f"ingest http://{settings.ingest_host}:{settings.ingest_port}")
    return key


def down(settings: Settings, say: Callable[[str], None] = print) -> None:
    rundir = RunDir(settings.home)
    for process in reversed(PROCESSES):
        if stop(rundir, process.name, process.marker):
            say(f"stopped {process.name}")
    for name, marker in SERVICES:
        if stop(rundir, name, marker, timeout_s=60):
            say(f"stopped {name}")


def status(settings: Settings) -> dict[str, int | None]:
    rundir = RunDir(settings.home)
    entries = [(p.name, p.marker) for p in PROCESSES] + list(SERVICES)
    return {name: running_pid(rundir, name, marker) for name, marker in entries}
