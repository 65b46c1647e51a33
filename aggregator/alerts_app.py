"""The alerts worker (`meterline alerts`): a Faust worker evaluating the usage each batch changed.

The aggregator publishes the watched (subscription, period) pairs of every batch to `usage.touched`
before it acknowledges the batch (aggregator/processor.py, step 4); this worker takes what arrived
(one batch of messages, `TAKE` at most, waiting `WITHIN_S` at most), evaluates each distinct pair
once against the usage now in Redis (aggregator/alerts.py; `BULK` pairs at a time, within a budget
of evaluation time; `BULK_YIELDING` within a smaller one while an aggregator is behind), and only then
acknowledges the messages.
Evaluation used to run inside the aggregator's batches, where it cost two fifths of its throughput with
an alert on each of 10,000 subscriptions; here it runs beside it, and a pair touched by several
batches while this worker was busy is evaluated once.

Exactly once, with at-least-once messages: a pair is evaluated after its batch's usage is in Redis,
and firing is idempotent (the durable record, under its row lock: core/db/thresholds.py):
- a crash before the messages are committed: they are evaluated again, which finds the levels fired;
- two workers around a rebalance: the record's row lock lets one of them fire;
- a pair evaluated late reads a later usage (a later batch's too): each level still fires once,
  and the alert's `current_value` is the usage when it was evaluated.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import Any, cast

import faust
from redis.asyncio import Redis

from aggregator.alerts import Evaluated, Evaluator, Touched
from aggregator.app import CommitSoon, abandon, worker_app
from aggregator.behind import aggregators_behind
from aggregator.catalog import SubscriptionCatalog
from aggregator.model import SubscriptionView
from aggregator.processor import transient_errors, until_done
from aggregator.stats import alerts_done
from aggregator.touched import TouchedPair, read_touched
from core.clients import database, redis_client
from core.db.catalog_changes import CatalogChanges
from core.logs import logging_config, work_id
from core.settings import Settings

log = logging.getLogger("meterline.alerts")
TAKE = 256  # messages at most per evaluation (each one names a batch's pairs on one partition)
WITHIN_S = 0.05  # the longest a message waits for others before it is evaluated
# Pairs are evaluated BULK at a time, and evaluating may take DUTY of the worker's time over the long run,
# BURST_S at once (a token bucket of evaluation time): a live stream's takes (a few pairs, milliseconds)
# never wait, while a backlog drained by the aggregators (thousands of subscriptions touched a second) is
# evaluated in rounds with rests between, each round covering more batches, so that it takes less of the
# CPU, Redis and PostgreSQL the aggregators count with. Less, not none: on two cores the aggregator still
# counted a quarter slower beside it (`make bench`, aggregator_with_alerts_ratio), hence the yielding below.
# The aggregators come first: while one of them has a backlog (aggregator/behind.py), evaluating
# may take DUTY_YIELDING of the time and save up BURST_YIELDING_S, so that a drain goes at nearly the speed
# it would without alerts, and its alerts come once it is through (or at that pace while it is not); it
# then evaluates BULK_YIELDING pairs at a time, as a chunk may run past the budget (1,000 pairs whose views
# are read from PostgreSQL took 0.3 s). A rest is taken in pieces of REST_CHECK_S at most, each asking
# again, so that the worker's own share comes back at most that long after the aggregators caught up. A
# pair waiting longer than YIELD_AT_MOST_S is evaluated at the worker's own share anyway: an aggregator behind
# for long (a replay, too few workers) delays alerts that long, not until it is through.
BULK = 1_000
BULK_YIELDING = 100
DUTY = 0.25
BURST_S = 0.5
DUTY_YIELDING = 0.02
BURST_YIELDING_S = 0.05
REST_CHECK_S = 0.2
YIELD_AT_MOST_S = 30.0  # a pair waiting longer is evaluated at the worker's own share, backlog or not


class Budget:
    """Evaluation time allowed: DUTY of the time passed, BURST_S at most saved up; DUTY_YIELDING and
    BURST_YIELDING_S while the aggregators are behind."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self.left = BURST_S
        self.at = clock()

    def wait_s(self, yielding: bool = False) -> float:
        """How long to rest before the next evaluation."""
        duty, burst = (DUTY_YIELDING, BURST_YIELDING_S) if yielding else (DUTY, BURST_S)
        now = self.clock()
        self.left = min(self.left + (now - self.at) * duty, burst)
        self.at = now
        return max(-self.left / duty, 0.0)

    def spend(self, seconds: float) -> None:
        self.left -= seconds


async def touched_views(catalog: SubscriptionCatalog, pairs: set[TouchedPair]) -> Touched:
    """The watched subscription of each pair, as the catalog knows it now: the one of its external_id's chain
    the pair names (a late event's, before a plan change). A cached view behind the aggregator's (without the
    pair's subscription, or not watched: a plan change or an alert that came since) is read again; a pair whose
    subscription is gone (canceled) or no longer watched (its alerts deleted) has nothing to evaluate."""
    views = await catalog.lookup({pair.scope for pair in pairs})
    behind = {pair.scope for pair in pairs if _watched(views.get(pair.scope), pair) is None}
    if behind:
        views.update(await catalog.refresh(behind))
    touched = {}
    for pair in sorted(pairs):
        view = _watched(views.get(pair.scope), pair)
        if view is not None:
            touched[(view.id, pair.period_key)] = view
    return touched


