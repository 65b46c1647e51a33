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
