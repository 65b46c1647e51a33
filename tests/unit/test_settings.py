"""Settings read from the environment: defaults, parsing and refusals."""

from __future__ import annotations

import pytest

from core.settings import ConfigError, Settings


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