def _watched(view: SubscriptionView | None, pair: TouchedPair) -> SubscriptionView | None:
    while view is not None and view.id != pair.subscription_id:
        view = view.predecessor
    return view if view is not None and view.watched else None


class Watcher:
    def __init__(self, catalog: SubscriptionCatalog, evaluator: Evaluator):
        self.catalog = catalog
        self.evaluator = evaluator

    async def evaluate(self, pairs: Sequence[TouchedPair]) -> Evaluated:
        """The evaluation of these pairs; its `seconds` with the catalog's lookup (often half of it)."""
        began = time.monotonic()
        with transient_errors():
            report = await self.evaluator.evaluate(await touched_views(self.catalog, set(pairs)))
        report.seconds = time.monotonic() - began
        return report


def distinct_pairs(values: Sequence[bytes]) -> list[TouchedPair]:
    """The pairs of these messages, each once (several batches touched it), in order."""
    pairs: set[TouchedPair] = set()
    for value in values:
        try:
            pairs |= read_touched(value)
        except ValueError as exc:  # only the aggregator writes the topic: a bug, logged and skipped
            log.error("skipping a message: %s", exc)
    return sorted(pairs)


async def should_yield(client: Redis, oldest_s: float) -> bool:
    """Whether to evaluate within the smaller share: an aggregator is behind, and the oldest pair waiting was
    touched less than YIELD_AT_MOST_S ago (past it, alerts come before the backlog is through)."""
    return time.time() - oldest_s < YIELD_AT_MOST_S and await aggregators_behind(client)


async def evaluate_chunk(watcher: Watcher, client: Redis, chunk: Sequence[TouchedPair]) -> float:
    """Evaluate a chunk until it goes through (an outage is waited out); the seconds its try took."""
    report = await until_done(partial(watcher.evaluate, chunk), len(chunk))
    await alerts_done(client, report, report.seconds)
    return report.seconds


async def evaluate_within(pairs: Sequence[TouchedPair], budget: Budget, yielding: Callable[[], Awaitable[bool]],
                          evaluate: Callable[[Sequence[TouchedPair]], Awaitable[float]],
                          sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
    """Evaluate the pairs in chunks, resting whenever the budget says so (asking `yielding` before each chunk
    and every REST_CHECK_S of a rest): BULK pairs at a time, BULK_YIELDING while yielding."""
    start = 0
    while start < len(pairs):
        smaller = await yielding()
        while (rest_s := budget.wait_s(smaller)) > 0:
            await sleep(min(rest_s, REST_CHECK_S))
            smaller = await yielding()
        chunk = pairs[start:start + (BULK_YIELDING if smaller else BULK)]
        start += len(chunk)
        budget.spend(await evaluate(chunk))  # the try that went through, not an outage before it


def create_alerts_app(settings: Settings) -> faust.App:
    app = worker_app(settings, settings.alerts_group)  # a new group starts from the oldest pairs kept
    touched = app.topic(settings.touched_topic, value_type=bytes, key_type=bytes, internal=False)
    resources: dict[str, Any] = {}

    @app.task
    async def open_stores() -> None:
        engine = database(settings, pool_size=4)
        redis = redis_client(settings.redis_url, timeout_s=5)
        resources["redis"] = redis
        resources["watcher"] = Watcher(SubscriptionCatalog(engine, changes=CatalogChanges(engine)),
                                       Evaluator(engine, redis))

    @app.agent(touched, concurrency=1)
    async def evaluate(stream: faust.StreamT) -> None:
        while "watcher" not in resources:
            await asyncio.sleep(0.05)
        watcher: Watcher = resources["watcher"]
        commit_soon = CommitSoon(app)
        budget = Budget()
        taken = 0
        events: Sequence[faust.EventT] = []
        try:
            async for events in cast(faust.Stream, stream).noack_take(TAKE, within=WITHIN_S):
                taken += 1
                work_id.set(f"alerts-{os.getpid()}-{taken}")
                pairs = distinct_pairs([event.value for event in events])
                oldest = min(event.message.timestamp for event in events)
                await evaluate_within(pairs, budget, partial(should_yield, resources["redis"], oldest),
                                      partial(evaluate_chunk, watcher, resources["redis"]))
                for event in events:  # only now may Faust commit them
                    await stream.ack(event)
                commit_soon()
                events = []
        except asyncio.CancelledError as exc:  # the worker stops
            if events:
                abandon(len(events), exc, "touched messages")
            raise
        except BaseException as exc:  # noqa: BLE001 - a bug: Faust would restart the agent on the same stream
            abandon(len(events), exc, "touched messages")

    return app


def run_alerts_worker(settings: Settings) -> None:
    app = create_alerts_app(settings)
    worker = faust.Worker(app, loglevel="INFO", quiet=True, logging_config=logging_config("alerts"))
    worker.execute_from_commandline()
