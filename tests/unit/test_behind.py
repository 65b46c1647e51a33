"""The aggregators first (aggregator/behind.py, aggregator/alerts_app.py): the backlog an aggregator measures,
and how the alerts worker evaluates within its budget while one is behind (a fake clock, no services)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from aggregator.alerts_app import BULK, BULK_YIELDING, DUTY, DUTY_YIELDING, REST_CHECK_S, Budget, evaluate_within
from aggregator.behind import backlog
from aggregator.touched import TouchedPair


def test_backlog_counts_the_events_past_a_batch_on_each_partition_whose_end_is_known() -> None:
    ends = {("events", 0): 1_000, ("events", 1): 50, ("events", 2): None}
    # partition 0: offsets 800..999 wait; 1: the batch reached its end; 2: no fetch reported an end yet
    assert backlog({("events", 0): 799, ("events", 1): 49, ("events", 2): 10}, ends.get) == 200
    assert backlog({("events", 1): 60}, ends.get) == 0  # an end older than the batch: nothing waits
    assert backlog({}, ends.get) == 0


class Clock:
    def __init__(self) -> None:
        self.now = 100.0
        self.rests: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.rests.append(seconds)
        self.now += seconds


def run(pairs: int, behind: list[bool], seconds_per_pair: float) -> tuple[list[int], Clock]:
    """Evaluate `pairs` pairs while `behind` says, in turn, whether an aggregator is behind (its last answer
    holding); the chunk sizes evaluated and the clock."""
    clock = Clock()
    chunks: list[int] = []
    answers = iter(behind)
    last = [False]

    async def yielding() -> bool:
        last[0] = next(answers, last[0])
        return last[0]

    async def evaluate(chunk: Sequence[TouchedPair]) -> float:
        chunks.append(len(chunk))
        clock.now += len(chunk) * seconds_per_pair
        return len(chunk) * seconds_per_pair

    pairs_list = [TouchedPair("o", f"s{n}", f"sub{n}", "p") for n in range(pairs)]
    asyncio.run(evaluate_within(pairs_list, Budget(clock), yielding, evaluate, clock.sleep))
    return chunks, clock


def test_a_live_stream_is_evaluated_at_once_in_one_chunk() -> None:
    chunks, clock = run(20, [False], 0.0001)
    assert (chunks, clock.rests) == ([20], [])


def test_while_an_aggregator_is_behind_small_chunks_take_a_fiftieth_of_the_time() -> None:
    chunks, clock = run(1_000, [True], 0.0002)  # 100 pairs: 0.02 s of evaluation each
    assert chunks == [BULK_YIELDING] * 10
    assert max(clock.rests) <= REST_CHECK_S  # a rest is taken in pieces, asking again after each
    evaluating, last_chunk, elapsed = 1_000 * 0.0002, 0.02, clock.now - 100.0
    # before its last chunk, evaluation took what was saved up (0.05 s at most once yielding, of 0.5 s) and
    # DUTY_YIELDING of the time since: 6.3 s of rests for 0.2 s of evaluation
    assert evaluating - last_chunk == pytest.approx(0.05 + DUTY_YIELDING * (elapsed - last_chunk))
    assert elapsed > 6.0


def test_once_the_aggregators_caught_up_the_worker_takes_its_own_share_again() -> None:
    chunks, clock = run(3_000, [True, True, False], 0.001)  # behind for one chunk and the check after it
    assert chunks[0] == BULK_YIELDING and chunks[1:] == [BULK, BULK, BULK - BULK_YIELDING]
    assert sum(clock.rests) < (3_000 * 0.001) / DUTY + 1.0
