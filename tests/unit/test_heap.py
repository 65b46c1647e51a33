"""The worker's garbage collection: start-up frozen, young collections on a clock, not on allocations."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Iterator

import pytest

from aggregator.heap import YOUNG_THRESHOLD, collect_regularly, settle


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


def cycle() -> weakref.ref[Node]:
    """A reference cycle nothing else holds: only the cycle collector frees it."""
    first, second = Node(), Node()
    first.other, second.other = second, first
    return weakref.ref(first)


@pytest.fixture
def collector() -> Iterator[None]:
    threshold = gc.get_threshold()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)


async def run_for(seconds: float, every_s: float, full_every: int) -> None:
    clock = asyncio.ensure_future(collect_regularly(every_s, full_every))
    await asyncio.sleep(seconds)
    clock.cancel()


def test_settle_freezes_start_up_and_leaves_young_collections_to_the_clock(collector: None) -> None:
    settle()
    assert gc.get_threshold()[0] == YOUNG_THRESHOLD
    assert gc.get_freeze_count() > 0
    garbage = cycle()
    batch = [Node() for _ in range(100_000)]  # what a batch holds alive: no collection on its account
    assert garbage() is not None
    assert len(batch) == 100_000


def test_the_clock_collects_young_cycles(collector: None) -> None:
    settle()
    garbage = cycle()
    asyncio.run(run_for(0.3, every_s=0.01, full_every=1_000))
    assert garbage() is None


def test_a_cycle_that_reached_the_oldest_generation_goes_at_the_full_collection(collector: None) -> None:
    settle()
    first = Node()
    first.other = Node()
    first.other.other = first
    gc.collect(1)  # survived a collection of the two young generations while alive: now in the oldest
    garbage = weakref.ref(first)
    del first
    asyncio.run(run_for(0.1, every_s=0.01, full_every=1_000))  # young collections only
    assert garbage() is not None
    asyncio.run(run_for(0.3, every_s=0.01, full_every=1))
    assert garbage() is None
