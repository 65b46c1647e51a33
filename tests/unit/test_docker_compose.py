"""docker-compose.yml cannot run here (no Docker engine); this keeps it consistent with `make up`."""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml

from core.settings import redis_cluster_nodes
from meterline.cli import build_parser
from meterline.stack import redis_cluster
from meterline.stack.proc import RunDir
from meterline.stack.up import PROCESSES, Process, processes

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_TEXT = (ROOT / "docker-compose.yml").read_text()
COMPOSE = yaml.safe_load(COMPOSE_TEXT)
SERVICES = COMPOSE["services"]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
NODES = [f"redis-node-{n}" for n in range(1, len(redis_cluster.MASTER_PORTS + redis_cluster.REPLICA_PORTS) + 1)]
# the command at the top of docker-compose.yml that runs meterline on the cluster profile
CLUSTER_UP = re.compile(r"METERLINE_REDIS_URL=(redis\+cluster://\S+) docker compose --profile cluster up --build -d")


def service_of(process: Process) -> str:
    """The compose service running a process of `make up`: its name, but `make up`'s aggregator-1..N are the
    replicas of the one `aggregator` service."""
    return "aggregator" if process.command == "aggregator" else process.name


def subcommands() -> set[str]:
    parser = build_parser()
    action = next(a for a in parser._actions if a.dest == "command")
    return set(action.choices)  # type: ignore[arg-type]


def test_every_process_of_make_up_runs_in_compose_with_the_same_command() -> None:
    for process in processes(3):
        assert service_of(process) in SERVICES, f"{process.name} is missing from docker-compose.yml"
        assert SERVICES[service_of(process)]["command"] == [process.command]
        assert SERVICES[service_of(process)]["build"] == "."
    assert [p.name for p in PROCESSES if service_of(p) != p.name] == ["aggregator-1"]


def test_aggregators_are_replicas_of_one_service_as_many_as_make_up_runs() -> None:
    aggregator = SERVICES["aggregator"]
    default = sum(1 for p in PROCESSES if p.command == "aggregator")
    assert aggregator["deploy"] == {"replicas": f"${{METERLINE_AGGREGATORS:-{default}}}"}
    # replicas cannot share a container name or a published port
    assert "container_name" not in aggregator
    assert "ports" not in aggregator


def test_compose_commands_are_real_meterline_subcommands() -> None:
    meterline_services = {name: s for name, s in SERVICES.items() if s.get("build") == "."}
    assert set(meterline_services) == {"init", "api", "ingest", "aggregator", "alerts", "biller"}
    for service in meterline_services.values():
        assert service["command"][0] in subcommands()


