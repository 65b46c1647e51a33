"""`meterline up` / `down` / `status`: bring the whole local stack up idempotently, or stop what we started.

Each step uses what already answers and starts only what is missing or dead, so running `up`
again restarts a killed process and leaves the rest alone.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

import httpx

from core.apikeys import new_api_key
from core.clients import is_cluster
from core.db.migrate import upgrade
from core.settings import DEFAULT_AGGREGATOR_METRICS_PORT, DEFAULT_FONT_DIR, DEFAULT_REDIS_URL, DOCUMENT_FONTS, Settings
from meterline.orgs import ensure_organization
from meterline.stack import kafka, postgres, redis_cluster, redis_server
from meterline.stack.proc import RunDir, StackError, apt_install, exited, running_pid, start, stop, wait_until
from meterline.stack.topics import ensure_topics

DEFAULT_ORGANIZATION = "default"


@dataclass(frozen=True)
class Process:
    name: str
    command: str  # the `meterline` subcommand that runs it in the foreground
    health_url: Callable[[Settings], str] | None = None
    ready_line: str | None = None
    env: tuple[tuple[str, str], ...] = ()  # its own variables, beside the stack's

    @property
    def marker(self) -> str:
        return f"meterline.cli {self.command}"


AGGREGATOR = "aggregator"
# the aggregators after the first serve their /metrics here, one port each (the first one: its setting's;
# when that setting is 0, none of them serves /metrics)
MORE_AGGREGATORS_METRICS_PORT = 9470


def aggregator_name(n: int) -> str:
    """The n-th aggregator's name (from 1): its pid file `run/aggregator-n.pid`, its log `log/aggregator-n.log`."""
    return f"{AGGREGATOR}-{n}"


def _aggregator(n: int, metrics_port: int) -> Process:
    port = 0 if metrics_port == 0 else MORE_AGGREGATORS_METRICS_PORT + n - 2
    env = () if n == 1 else (("METERLINE_AGGREGATOR_METRICS_PORT", str(port)),)
    return Process(aggregator_name(n), AGGREGATOR, ready_line="Ready", env=env)


def processes(aggregators: int = 1, metrics_port: int = DEFAULT_AGGREGATOR_METRICS_PORT) -> tuple[Process, ...]:
    """meterline's processes in the order they start, with `aggregators` aggregators in one consumer group
    (`metrics_port`: the first one's /metrics, its setting)."""
    return (
        Process("api", "api", health_url=lambda s: f"http://{s.api_host}:{s.api_port}/health"),
        Process("ingest", "ingest", health_url=lambda s: f"http://{s.ingest_host}:{s.ingest_port}/health"),
        *(_aggregator(n, metrics_port) for n in range(1, aggregators + 1)),
        Process("biller", "biller", ready_line="biller ready"),
        Process("alerts", "alerts", ready_line="Ready"),
    )


PROCESSES = processes(1)
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
           "METERLINE_HOME": str(settings.home), "PYTHONUNBUFFERED": "1", **dict(process.env)}
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


def local_redis_url(settings: Settings, environ: Mapping[str, str]) -> str:
    """The Redis the stack uses: METERLINE_REDIS_URL when it is set in the environment, else the local Redis
    METERLINE_LOCAL_REDIS names (not what `.meterline/env` says: that is the previous `up`'s choice)."""
    if "METERLINE_REDIS_URL" in environ:
        return settings.redis_url
    if settings.local_redis == "cluster":
        return redis_cluster.URL
    return DEFAULT_REDIS_URL


def stray_aggregators(rundir: RunDir, keep: int) -> list[str]:
    """Aggregators with a pid file beyond the first `keep` (the stack ran more before, or this is `down`)."""
    wanted = {aggregator_name(n) for n in range(1, keep + 1)}
    found = {path.stem for path in rundir.run.glob(f"{AGGREGATOR}*.pid")} if rundir.run.exists() else set()
    return sorted(found - wanted)


def up(settings: Settings, say: Callable[[str], None] = print, environ: Mapping[str, str] = os.environ) -> str:
    """Bring everything up; returns the default organization's API key.

    The processes run with `.meterline/env`: when this `up` writes a different one (another Redis, say), the
    processes running with the old one are stopped first and started again with the new one."""
    began = time.monotonic()
    settings = replace(settings, redis_url=local_redis_url(settings, environ))
    rundir = RunDir(settings.home)
    rundir.ensure()
    if kafka.ensure_running(rundir, settings):
        say(f"started Kafka {kafka.kafka_version()} (KRaft) at {settings.kafka_bootstrap}")
    if settings.redis_url == redis_cluster.URL:
        if redis_cluster.ensure_running(rundir):
            say(f"started the Redis Cluster at {settings.redis_url}")
    elif not is_cluster(settings.redis_url) and \
            redis_server.ensure_running(rundir, settings.redis_url):
        say(f"started Redis at {settings.redis_url}")
    if postgres.ensure_running(rundir, settings.database_url):
        say("started PostgreSQL")
    if ensure_fonts(settings):
        say(f"installed the fonts invoice documents are written in ({settings.document_font_dir})")
    env_file = settings.home / "env"
    before = env_file.read_text() if env_file.exists() else None
    key = init(settings)
    wanted = processes(settings.aggregators, settings.aggregator_metrics_port)
    if before is not None and env_file.read_text() != before:
        for process in reversed(wanted):
            if stop(rundir, process.name, process.marker):
                say(f"stopped {process.name} (the stack's settings changed)")
        if f"METERLINE_REDIS_URL={settings.redis_url}\n" not in before:
            say("the stack now uses another Redis, whose usage state starts empty: `meterline rebuild` restores the "
                "open periods' from the archive")
    for name in stray_aggregators(rundir, settings.aggregators):
        if stop(rundir, name, f"meterline.cli {AGGREGATOR}"):
            say(f"stopped {name} (METERLINE_AGGREGATORS={settings.aggregators})")
    for process in wanted:
        ensure_process(rundir, settings, process, say)
    say(f"meterline is up in {time.monotonic() - began:.1f}s: API http://{settings.api_host}:{settings.api_port}, "
        f"ingest http://{settings.ingest_host}:{settings.ingest_port}")
    return key


def _entries(rundir: RunDir, settings: Settings) -> list[tuple[str, str]]:
    """(name, marker) of every process and service of the stack, those it ran before included."""
    aggregators = [(name, f"meterline.cli {AGGREGATOR}") for name in stray_aggregators(rundir, settings.aggregators)]
    nodes = [(name, redis_cluster.MARKER) for name in redis_cluster.node_names(rundir)]
    return [(p.name, p.marker) for p in processes(settings.aggregators)] + aggregators + list(SERVICES) + nodes


def down(settings: Settings, say: Callable[[str], None] = print) -> None:
    rundir = RunDir(settings.home)
    entries = _entries(rundir, settings)
    services = {name for name, _ in SERVICES} | set(redis_cluster.node_names(rundir))
    for name, marker in [entry for entry in entries if entry[0] not in services][::-1]:
        if stop(rundir, name, marker):
            say(f"stopped {name}")
    for name, marker in [entry for entry in entries if entry[0] in services]:
        if stop(rundir, name, marker, timeout_s=60):
            say(f"stopped {name}")


def status(settings: Settings) -> dict[str, int | None]:
    rundir = RunDir(settings.home)
    return {name: running_pid(rundir, name, marker) for name, marker in _entries(rundir, settings)}
