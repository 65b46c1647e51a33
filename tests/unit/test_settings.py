"""Settings read from the environment: defaults, parsing and refusals."""

from __future__ import annotations

import pytest

from core.settings import ConfigError, Settings, redis_cluster_nodes


def test_the_aggregator_commit_interval_defaults_to_a_second_and_is_read_from_the_environment() -> None:
    assert Settings.from_env({}).aggregator_commit_interval_s == 1.0
    assert Settings.from_env({"METERLINE_AGGREGATOR_COMMIT_INTERVAL_S": "30"}).aggregator_commit_interval_s == 30.0
    # the upper bound itself is taken (an e2e test runs a worker with it)
    assert Settings.from_env({"METERLINE_AGGREGATOR_COMMIT_INTERVAL_S": "600"}).aggregator_commit_interval_s == 600.0


@pytest.mark.parametrize("value", ["0", "-1", "600.5"])
def test_an_aggregator_commit_interval_out_of_range_is_refused(value: str) -> None:
    with pytest.raises(ConfigError, match=r"^METERLINE_AGGREGATOR_COMMIT_INTERVAL_S must be in \(0, 600\]$"):
        Settings.from_env({"METERLINE_AGGREGATOR_COMMIT_INTERVAL_S": value})


def test_the_alerts_worker_reads_its_topic_group_and_niceness_from_the_environment() -> None:
    defaults = Settings.from_env({})
    assert (defaults.touched_topic, defaults.alerts_group, defaults.alerts_nice, defaults.alerts_metrics_port) == (
        "usage.touched", "meterline-alerts", 0, 9466)
    given = Settings.from_env({"METERLINE_TOUCHED_TOPIC": "t", "METERLINE_ALERTS_GROUP": "g",
                               "METERLINE_ALERTS_NICE": "10"})
    assert (given.touched_topic, given.alerts_group, given.alerts_nice) == ("t", "g", 10)


@pytest.mark.parametrize("value", ["-1", "20"])
def test_an_alerts_niceness_out_of_range_is_refused(value: str) -> None:
    with pytest.raises(ConfigError, match=r"^METERLINE_ALERTS_NICE must be in \[0, 19\]$"):
        Settings.from_env({"METERLINE_ALERTS_NICE": value})


def test_invoice_document_links_name_the_api_and_last_a_day_by_default() -> None:
    defaults = Settings.from_env({})
    assert (defaults.public_url, defaults.document_link_ttl_s) == ("http://127.0.0.1:3000", 86_400)
    # an API listening on every interface is reached on the loopback; a public address is taken as given
    assert Settings.from_env({"METERLINE_API_HOST": "0.0.0.0", "METERLINE_API_PORT": "8080"}).public_url == \
        "http://127.0.0.1:8080"
    assert Settings.from_env({"METERLINE_PUBLIC_URL": "https://billing.example.com/"}).public_url == \
        "https://billing.example.com"
    assert Settings.from_env({"METERLINE_API_HOST": "::1"}).public_url == "http://[::1]:3000"


@pytest.mark.parametrize(("name", "value", "message"), [
    ("METERLINE_PUBLIC_URL", "billing.example.com", r"^METERLINE_PUBLIC_URL must be an http\(s\):// URL without "
                                                    r"query, got 'billing.example.com'$"),
    ("METERLINE_PUBLIC_URL", "https://b.example.com/?x=1", r"^METERLINE_PUBLIC_URL must be an http\(s\):// URL"),
    ("METERLINE_DOCUMENT_LINK_TTL_S", "59", r"^METERLINE_DOCUMENT_LINK_TTL_S must be from 60 s to 7 days"),
    ("METERLINE_DOCUMENT_LINK_TTL_S", "604801", r"^METERLINE_DOCUMENT_LINK_TTL_S must be from 60 s to 7 days"),
    ("METERLINE_REDIS_URL", "redis+cluster://node-1",
     r"^METERLINE_REDIS_URL: each cluster node is host:port, got 'node-1' in "),
    ("METERLINE_REDIS_URL", "redis+cluster://node-1:7001,:7002",
     r"^METERLINE_REDIS_URL: each cluster node is host:port, got ':7002' in "),
    ("METERLINE_REDIS_URL", "redis+cluster://node-1:70000",
     r"^METERLINE_REDIS_URL must be between 1 and 65535, got 70000$"),
    ("METERLINE_REDIS_URL", "redis+cluster://node-1:7001/2", r"^a Redis Cluster has only database 0, got "),
    ("METERLINE_REDIS_URL", "memcached://node-1:7001",
     r"^METERLINE_REDIS_URL must be a redis:// URL or a redis\+cluster://"),
    ("METERLINE_LOCAL_REDIS", "sentinel", r"^METERLINE_LOCAL_REDIS must be single or cluster, got 'sentinel'$"),
    ("METERLINE_AGGREGATORS", "0", r"^METERLINE_AGGREGATORS must be from 1 to 64$"),
    ("METERLINE_AGGREGATORS", "65", r"^METERLINE_AGGREGATORS must be from 1 to 64$"),
    ("METERLINE_AGGREGATORS", "two", r"^METERLINE_AGGREGATORS must be a whole number, got 'two'$"),
])
def test_a_malformed_or_out_of_range_setting_is_refused(name: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings.from_env({name: value})


def test_a_cluster_url_names_its_startup_nodes_with_or_without_credentials() -> None:
    assert redis_cluster_nodes("redis+cluster://127.0.0.1:7001,10.0.0.2:7002") == [
        ("127.0.0.1", 7001), ("10.0.0.2", 7002)]
    assert redis_cluster_nodes("redis+cluster://user:p%40ss@node-1:6379/0") == [("node-1", 6379)]
    assert redis_cluster_nodes("redis+cluster://[::1]:7001") == [("::1", 7001)]
    settings = Settings.from_env({"METERLINE_REDIS_URL": "redis+cluster://127.0.0.1:7001",
                                  "METERLINE_LOCAL_REDIS": "cluster", "METERLINE_AGGREGATORS": "3"})
    assert (settings.redis_url, settings.local_redis, settings.aggregators) == (
        "redis+cluster://127.0.0.1:7001", "cluster", 3)
