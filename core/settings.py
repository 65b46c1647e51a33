"""One frozen settings object, read once from the environment at start-up.

Every process calls `load_settings()` exactly once: the environment, with `.meterline/env` (written
by `meterline up`) filling what is unset. Nothing else in the code base reads `os.environ` for
configuration. `meterline check-config` prints the resolved values.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from urllib.parse import urlsplit

DEFAULT_FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")  # Debian's fonts-dejavu-core
DOCUMENT_FONTS = {"": "DejaVuSans.ttf", "B": "DejaVuSans-Bold.ttf"}  # invoice documents' (by style: regular, bold)


class ConfigError(ValueError):
    """A setting is missing or malformed."""


DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_AGGREGATOR_METRICS_PORT = 9464
CLUSTER_SCHEME = "redis+cluster"  # METERLINE_REDIS_URL=redis+cluster://host:port[,host:port...]: a Redis Cluster


def redis_cluster_nodes(url: str) -> list[tuple[str, int]]:
    """The startup nodes of a `redis+cluster://[user:password@]host:port[,host:port...][/0]` URL, in order (pure).
    Any one of them is enough for the client to find the whole cluster; more ride out a node being down."""
    rest = url.split("://", 1)[1]
    rest = rest.rsplit("@", 1)[1] if "@" in rest else rest
    hosts, _, database = rest.partition("/")
    if database not in ("", "0"):
        raise ConfigError(f"a Redis Cluster has only database 0, got {url!r}")
    nodes = []
    for entry in hosts.split(","):
        host, sep, port = entry.strip().rpartition(":")
        if not sep or not host:
            raise ConfigError(f"METERLINE_REDIS_URL: each cluster node is host:port, got {entry!r} in {url!r}")
        nodes.append((host.strip("[]"), _port("METERLINE_REDIS_URL", port)))
    return nodes


def _port(name: str, raw: str) -> int:
    try:
        value = int(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be a port number, got {raw!r}") from exc
    if not 0 < value < 65536:
        raise ConfigError(f"{name} must be between 1 and 65535, got {value}")
    return value


def _count(name: str, raw: str) -> int:
    try:
        return int(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from exc


def _local_url(env: Mapping[str, str]) -> str:
    """The API's own address, when no public one is set (one listening on every interface: the loopback's)."""
    host = env.get("METERLINE_API_HOST", "127.0.0.1")
    host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    host = f"[{host}]" if ":" in host else host  # an IPv6 address
    return f"http://{host}:{env.get('METERLINE_API_PORT', '3000')}"


@dataclass(frozen=True)
class Settings:
    kafka_bootstrap: str
    redis_url: str
    database_url: str
    home: Path
    api_host: str
    api_port: int
    ingest_host: str
    ingest_port: int
    events_topic: str
    rejected_topic: str
    events_partitions: int
    consumer_group: str
    # the (subscription, period) pairs each batch changed, for the alerts worker (aggregator/alerts_app.py)
    touched_topic: str
    alerts_group: str
    max_body_bytes: int
    publish_timeout_s: float
    aggregator_batch_size: int  # events per Kafka fetch; a batch is up to events_partitions fetched chunks
    aggregator_batch_within_s: float
    aggregator_commit_interval_s: float  # the latest a finished batch's offsets wait (each is committed at once)
    ingest_workers: int
    aggregator_metrics_host: str
    aggregator_metrics_port: int  # 0 disables the aggregator's /metrics server
    biller_metrics_host: str
    biller_metrics_port: int  # 0 disables the biller's /metrics server
    alerts_metrics_host: str
    alerts_metrics_port: int  # 0 disables the alerts worker's /metrics server
    alerts_nice: int  # the alerts worker's niceness (0-19)
    ingest_rate_limit_events_per_s: float
    ingest_rate_limit_burst: float
    api_key_cache_ttl_s: float
    aggregator_runtime: str = "faust"  # or "kafka": aggregator/kafka_loop.py
    # the local stack's aggregator processes, one consumer group (`meterline up` starts aggregator-1..N)
    aggregators: int = 1
    # which Redis `meterline up` starts when METERLINE_REDIS_URL is not set: "single" (one redis-server on
    # 6379) or "cluster" (three masters with a replica each, meterline.stack.redis_cluster)
    local_redis: str = "single"
    # invoice documents: the API's address as their links name it, how long a link works, and the TrueType fonts
    public_url: str = "http://127.0.0.1:3000"
    document_link_ttl_s: int = 86_400
    document_font_dir: Path = DEFAULT_FONT_DIR
    # the local stack (`meterline up`): where Kafka's jars are cached, the broker's heap, and the
    # default organization's API key to bootstrap (else the one in `home/api-key`, else a new one)
    cache_home: Path = Path("~/.cache/meterline")  # expanded where it is used
    kafka_heap: str = "1g"
    bootstrap_api_key: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        """Parse and validate the settings from these variables (`load_settings` passes the environment)."""
        home = Path(env.get("METERLINE_HOME", ".meterline")).resolve()
        settings = cls(
            kafka_bootstrap=env.get("METERLINE_KAFKA_BOOTSTRAP", "127.0.0.1:9092"),
            redis_url=env.get("METERLINE_REDIS_URL", DEFAULT_REDIS_URL),
            database_url=env.get(
                "METERLINE_DATABASE_URL", "postgresql://meterline:meterline@127.0.0.1:5432/meterline"
            ),
            home=home,
            api_host=env.get("METERLINE_API_HOST", "127.0.0.1"),
            api_port=_port("METERLINE_API_PORT", env.get("METERLINE_API_PORT", "3000")),
            ingest_host=env.get("METERLINE_INGEST_HOST", "127.0.0.1"),
            ingest_port=_port("METERLINE_INGEST_PORT", env.get("METERLINE_INGEST_PORT", "3001")),
            events_topic=env.get("METERLINE_EVENTS_TOPIC", "events"),
            rejected_topic=env.get("METERLINE_REJECTED_TOPIC", "events.rejected"),
            events_partitions=int(env.get("METERLINE_EVENTS_PARTITIONS", "4")),
            consumer_group=env.get("METERLINE_CONSUMER_GROUP", "meterline-aggregator"),
            touched_topic=env.get("METERLINE_TOUCHED_TOPIC", "usage.touched"),
            alerts_group=env.get("METERLINE_ALERTS_GROUP", "meterline-alerts"),
            max_body_bytes=int(env.get("METERLINE_MAX_BODY_BYTES", str(1024 * 1024))),
            publish_timeout_s=float(env.get("METERLINE_PUBLISH_TIMEOUT_S", "8")),
            aggregator_batch_size=int(env.get("METERLINE_AGGREGATOR_BATCH_SIZE", "4000")),
            aggregator_batch_within_s=float(env.get("METERLINE_AGGREGATOR_BATCH_WITHIN_S", "0.05")),
            aggregator_commit_interval_s=float(env.get("METERLINE_AGGREGATOR_COMMIT_INTERVAL_S", "1.0")),
            # ingest processes sharing the port; measured on 2 cores: 2 beat 1 by ~60% (bench_ingest)
            ingest_workers=int(env.get("METERLINE_INGEST_WORKERS", "2")),
            aggregator_metrics_host=env.get("METERLINE_AGGREGATOR_METRICS_HOST", "127.0.0.1"),
            aggregator_metrics_port=int(env.get("METERLINE_AGGREGATOR_METRICS_PORT",
                                                str(DEFAULT_AGGREGATOR_METRICS_PORT))),
            biller_metrics_host=env.get("METERLINE_BILLER_METRICS_HOST", "127.0.0.1"),
            biller_metrics_port=int(env.get("METERLINE_BILLER_METRICS_PORT", "9465")),
            alerts_metrics_host=env.get("METERLINE_ALERTS_METRICS_HOST", "127.0.0.1"),
            alerts_metrics_port=int(env.get("METERLINE_ALERTS_METRICS_PORT", "9466")),
            alerts_nice=int(env.get("METERLINE_ALERTS_NICE", "0")),
            # Events per second per organization, across every process taking events (ingest.ratelimit); 0 disables.
            ingest_rate_limit_events_per_s=float(env.get("METERLINE_INGEST_RATE_LIMIT", "200000")),
            ingest_rate_limit_burst=float(env.get("METERLINE_INGEST_RATE_BURST", "200000")),
            api_key_cache_ttl_s=float(env.get("METERLINE_API_KEY_CACHE_TTL_S", "10")),
            aggregator_runtime=env.get("METERLINE_AGGREGATOR_RUNTIME", "faust"),
            aggregators=_count("METERLINE_AGGREGATORS", env.get("METERLINE_AGGREGATORS", "1")),
            local_redis=env.get("METERLINE_LOCAL_REDIS", "single"),
            public_url=env.get("METERLINE_PUBLIC_URL", "").rstrip("/") or _local_url(env),
            document_link_ttl_s=int(env.get("METERLINE_DOCUMENT_LINK_TTL_S", "86400")),
            document_font_dir=Path(env.get("METERLINE_DOCUMENT_FONT_DIR", str(DEFAULT_FONT_DIR))),
            cache_home=Path(env.get("METERLINE_CACHE", "~/.cache/meterline")),
            kafka_heap=env.get("METERLINE_KAFKA_HEAP", "1g"),
            bootstrap_api_key=env.get("METERLINE_API_KEY") or None,
        )
        settings.validate()
        return settings

    def validate(self) -> None:
        scheme = urlsplit(self.redis_url).scheme
        if scheme == CLUSTER_SCHEME:
            redis_cluster_nodes(self.redis_url)  # raises ConfigError when a node is malformed
        elif scheme not in ("redis", "rediss", "unix"):
            raise ConfigError("METERLINE_REDIS_URL must be a redis:// URL or a "
                              f"redis+cluster://host:port[,host:port...] one, got {self.redis_url!r}")
        if self.local_redis not in ("single", "cluster"):
            raise ConfigError(f"METERLINE_LOCAL_REDIS must be single or cluster, got {self.local_redis!r}")
        if not 1 <= self.aggregators <= 64:
            raise ConfigError("METERLINE_AGGREGATORS must be from 1 to 64")
        if urlsplit(self.database_url).scheme not in ("postgresql", "postgresql+psycopg", "postgres"):
            raise ConfigError(f"METERLINE_DATABASE_URL must be a postgresql:// URL, got {self.database_url!r}")
        if not self.kafka_bootstrap.strip():
            raise ConfigError("METERLINE_KAFKA_BOOTSTRAP must name at least one broker")
        if self.events_partitions < 1:
            raise ConfigError("METERLINE_EVENTS_PARTITIONS must be at least 1")
        if not 0 < self.publish_timeout_s <= 10:
            raise ConfigError("METERLINE_PUBLISH_TIMEOUT_S must be in (0, 10]: a client waits at most 10 s")
        if self.aggregator_batch_size < 1:
            raise ConfigError("METERLINE_AGGREGATOR_BATCH_SIZE must be at least 1")
        if not 0 < self.aggregator_commit_interval_s <= 600:
            raise ConfigError("METERLINE_AGGREGATOR_COMMIT_INTERVAL_S must be in (0, 600]")
        if self.ingest_workers < 1:
            raise ConfigError("METERLINE_INGEST_WORKERS must be at least 1")
        if self.ingest_rate_limit_events_per_s < 0 or self.ingest_rate_limit_burst < 100:
            raise ConfigError("METERLINE_INGEST_RATE_LIMIT must be >= 0 (0: off) and METERLINE_INGEST_RATE_BURST "
                              ">= 100 (one full batch)")
        if self.aggregator_runtime not in ("faust", "kafka"):
            raise ConfigError("METERLINE_AGGREGATOR_RUNTIME must be faust or kafka")
        if not 0 <= self.alerts_nice <= 19:
            raise ConfigError("METERLINE_ALERTS_NICE must be in [0, 19]")
        public = urlsplit(self.public_url)
        if public.scheme not in ("http", "https") or not public.netloc or public.query or public.fragment:
            raise ConfigError(f"METERLINE_PUBLIC_URL must be an http(s):// URL without query, got {self.public_url!r}")
        if not 60 <= self.document_link_ttl_s <= 7 * 86_400:
            raise ConfigError("METERLINE_DOCUMENT_LINK_TTL_S must be from 60 s to 7 days (604800)")
        if not 0 < self.api_key_cache_ttl_s <= 30:
            raise ConfigError("METERLINE_API_KEY_CACHE_TTL_S must be in (0, 30]: a revoked key stops within 30 s")

    @property
    def sqlalchemy_url(self) -> str:
        """The database URL with the psycopg 3 driver named, as SQLAlchemy wants it."""
        scheme, _, rest = self.database_url.partition("://")
        return f"postgresql+psycopg://{rest}" if scheme in ("postgresql", "postgres") else self.database_url

    def describe(self) -> dict[str, str]:
        """The settings for display, with the database password masked."""
        values = {f.name: str(getattr(self, f.name)) for f in fields(self)}
        parts = urlsplit(self.database_url)
        if parts.password:
            values["database_url"] = self.database_url.replace(f":{parts.password}@", ":***@", 1)
        if self.bootstrap_api_key:
            values["bootstrap_api_key"] = "***"
        return values


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Settings from the environment, with `.meterline/env` (written by `up`) filling what is unset."""
    merged = dict(os.environ if env is None else env)
    env_file = Path(merged.get("METERLINE_HOME", ".meterline")) / "env"
    if env_file.exists():
        for line in env_file.read_text().splitlines():
            name, sep, value = line.partition("=")
            if sep and name.strip() and name.strip() not in merged:
                merged[name.strip()] = value.strip()
    return Settings.from_env(merged)
