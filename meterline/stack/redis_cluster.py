"""A local Redis Cluster from Debian's redis-server package: `METERLINE_LOCAL_REDIS=cluster make up`.

Three masters on ports 7001-7003 and, when the machine has the memory, one replica each on 7004-7006,
every node under `.meterline/redis-cluster/<port>/` with its append-only file and its `nodes.conf` (the
cluster's layout as that node knows it). The first start creates the cluster with `redis-cli --cluster
create`; later starts only start the nodes that are not running, which rejoin the cluster from their
`nodes.conf` (a master killed meanwhile comes back as its promoted replica's replica). A node fails over
`NODE_TIMEOUT_MS` after it stopped answering: its replica is promoted, the cluster client follows.
"""

from __future__ import annotations

import shutil
import subprocess
from functools import partial
from pathlib import Path

import redis

from meterline.stack.proc import RunDir, StackError, apt_install, running_pid, start, wait_until
from meterline.stack.redis_server import answers

MARKER = "redis-server"
HOST = "127.0.0.1"
MASTER_PORTS = (7001, 7002, 7003)
REPLICA_PORTS = (7004, 7005, 7006)
NODE_TIMEOUT_MS = 2000
REPLICA_MEMORY_BYTES = 2 << 30  # replicas are started when at least this much memory is available
URL = "redis+cluster://" + ",".join(f"{HOST}:{port}" for port in MASTER_PORTS)


def name_of(port: int) -> str:
    """The node's name in `.meterline/run` and `.meterline/log`."""
    return f"redis-{port}"


def _available_memory() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return 0


def _ports(rundir: RunDir) -> tuple[int, ...]:
    """The nodes of this cluster: those it was created with (their folders), else what the memory allows."""
    base = rundir.home / "redis-cluster"
    made = tuple(port for port in MASTER_PORTS + REPLICA_PORTS if (base / str(port) / "nodes.conf").exists())
    if made:
        return made
    return MASTER_PORTS + (REPLICA_PORTS if _available_memory() >= REPLICA_MEMORY_BYTES else ())


def _client(port: int) -> redis.Redis:
    return redis.Redis(host=HOST, port=port, socket_timeout=2, socket_connect_timeout=1)


def _node_answers(port: int) -> bool:
    return answers(f"redis://{HOST}:{port}/0")


def cluster_ok(ports: tuple[int, ...]) -> bool:
    """Every node answers and sees a cluster whose every slot has a master (`cluster_state:ok`)."""
    try:
        for port in ports:
            with _client(port) as client:
                if client.cluster("info").get("cluster_state") != "ok":
                    return False
        return True
    except redis.exceptions.RedisError:
        return False


def start_node(rundir: RunDir, port: int) -> None:
    data = rundir.home / "redis-cluster" / str(port)
    data.mkdir(parents=True, exist_ok=True)
    start(rundir, name_of(port), [
        "redis-server", "--bind", HOST, "--port", str(port), "--dir", str(data),
        "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
        "--cluster-node-timeout", str(NODE_TIMEOUT_MS),
        # as the single Redis (meterline.stack.redis_server): an append-only file synced every second
        "--save", "", "--appendonly", "yes", "--appendfsync", "everysec",
        "--daemonize", "no", "--protected-mode", "no",
    ])


def ensure_running(rundir: RunDir) -> bool:
    """Start the nodes that are not running, create the cluster if it never was; True when something started."""
    if shutil.which("redis-server") is None:
        apt_install("redis-server")
    ports = _ports(rundir)
    started = False
    for port in ports:
        if running_pid(rundir, name_of(port), MARKER) is None and not _node_answers(port):
            start_node(rundir, port)
            started = True
    for port in ports:
        wait_until(partial(_node_answers, port), 60, f"Redis node {port}", rundir.logfile(name_of(port)))
    with _client(ports[0]) as client:
        known = int(client.cluster("info").get("cluster_known_nodes", 1))
    if known < len(ports):
        _create(ports)
        started = True
    wait_until(lambda: cluster_ok(ports), 60, "the Redis Cluster (cluster_state:ok)", rundir.logfile(name_of(ports[0])))
    return started


def _create(ports: tuple[int, ...]) -> None:
    replicas = "1" if len(ports) > len(MASTER_PORTS) else "0"
    done = subprocess.run(["redis-cli", "--cluster", "create", *(f"{HOST}:{port}" for port in ports),
                           "--cluster-replicas", replicas, "--cluster-yes"],
                          capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise StackError(f"redis-cli --cluster create failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")


def node_names(rundir: RunDir) -> list[str]:
    """The nodes' names, for `down` and `status` (every port a folder or a pid file exists for)."""
    return [name_of(port) for port in MASTER_PORTS + REPLICA_PORTS
            if (rundir.home / "redis-cluster" / str(port)).exists() or rundir.pidfile(name_of(port)).exists()]
