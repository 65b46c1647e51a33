"""Alerts and progressive billing thresholds, evaluated for the usage some batches changed.

The alerts worker (aggregator/alerts_app.py) hands over every (subscription, period) pair the aggregator's
batches touched whose subscription is watched (it has alerts or progressive billing thresholds,
aggregator/model.py). The usage now in Redis is read (one pipelined round trip for them all), priced as
current usage prices it, and compared with the highest level each alert (or the progressive thresholds)
fired in that period. Almost always nothing is crossed: that comparison is made against levels this worker
keeps in memory (loaded once per period from `threshold_states`, one query per evaluation for the new
ones), so an evaluation costs no database write. When something is crossed, one transaction (for all of
the evaluation's crossings) fires it for good (core.db.thresholds.fire: under the row lock of the period's
record) and writes what it fired beside it:
- an alert: a `triggered_alerts` row listing every level crossed and an `alert.triggered` webhook;
- progressive billing: a `progressive_crossings` row at the highest level crossed, with the usage it
  saw per charge, which the biller invoices (rater/billing/progressive.py), and a
  `subscription.usage_threshold_reached` webhook.

Exactly once: the pairs of a batch are published before the aggregator acknowledges it, and evaluated
before the alerts worker acknowledges them (aggregator/processor.py, aggregator/alerts_app.py):
- a crash before the firing transaction commits: the pairs come again and are evaluated again, and fire
  what they crossed (nothing was recorded);
- a crash after it commits: evaluated again, they find the levels recorded and fire nothing;
- two workers around a rebalance, or a level remembered too low in memory: the transaction takes the
  record's row lock and re-reads it, so the second finds the level fired;
- Redis rebuilt or flushed and rebuilt: usage comes back to the same values, the records are in
  PostgreSQL, so nothing fires again.
Levels remembered in memory are never above the record (they are only raised by this worker's own
committed firings), so no crossing is missed because of them.

`previous_value` in a triggered alert is the value this worker saw at its previous evaluation of that
alert and period, or, after a restart, the value recorded when the alert last fired (0 before).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from aggregator.model import SubscriptionView
from core.clients import AnyRedis
from core.db.thresholds import (
    Fired,
    Measured,
    ProgressiveCrossing,
    TriggeredAlert,
    fire,
    fired_levels,
    invoiced_usage_by_period,
    record_progressive_crossings,
    record_triggered_alerts,
)
from core.domain.aggregation import MetricUsage
from core.domain.charges import charge_fee, units_text
from core.domain.thresholds import Alert, Threshold, alert_value, crossed, usage_amount
from core.metrics import ALERT_EVALUATION_SECONDS, ALERTS_EVALUATED, ALERTS_FIRED
from core.usage_state.redis_state import read_usages

log = logging.getLogger("meterline.aggregator")
Touched = Mapping[tuple[str, str], SubscriptionView]  # (subscription id, period key) -> its view
MEMORY_LIMIT = 200_000  # remembered (subject, period) records; past it, forgotten and read again


@dataclass
class Evaluated:
    evaluated: int = 0  # alerts and progressive threshold sets compared with a new value
    fired: int = 0  # alerts triggered and progressive thresholds reached
    seconds: float = 0.0
    recent: list[dict[str, Any]] = field(default_factory=list)  # what fired, for the ops page


@dataclass(frozen=True)
class _Candidate:
    """What one alert (or a subscription's progressive billing) measured in one period."""

    view: SubscriptionView
    usage_period_key: str
    subject_id: str  # the alert, or the subscription for its progressive billing
    period_key: str
    thresholds: tuple[Threshold, ...]
    value: Decimal
    alert: Alert | None
    usage: Mapping[str, MetricUsage]

    @property
    def record(self) -> tuple[str, str]:
        return self.subject_id, self.period_key


class Evaluator:
    def __init__(self, engine: AsyncEngine, redis: AnyRedis):
        self.engine = engine
        self.redis = redis
        self._fired: dict[tuple[str, str], Decimal | None] = {}  # never above the durable record
        self._seen: dict[tuple[str, str], Decimal] = {}  # the value of the previous evaluation

    async def evaluate(self, touched: Touched) -> Evaluated:
        began = time.monotonic()
        report = Evaluated()
        if not touched:
            return report
        items = list(touched.items())
        usages = await read_usages(self.redis, [
            (view.scope, view.metric_ids, period_key)
            for (_, period_key), view in items])
        invoiced = await self._invoiced(items)
        measured: list[_Candidate] = []
        for ((_, usage_period_key), view), usage in zip(items, usages, strict=True):
            # a lifetime alert adds what was invoiced for the external_id's other periods (this one's usage is in
            # Redis, even while a draft invoices it)
            by_period = invoiced.get((view.organization_id, view.external_id), {})
            earlier = sum(cents for key, cents in by_period.items() if key != usage_period_key)
            for alert in view.alerts:
                value = alert_value(alert.alert_type, alert.metric_id, view.lines, usage, view.currency, earlier)
                measured.append(_Candidate(view, usage_period_key, alert.id, alert.period_key(usage_period_key),
                                           alert.thresholds, value, alert, usage))
            if view.usage_thresholds:
                measured.append(_Candidate(view, usage_period_key, view.id, usage_period_key, view.usage_thresholds,
                                           Decimal(usage_amount(view.lines, usage, view.currency)), None, usage))
        report.evaluated = len(measured)
        unknown = [m.record for m in measured if m.record not in self._fired]
        if unknown:
            async with self.engine.connect() as conn:
                records = await fired_levels(conn, unknown)
            if len(self._fired) + len(unknown) > MEMORY_LIMIT:
                self._fired.clear()
                self._seen.clear()
            for record in unknown:
                level, last_value = records.get(record, (None, Decimal(0)))
                self._fired[record] = level
                self._seen.setdefault(record, last_value)
        candidates = []
        for m in measured:
            if crossed(m.thresholds, self._fired.get(m.record), m.value):
                candidates.append(m)
            else:
                self._seen[m.record] = m.value
        if candidates:
            report.recent = await self._fire(candidates)
            report.fired = len(report.recent)
        report.seconds = time.monotonic() - began
        ALERTS_EVALUATED.inc(report.evaluated)
        ALERTS_FIRED.inc(report.fired)
        ALERT_EVALUATION_SECONDS.observe(report.seconds)
        return report

    async def _invoiced(self, items: list[tuple[tuple[str, str], SubscriptionView]]
                        ) -> dict[tuple[str, str], dict[str | None, int]]:
        """The usage invoiced so far to each (organization, external_id) with a lifetime alert, by period."""
        by_org: dict[str, set[str]] = {}
        for _, view in items:
            if any(alert.alert_type == "lifetime_usage_amount" for alert in view.alerts):
                by_org.setdefault(view.organization_id, set()).add(view.external_id)
        found: dict[tuple[str, str], dict[str | None, int]] = {}
        if by_org:
            async with self.engine.connect() as conn:
                for organization_id, external_ids in by_org.items():
                    invoiced = await invoiced_usage_by_period(conn, organization_id, external_ids)
                    for external_id, by_period in invoiced.items():
                        found[(organization_id, external_id)] = by_period
        return found

    async def _fire(self, candidates: list[_Candidate]) -> list[dict[str, Any]]:
        """Fire what the candidates crossed, in one transaction of a few statements however many they are
        (core.db.thresholds.fire): one transaction per crossing (~9 ms each), or six statements per crossing,
        each waiting for a busy event loop to come round, left an evaluation with several crossings behind the
        stream. What was fired (for the ops page); a candidate another evaluation fired first fires nothing."""
        outcomes: list[tuple[_Candidate, Fired]] = []
        seen_now: dict[tuple[str, str], Decimal] = {}  # the value of a record's previous round
        async with self.engine.begin() as conn:
            for group in _rounds(candidates):
                fired = await fire(conn, [Measured(c.subject_id, c.period_key, c.thresholds, c.value)
                                          for c in group])
                alerts, progressive = [], []
                for candidate, outcome in zip(group, fired, strict=True):
                    outcomes.append((candidate, outcome))
                    view, crossings = candidate.view, outcome.crossings
                    if crossings and candidate.alert is not None:
                        previous = seen_now.get(candidate.record,
                                                self._seen.get(candidate.record, outcome.previous_value))
                        alerts.append(TriggeredAlert(view.organization_id, candidate.alert.id, view.id,
                                                     candidate.period_key, crossings, candidate.value, previous))
                    elif crossings:
                        progressive.append(ProgressiveCrossing(
                            view.organization_id, view.id, candidate.usage_period_key, crossings[-1],
                            int(candidate.value), _charges_json(view, candidate.usage)))
                    seen_now[candidate.record] = candidate.value
                await record_triggered_alerts(conn, alerts)
                await record_progressive_crossings(conn, progressive)
        # only now, committed: the memory never runs ahead of the record
        recent = []
        for candidate, outcome in outcomes:
            key, view, crossings = candidate.record, candidate.view, outcome.crossings
            self._fired[key] = outcome.level
            self._seen[key] = candidate.value
            if not crossings:
                continue
            kind = "alert" if candidate.alert is not None else "progressive_billing"
            log.info("%s of %s crossed %s in period %s (value %s)", kind, view.external_id,
                     [str(c.level) for c in crossings], candidate.period_key, candidate.value)
            recent.append({"at": time.time(), "kind": kind, "organization_id": view.organization_id,
                           "external_subscription_id": view.external_id,
                           "alert_type": candidate.alert.alert_type if candidate.alert else None,
                           "levels": [units_text(c.level) for c in crossings], "value": units_text(candidate.value)})
        return recent


def _rounds(candidates: list[_Candidate]) -> list[list[_Candidate]]:
    """The candidates in rounds of distinct records, in measured order: a record measured twice in one
    evaluation (a lifetime alert, from two of its subscription's periods) fires its second value in a second
    round, which sees what the first fired."""
    rounds: list[list[_Candidate]] = []
    for candidate in candidates:
        for group in rounds:
            if all(other.record != candidate.record for other in group):
                group.append(candidate)
                break
        else:
            rounds.append([candidate])
    return rounds


def _charges_json(view: SubscriptionView, usage: Mapping[str, MetricUsage]) -> dict[str, Any]:
    """The usage a progressive invoice bills, per charge, as priced when its threshold was reached."""
    snapshot = {}
    for line in view.lines:
        events_count, fee = charge_fee(line, usage, view.currency)
        snapshot[line.charge_id] = {"units": str(fee.units), "amount_cents": fee.amount_cents,
                                    "precise_amount_cents": str(fee.precise_amount_cents),
                                    "events_count": events_count}
    return snapshot
