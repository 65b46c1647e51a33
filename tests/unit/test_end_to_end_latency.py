"""How the end-to-end benchmark turns acceptances and usage answers into latencies."""

import pytest

from meterline.bench.bench_end_to_end import latencies


def test_latency_runs_from_acceptance_to_the_first_answer_showing_the_request_s_count() -> None:
    accepted = [(10.0, 100), (10.1, 200), (10.2, 300)]
    answers = [(9.95, 0), (10.03, 100), (10.08, 100), (10.25, 300), (10.3, 300)]
    assert latencies(accepted, answers) == pytest.approx([30.0, 150.0, 50.0])


def test_a_count_visible_before_the_acceptance_arrived_counts_as_zero() -> None:
    assert latencies([(5.0, 100)], [(4.99, 100)]) == [0.0]


def test_a_count_never_reached_is_an_error_not_a_figure() -> None:
    with pytest.raises(RuntimeError, match="200 events never became visible"):
        latencies([(1.0, 200)], [(1.5, 100), (2.0, 199)])