def test_infrastructure_uses_official_images_with_healthchecks() -> None:
    assert SERVICES["kafka"]["image"].startswith("apache/kafka:4.")
    assert SERVICES["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert SERVICES["redis"]["image"] == "redis:7"
    assert SERVICES["postgres"]["image"].startswith("postgres:")
    for name in ("kafka", "redis", "postgres", "api", "ingest", *NODES):
        assert "healthcheck" in SERVICES[name], name


def test_published_ports_are_bound_to_loopback() -> None:
    for name, service in SERVICES.items():
        for mapping in service.get("ports", []):
            assert mapping.startswith("127.0.0.1:"), f"{name} publishes {mapping} on every interface"


def test_processes_wait_for_init_and_point_at_the_compose_services() -> None:
    for process in PROCESSES:
        service = SERVICES[service_of(process)]
        assert service["depends_on"]["init"]["condition"] == "service_completed_successfully"
        assert service["environment"]["METERLINE_KAFKA_BOOTSTRAP"] == "kafka:9092"
        assert service["environment"]["METERLINE_REDIS_URL"] == "${METERLINE_REDIS_URL:-redis://redis:6379/0}"
        assert "@postgres:5432/" in service["environment"]["METERLINE_DATABASE_URL"]


@pytest.mark.skipif(shutil.which("docker") is None, reason="no docker CLI")
@pytest.mark.parametrize("profiles", [[], ["--profile", "cluster"], ["--profile", "observability"]])
def test_docker_compose_config_accepts_the_file_when_the_plugin_exists(profiles: list[str]) -> None:
    if subprocess.run(["docker", "compose", "version"], capture_output=True).returncode != 0:
        pytest.skip("the docker compose plugin is not installed")
    result = subprocess.run(["docker", "compose", "-f", str(ROOT / "docker-compose.yml"), *profiles, "config", "-q"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def local_node_options(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The options `METERLINE_LOCAL_REDIS=cluster make up` starts a node with, but those that place it on the
    host (its address, its folder, in the foreground) and protected mode (the official image has it off)."""
    started: list[list[str]] = []
    monkeypatch.setattr(redis_cluster, "start", lambda rundir, name, argv, **kw: started.append(list(argv)))
    redis_cluster.start_node(RunDir(tmp_path), redis_cluster.MASTER_PORTS[0])
    [argv] = started
    assert argv[0] == "redis-server"
    options = dict(zip(argv[1::2], argv[2::2], strict=True))
    for host_only in ("--bind", "--port", "--dir", "--daemonize", "--protected-mode"):
        del options[host_only]
    return options


def test_cluster_profile_nodes_run_redis_server_with_the_options_of_the_local_cluster(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    options = local_node_options(tmp_path, monkeypatch)
    assert options == {"--cluster-enabled": "yes", "--cluster-config-file": "nodes.conf",
                       "--cluster-node-timeout": str(redis_cluster.NODE_TIMEOUT_MS),
                       "--save": "", "--appendonly": "yes", "--appendfsync": "everysec"}
    assert sorted(name for name, s in SERVICES.items() if s.get("profiles") == ["cluster"]) == \
        sorted([*NODES, "redis-cluster-init"])
    for name in NODES:
        node = SERVICES[name]
        assert node["image"] == SERVICES["redis"]["image"] == "redis:7"
        assert node["command"] == ["redis-server", *(word for pair in options.items() for word in pair)]
        assert node["volumes"] == [f"{name}-data:/data"]
        assert f"{name}-data" in COMPOSE["volumes"]
        assert node["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]
        assert "ports" not in node  # the cluster hands its clients the nodes' addresses in compose's network


def test_cluster_init_creates_three_masters_with_a_replica_each_once() -> None:
    init = SERVICES["redis-cluster-init"]
    assert init["image"] == "redis:7"
    assert init["restart"] == "no"
    assert init["depends_on"] == {name: {"condition": "service_healthy"} for name in NODES}
    shell, flag, script = init["command"]
    assert (shell, flag) == ("sh", "-c")
    # every `$` is the shell's (`$$` in the file), else compose would substitute it from its own environment
    assert "$" not in script.replace("$$", "")
    script = script.replace("$$", "$")
    assert f'nodes="{" ".join(NODES)}"' in script.splitlines()
    # created from the nodes' IP addresses: CLUSTER MEET, hence --cluster create, refuses host names
    assert 'ip() { getent ahostsv4 "$1" | head -n 1 | cut -d \' \' -f 1; }' in script
    creates = [line.strip() for line in script.splitlines() if "--cluster create" in line]
    assert creates == ["redis-cli --cluster create $addresses --cluster-replicas 1 --cluster-yes"]
    assert len(NODES) == 2 * len(redis_cluster.MASTER_PORTS)  # so --cluster-replicas 1: three masters
    # only when node 1 knows no other node: later runs create nothing
    lines = [line.strip() for line in script.splitlines()]
    assert lines[lines.index(creates[0]) - 1] == 'if [ "$known" = 1 ]; then'
    assert "sed -n 's/^cluster_known_nodes://p'" in script


def test_meterline_waits_for_the_cluster_only_when_the_profile_runs_it() -> None:
    assert SERVICES["init"]["depends_on"]["redis-cluster-init"] == \
        {"condition": "service_completed_successfully", "required": False}
    for process in PROCESSES:
        assert "redis-cluster-init" not in SERVICES[service_of(process)]["depends_on"]  # they wait for init


def test_the_cluster_command_names_the_profile_masters_and_the_readme_shows_it() -> None:
    [url] = CLUSTER_UP.findall(COMPOSE_TEXT)
    assert redis_cluster_nodes(url) == [(name, 6379) for name in NODES[:len(redis_cluster.MASTER_PORTS)]]
    in_readme = CLUSTER_UP.search((ROOT / "README.md").read_text())
    assert in_readme is not None and in_readme[1] == url


def test_observability_profile_scrapes_every_process_and_provisions_the_dashboard() -> None:
    import json

    for name in ("prometheus", "grafana"):
        assert SERVICES[name]["profiles"] == ["observability"]
    scrape = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    jobs = scrape["scrape_configs"]
    targets = {t for job in jobs for group in job.get("static_configs", ()) for t in group["targets"]}
    # the aggregators are found by DNS: one address per replica (`deploy: replicas`)
    targets |= {f"{name}:{sd['port']}" for job in jobs for sd in job.get("dns_sd_configs", ())
                for name in sd["names"] if sd["type"] == "A"}
    assert targets == {"api:3000", "ingest:3001", "aggregator:9464", "alerts:9466", "biller:9465"}
    dashboard = json.loads((ROOT / "deploy" / "grafana" / "meterline-dashboard.json").read_text())
    expressions = " ".join(t["expr"] for p in dashboard["panels"] for t in p["targets"])
    for series in ("meterline_consumer_lag", "meterline_pipeline_events_total", "meterline_ingest_request_seconds",
                   "meterline_event_to_visible_seconds", "meterline_invoices_written_total"):
        assert series in expressions
    mounts = " ".join(SERVICES["grafana"]["volumes"])
    assert "meterline-dashboard.json" in mounts and "provisioning" in mounts


def test_the_image_copies_every_package_the_project_installs() -> None:
    packages = {name.rstrip("*") for name in PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]}
    dockerfile = (ROOT / "Dockerfile").read_text()
    missing = sorted(p for p in packages if f"COPY {p} ./{p}" not in dockerfile)
    assert missing == []


def test_every_installed_package_is_under_the_import_contracts() -> None:
    packages = {name.rstrip("*") for name in PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]}
    assert set(PYPROJECT["tool"]["importlinter"]["root_packages"]) == packages
    layers = PYPROJECT["tool"]["importlinter"]["contracts"][0]["layers"]
    assert {name.strip() for layer in layers for name in layer.split(":")} == packages
