"""Apache Kafka (KRaft, one combined broker + controller) from Maven Central's jars, run with `java -cp`.

The jars are resolved once by Maven (deploy/kafka/pom.xml) into ~/.cache/meterline/kafka-<version>/libs;
the broker's data and log live under `.meterline/kafka`.
"""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
import uuid
from pathlib import Path

from core.settings import Settings
from meterline.stack.proc import RunDir, StackError, port_open, running_pid, start, wait_until

REPO = Path(__file__).resolve().parents[2]
POM = REPO / "deploy" / "kafka" / "pom.xml"
LOG4J = REPO / "deploy" / "kafka" / "log4j2.properties"
MARKER = "kafka.Kafka"


def kafka_version() -> str:
    match = re.search(r"<kafka.version>([^<]+)</kafka.version>", POM.read_text())
    if not match:
        raise StackError(f"no <kafka.version> in {POM}")
    return match.group(1)


def cache_dir(cache_home: Path) -> Path:
    return cache_home.expanduser() / f"kafka-{kafka_version()}"


def ensure_jars(cache_home: Path) -> Path:
    """Resolve the broker's jars with Maven unless a complete copy is cached. Returns the libs folder."""
    libs = cache_dir(cache_home) / "libs"
    done = cache_dir(cache_home) / ".complete"
    if done.exists():
        return libs
    if shutil.which("mvn") is None or shutil.which("java") is None:
        raise StackError("Kafka needs Java 17 and Maven on PATH (apt-get install -y openjdk-17-jre-headless maven)")
    staging = cache_dir(cache_home) / "libs.partial"
    shutil.rmtree(staging, ignore_errors=True)
    result = subprocess.run(
        ["mvn", "-q", "-B", "-f", str(POM), "dependency:copy-dependencies",
         "-DincludeScope=runtime", f"-DoutputDirectory={staging}"],
        capture_output=True, text=True,
    )
    if result.returncode != 0:
        raise StackError(f"Maven could not resolve Kafka's jars:\n{(result.stdout + result.stderr)[-3000:]}")
    shutil.rmtree(libs, ignore_errors=True)
    staging.rename(libs)
    done.write_text(kafka_version())
    return libs


def _properties(data_dir: Path, host: str, port: int, controller_port: int, partitions: int) -> str:
    return "\n".join(
        [
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.bootstrap.servers={host}:{controller_port}",
            f"listeners=PLAINTEXT://{host}:{port},CONTROLLER://{host}:{controller_port}",
            f"advertised.listeners=PLAINTEXT://{host}:{port}",
            "controller.listener.names=CONTROLLER",
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "inter.broker.listener.name=PLAINTEXT",
            f"log.dirs={data_dir}",
            f"num.partitions={partitions}",
            "offsets.topic.replication.factor=1",
            "offsets.topic.num.partitions=8",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "share.coordinator.state.topic.replication.factor=1",
            "share.coordinator.state.topic.min.isr=1",
            "group.initial.rebalance.delay.ms=0",
            "log.retention.hours=168",
            "",
        ]
    )


def ensure_running(rundir: RunDir, settings: Settings) -> bool:
    """Use a broker answering at `settings.kafka_bootstrap`, else start our own (its jars cached in
    `settings.cache_home`). True when this call started it."""
    host, _, port_text = settings.kafka_bootstrap.split(",")[0].rpartition(":")
    port = int(port_text)
    if running_pid(rundir, "kafka", MARKER) or port_open(host, port):
        wait_until(lambda: port_open(host, port), 60, "Kafka", rundir.logfile("kafka"))
        return False
    libs = ensure_jars(settings.cache_home)
    home = rundir.home / "kafka"
    data = home / "data"
    home.mkdir(parents=True, exist_ok=True)
    config = home / "server.properties"
    config.write_text(_properties(data, host, port, port + 1, settings.events_partitions))
    classpath = f"{libs}/*"
    if not (data / "meta.properties").exists():
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        result = subprocess.run(
            ["java", "-cp", classpath, f"-Dlog4j2.configurationFile={LOG4J}", "kafka.tools.StorageTool",
             "format", "-t", cluster_id, "-c", str(config), "--standalone"],
            capture_output=True, text=True,
        )
        if result.returncode != 0:
            raise StackError(f"formatting Kafka's log directory failed:\n{result.stdout}{result.stderr}")
    start(rundir, "kafka", [
        "java", f"-Xmx{settings.kafka_heap}", "-Xms256m", "-XX:+UseG1GC", "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={LOG4J}", "-cp", classpath, MARKER, str(config),
    ])
    wait_until(lambda: port_open(host, port), 90, "Kafka", rundir.logfile("kafka"))
    return True
