"""The worker's garbage collection: start-up frozen, young collections on a clock, not on allocations."""

from __future__ import annotations

import asyncio
import gc
import time
import weakref
from collections.abc import Callable, Iterator

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


async def clock_until(done: Callable[[], bool], every_s: float, full_every: int, deadline_s: float = 5.0) -> None:
    """Run the clock until `done()` holds (checked every tick), at most `deadline_s`."""
    clock = asyncio.ensure_future(collect_regularly(every_s, full_every))
    try:
        give_up = time.monotonic() + deadline_s
        while not done() and time.monotonic() < give_up:
            await asyncio.sleep(every_s)
    finally:
        clock.cancel()


def collections(generation: int) -> int:
    return int(gc.get_stats()[generation]["collections"])


def test_settle_freezes_start_up_and_leaves_young_collections_to_the_clock(collector: None) -> None:
    settle()
    assert gc.get_threshold()[0] == YOUNG_THRESHOLD
    assert gc.get_freeze_count() > 0
    garbage = cycle()
    batch = [Node() for _ in range(100_000)]  # what a batch holds alive: no collection on its account
    assert garbage() is not None
    del batch


def test_the_clock_collects_young_cycles(collector: None) -> None:
    settle()
    garbage = cycle()
    asyncio.run(clock_until(lambda: garbage() is None, every_s=0.01, full_every=1_000))
    assert garbage() is None


def test_a_cycle_that_reached_the_oldest_generation_goes_at_the_full_collection(collector: None) -> None:
    settle()
    first = Node()
    first.other = Node()
    first.other.other = first
    gc.collect(1)  # survived a collection of the two young generations while alive: now in the oldest
    garbage = weakref.ref(first)
    del first
    young, full = collections(1), collections(2)
    asyncio.run(clock_until(lambda: collections(1) >= young + 3, every_s=0.01, full_every=1_000))
    assert (collections(1) >= young + 3, collections(2)) == (True, full)  # three young collections, no full one
    assert garbage() is not None
    asyncio.run(clock_until(lambda: garbage() is None, every_s=0.01, full_every=1))
    assert collections(2) > full
    assert garbage() is None
