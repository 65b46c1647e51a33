"""docker-compose.yml cannot run here (no Docker engine); this keeps it consistent with `make up`."""

from __future__ import annotations

import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml

from meterline.cli import build_parser
from meterline.stack.up import PROCESSES

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def subcommands() -> set[str]:
    parser = build_parser()
    action = next(a for a in parser._actions if a.dest == "command")
    return set(action.choices)  # type: ignore[arg-type]


def test_every_process_of_make_up_runs_in_compose_with_the_same_command() -> None:
    for process in PROCESSES:
        assert process.name in SERVICES, f"{process.name} is missing from docker-compose.yml"
        assert SERVICES[process.name]["command"] == [process.command]
        assert SERVICES[process.name]["build"] == "."


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
    for name in ("kafka", "redis", "postgres", "api", "ingest"):
        assert "healthcheck" in SERVICES[name], name


def test_published_ports_are_bound_to_loopback() -> None:
    for name, service in SERVICES.items():
        for mapping in service.get("ports", []):
            assert mapping.startswith("127.0.0.1:"), f"{name} publishes {mapping} on every interface"


def test_processes_wait_for_init_and_point_at_the_compose_services() -> None:
    for process in PROCESSES:
        service = SERVICES[process.name]
        assert service["depends_on"]["init"]["condition"] == "service_completed_successfully"
        assert service["environment"]["METERLINE_KAFKA_BOOTSTRAP"] == "kafka:9092"
        assert service["environment"]["METERLINE_REDIS_URL"].startswith("redis://redis:")
        assert "@postgres:5432/" in service["environment"]["METERLINE_DATABASE_URL"]


@pytest.mark.skipif(shutil.which("docker") is None, reason="no docker CLI")
def test_docker_compose_config_accepts_the_file_when_the_plugin_exists() -> None:
    if subprocess.run(["docker", "compose", "version"], capture_output=True).returncode != 0:
        pytest.skip("the docker compose plugin is not installed")
    result = subprocess.run(["docker", "compose", "-f", str(ROOT / "docker-compose.yml"), "config", "-q"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_observability_profile_scrapes_every_process_and_provisions_the_dashboard() -> None:
    import json

    for name in ("prometheus", "grafana"):
        assert SERVICES[name]["profiles"] == ["observability"]
    scrape = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    targets = {t for job in scrape["scrape_configs"] for group in job["static_configs"] for t in group["targets"]}
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
