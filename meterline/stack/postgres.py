"""PostgreSQL from Debian's packages, a private cluster under `.meterline/postgres` when none answers.

PostgreSQL refuses to run as root, so as root the cluster belongs to the `postgres` system user
that the Debian package creates. When that user cannot reach `.meterline/` (a checkout inside a
private home folder), the cluster lives in /var/lib/meterline/<hash of the checkout> instead.
"""

from __future__ import annotations

import glob
import hashlib
import os
import subprocess
from pathlib import Path
from urllib.parse import unquote, urlsplit

import psycopg
from psycopg import sql

from meterline.stack.proc import RunDir, StackError, apt_install, port_open, running_pid, start, wait_until

MARKER = "postgres"


def _bin_dir() -> Path:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"), key=lambda p: int(p.split("/")[4]))
    if not candidates:
        apt_install("postgresql")
        candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"), key=lambda p: int(p.split("/")[4]))
    if not candidates:
        raise StackError("PostgreSQL binaries not found under /usr/lib/postgresql after installing them")
    return Path(candidates[-1]).parent


def _run_as() -> str | None:
    return "postgres" if os.geteuid() == 0 else None


def _data_dir(rundir: RunDir, user: str | None) -> Path:
    """`.meterline/postgres/data`, owned by `user`, unless `user` cannot reach it (then /var/lib/meterline)."""
    preferred = rundir.home / "postgres"
    preferred.mkdir(parents=True, exist_ok=True)
    if user is None:
        return preferred / "data"
    subprocess.run(["chown", f"{user}:{user}", str(preferred)], check=True)
    if subprocess.run(["runuser", "-u", user, "--", "test", "-w", str(preferred)]).returncode == 0:
        return preferred / "data"
    digest = hashlib.sha256(str(rundir.home).encode()).hexdigest()[:12]
    return Path("/var/lib/meterline") / digest / "data"


def _as_user(user: str | None, argv: list[str]) -> list[str]:
    return ["runuser", "-u", user, "--", *argv] if user else argv


def ensure_running(rundir: RunDir, url: str) -> bool:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 5432
    if running_pid(rundir, "postgres", MARKER) or port_open(host, port):
        wait_until(lambda: port_open(host, port), 30, "PostgreSQL", rundir.logfile("postgres"))
        _adopt(url, port)
        return False
    bindir = _bin_dir()
    if port_open(host, port):  # installing the package started Debian's own cluster on this port: use it
        _adopt(url, port)
        return False
    user = _run_as()
    rundir.ensure()
    data = _data_dir(rundir, user)
    sockets = data.parent / "sockets"
    data.mkdir(parents=True, exist_ok=True)
    sockets.mkdir(parents=True, exist_ok=True)
    if user:
        subprocess.run(["chown", f"{user}:{user}", str(data.parent), str(data), str(sockets)], check=True)
        data.chmod(0o700)
    if not (data / "PG_VERSION").exists():
        result = subprocess.run(
            _as_user(user, [str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
                            "-E", "UTF8", "--locale=C.UTF-8"]),
            capture_output=True, text=True,
        )
        if result.returncode != 0:
            raise StackError(f"initdb failed:\n{result.stdout}{result.stderr}")
    logfile = rundir.logfile("postgres")
    logfile.touch()
    if user:
        subprocess.run(["chown", f"{user}:{user}", str(logfile)], check=True)
    start(rundir, "postgres", [
        str(bindir / "postgres"), "-D", str(data), "-p", str(port), "-k", str(sockets),
        "-c", f"listen_addresses={host}", "-c", "max_connections=200", "-c", "shared_buffers=256MB",
        "-c", "fsync=on", "-c", "synchronous_commit=on",
    ], user=user)
    wait_until(lambda: port_open(host, port), 60, "PostgreSQL", logfile)
    _ensure_database(url, superuser_dsn=f"host={sockets} port={port} user=postgres dbname=postgres")
    return True


def _target(url: str) -> tuple[str, str, str, str]:
    """The URL's role, password and database, and the URL as psycopg takes it."""
    parts = urlsplit(url)
    return (unquote(parts.username or "meterline"), unquote(parts.password or ""),
            parts.path.lstrip("/") or "meterline", url.replace("postgresql+psycopg://", "postgresql://"))


def _creations(user: str, password: str, dbname: str) -> list[sql.Composed]:
    return [sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(user), sql.Literal(password)),
            sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(dbname), sql.Identifier(user))]


def _adopt(url: str, port: int) -> None:
    """A server answers on the port (ours from an earlier `up`, or one we did not start). If the URL's
    role or database is missing there and it is a local Debian cluster (peer authentication for the
    `postgres` user), create them through its socket."""
    user, password, dbname, plain = _target(url)
    if not _connects(plain) and os.geteuid() == 0 and Path("/var/run/postgresql").is_dir():
        psql = ["runuser", "-u", "postgres", "--", "psql", "-h", "/var/run/postgresql", "-p", str(port), "-q",
                "-d", "postgres", "-c"]
        for statement in _creations(user, password, dbname):
            subprocess.run([*psql, statement.as_string()], capture_output=True)  # "already exists" is fine
    _ensure_database(url)


def _ensure_database(url: str, superuser_dsn: str | None = None) -> None:
    """Create the URL's role and database when we own the cluster; check the URL connects either way."""
    user, password, dbname, plain = _target(url)
    if superuser_dsn is not None:
        wait_until(lambda: _connects(superuser_dsn), 30, "PostgreSQL superuser connection")
        role, database = _creations(user, password, dbname)
        with psycopg.connect(superuser_dsn, autocommit=True) as conn:
            if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (user,)).fetchone() is None:
                conn.execute(role)
            if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)).fetchone() is None:
                conn.execute(database)
    wait_until(lambda: _connects(plain), 30, f"PostgreSQL database {dbname!r}")


def _connects(dsn: str) -> bool:
    try:
        with psycopg.connect(dsn, connect_timeout=2):
            return True
    except psycopg.OperationalError:
        return False
