"""Redis from Debian's redis-server package, a private instance under `.meterline/redis` when none answers."""

from __future__ import annotations

import shutil
from urllib.parse import urlsplit

import redis

from meterline.stack.proc import RunDir, apt_install, port_open, running_pid, start, wait_until

MARKER = "redis-server"


def answers(url: str) -> bool:
    """Redis serves commands: the port is open and the dataset is loaded (a restarted Redis accepts
    connections while it reads its append-only file, answering LOADING to everything)."""
    try:
        with redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=1) as client:
            return bool(client.ping())
    except redis.exceptions.RedisError:
        return False


def ensure_running(rundir: RunDir, url: str) -> bool:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 6379
    if running_pid(rundir, "redis", MARKER) or port_open(host, port):
        wait_until(lambda: answers(url), 60, "Redis", rundir.logfile("redis"))
        return False
    if shutil.which("redis-server") is None:
        apt_install("redis-server")
        if port_open(host, port):  # the package started its own service on this port: use it, once loaded
            wait_until(lambda: answers(url), 60, "Redis")
            return False
    data = rundir.home / "redis"
    data.mkdir(parents=True, exist_ok=True)
    start(rundir, "redis", [
        "redis-server", "--bind", host, "--port", str(port), "--dir", str(data),
        # Redis is a cache (`meterline rebuild` restores it from the archive), but an append-only file
        # synced every second keeps a restart from needing a rebuild at all.
        "--save", "", "--appendonly", "yes", "--appendfsync", "everysec", "--daemonize", "no", "--protected-mode", "no",
    ])
    wait_until(lambda: answers(url), 60, "Redis", rundir.logfile("redis"))
    return True
