"""The benchmark runner behind `meterline bench` (see meterline/bench/__init__.py)."""

from __future__ import annotations

import importlib
import json
import pkgutil
import platform
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import psycopg
from psycopg.types.json import Jsonb

from core.apikeys import key_hash
from core.clients import sync_redis
from core.settings import Settings


@dataclass(frozen=True)
class BenchContext:
    settings: Settings
    api_key: str
    quick: bool  # smaller sizes, for checking that a benchmark works; figures are not comparable

    @property
    def api_url(self) -> str:
        return f"http://{self.settings.api_host}:{self.settings.api_port}"

    @property
    def ingest_url(self) -> str:
        return f"http://{self.settings.ingest_host}:{self.settings.ingest_port}"

    def client(self, base_url: str) -> httpx.Client:
        """An HTTP client authenticated with the bench's API key (the API's or the ingest's URL)."""
        return httpx.Client(base_url=base_url, timeout=30, headers={"Authorization": f"Bearer {self.api_key}"})

    def organization_id(self) -> str:
        """The organization the bench's API key belongs to."""
        with psycopg.connect(self.settings.database_url) as conn:
            row = conn.execute("SELECT organization_id FROM api_keys WHERE key_sha256 = %s",
                               (key_hash(self.api_key),)).fetchone()
        assert row is not None, "the bench API key is unknown"
        return str(row[0])


def paced_batches(ctx: BenchContext, subscription_id: str, code: str, requests: int, began: float,
                  interval_s: float, failures: list[str], batch: int = 100) -> Iterator[float]:
    """Send `requests` /events/batch requests of `batch` events of `code` for one subscription, the n-th at
    `began + n * interval_s` (monotonic clock), yielding when each was answered 200; a refused request
    is recorded in `failures` and ends the sending. (The load of the end-to-end and alert benchmarks.)"""
    with ctx.client(ctx.ingest_url) as http:
        for n in range(requests):
            delay = began + n * interval_s - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            events = [{"transaction_id": f"{subscription_id}-{n}-{k}", "code": code,
                       "external_subscription_id": subscription_id} for k in range(batch)]
            response = http.post("/api/v1/events/batch", json={"events": events})
            if response.status_code != 200:
                failures.append(f"{response.status_code}: {response.text[:200]}")
                return
            yield time.monotonic()


# what a benchmark's subscriptions leave behind, deleted in this order, each before what it references
# (%(subs)s: their ids; %(org)s and %(pattern)s: their organization and external ids, for their alerts)
_INVOICES = ("SELECT invoice_id FROM invoice_subscriptions WHERE subscription_id = ANY(%(subs)s::uuid[])"
             " UNION SELECT invoice_id FROM fees WHERE subscription_id = ANY(%(subs)s::uuid[])")
_ALERTS = "SELECT id FROM alerts WHERE organization_id = %(org)s AND subscription_external_id LIKE %(pattern)s"
_FORGET_SQL = (
    # webhooks about any of it: left pending, the deliverer fails on each (its object gone), and every
    # delivery it claimed with it waits for the lease (60 s)
    "DELETE FROM webhook_deliveries WHERE organization_id = %(org)s AND (object_id = ANY(%(subs)s::uuid[])"
    f" OR object_id IN ({_INVOICES})"
    " OR object_id IN (SELECT id FROM triggered_alerts WHERE subscription_id = ANY(%(subs)s::uuid[]))"
    " OR object_id IN (SELECT id FROM progressive_crossings WHERE subscription_id = ANY(%(subs)s::uuid[]))"
    " OR object_id IN (SELECT id FROM credit_notes WHERE subscription_id = ANY(%(subs)s::uuid[])))",
    "DELETE FROM credit_note_applications WHERE credit_note_id IN"
    " (SELECT id FROM credit_notes WHERE subscription_id = ANY(%(subs)s::uuid[]))",
    "DELETE FROM credit_notes WHERE subscription_id = ANY(%(subs)s::uuid[])",
    f"DELETE FROM triggered_alerts WHERE subscription_id = ANY(%(subs)s::uuid[]) OR alert_id IN ({_ALERTS})",
    "DELETE FROM progressive_crossings WHERE subscription_id = ANY(%(subs)s::uuid[])",  # they name invoices
    f"DELETE FROM invoices WHERE id IN ({_INVOICES})",  # their lines cascade
    "DELETE FROM closed_periods WHERE subscription_id = ANY(%(subs)s::uuid[])",
    # the fired levels of their alerts and of their progressive billing (keyed by alert or subscription id)
    f"DELETE FROM threshold_states WHERE subject_id = ANY(%(subs)s::uuid[]) OR subject_id IN ({_ALERTS})",
    "DELETE FROM alerts WHERE organization_id = %(org)s AND subscription_external_id LIKE %(pattern)s",
    "DELETE FROM usage_thresholds WHERE subscription_id = ANY(%(subs)s::uuid[])",
    "DELETE FROM subscriptions WHERE id = ANY(%(subs)s::uuid[])",
    "DELETE FROM customers c WHERE c.id = ANY(%(customers)s::uuid[])"
    " AND NOT EXISTS (SELECT 1 FROM subscriptions s WHERE s.customer_id = c.id)"
    " AND NOT EXISTS (SELECT 1 FROM invoices i WHERE i.customer_id = c.id)"
    " AND NOT EXISTS (SELECT 1 FROM credit_notes n WHERE n.customer_id = c.id)",
)


def forget_subscriptions(settings: Settings, organization_id: str, prefix: str, redis_urls: Sequence[str] = ()) -> None:
    """Remove what a benchmark left of the subscriptions whose external id starts with `prefix`:
    the subscriptions themselves, their customers, invoices and credit notes, their alerts with what
    they fired, their progressive billing thresholds and crossings, the webhooks queued about any of
    them (the stack's biller reads every subscription each round: ~30,000 left by earlier runs made
    its round ~3 s of CPU, in the middle of the next benchmark), their archived events and their
    Redis state (in the stack's Redis, and in `redis_urls`' too). The archive tables are vacuumed too:
    left to autovacuum, the dead rows of a 400,000-event run slowed the inserts of the next run by ~10%."""
    pattern = _like_prefix(prefix)
    with psycopg.connect(settings.database_url, autocommit=True) as conn:  # VACUUM runs outside a transaction
        conn.execute("DELETE FROM events WHERE organization_id = %s AND external_subscription_id LIKE %s",
                     (organization_id, pattern))
        conn.execute("DELETE FROM event_keys WHERE organization_id = %s AND external_subscription_id LIKE %s",
                     (organization_id, pattern))
        with conn.transaction():
            found = conn.execute("SELECT id, customer_id FROM subscriptions WHERE organization_id = %s "
                                 "AND external_id LIKE %s", (organization_id, pattern)).fetchall()
            ids = {"subs": [str(sid) for sid, _ in found], "customers": list({str(cid) for _, cid in found}),
                   "org": organization_id, "pattern": pattern}
            for statement in _FORGET_SQL:
                conn.execute(statement, ids)
        conn.execute("VACUUM events, event_keys")
    for url in dict.fromkeys([settings.redis_url, *redis_urls]):
        with sync_redis(url, timeout_s=30) as redis:  # a cluster's scan goes through every master
            for key in redis.scan_iter(match=f"ml:{{{organization_id}:{_glob_escape(prefix)}*", count=1000):
                redis.delete(key)


def forget_organization(settings: Settings, organization_id: str) -> None:
    """Delete a benchmark's own organization and everything in it: its subscriptions and what they left
    (`forget_subscriptions`, every external id), its webhook endpoints (their deliveries cascade), its
    catalog, its API keys and itself."""
    forget_subscriptions(settings, organization_id, "")
    statements = (
        "DELETE FROM webhook_endpoints WHERE organization_id = %(org)s",
        "DELETE FROM charges WHERE plan_id IN (SELECT id FROM plans WHERE organization_id = %(org)s)",
        "DELETE FROM usage_thresholds WHERE organization_id = %(org)s",
        "DELETE FROM plans WHERE organization_id = %(org)s",
        "DELETE FROM billable_metrics WHERE organization_id = %(org)s",
        "DELETE FROM customers WHERE organization_id = %(org)s",
        "DELETE FROM api_keys WHERE organization_id = %(org)s",
        "DELETE FROM organizations WHERE id = %(org)s",
    )
    with psycopg.connect(settings.database_url) as conn, conn.transaction():
        for statement in statements:
            conn.execute(statement, {"org": organization_id})


def _like_prefix(prefix: str) -> str:
    """A LIKE pattern matching what starts with `prefix` (its `_` and `%` taken literally)."""
    return prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _glob_escape(text: str) -> str:
    """`text` taken literally in a Redis MATCH pattern."""
    return "".join(f"\\{c}" if c in "*?[]\\" else c for c in text)


def add_alerts(settings: Settings, organization_id: str, subscription_ids: list[str], alert_type: str, value: str,
               metric_id: str | None = None) -> None:
    """One alert per subscription external id with one threshold at `value`, written straight into
    `alerts` as the API stores one (thresholds as decimal text, in ascending order): setting up is not
    what a benchmark measures, and one request per alert would take minutes for 10,000."""
    thresholds = Jsonb([{"code": "bench", "value": value, "recurring": False}])
    with psycopg.connect(settings.database_url) as conn, conn.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO alerts (id, organization_id, subscription_external_id, alert_type, code, name,"
            " billable_metric_id, thresholds) VALUES (%s, %s, %s, %s, 'bench', 'bench', %s, %s)",
            [(str(uuid.uuid4()), organization_id, s, alert_type, metric_id, thresholds) for s in subscription_ids])


def ok(response: Any) -> dict[str, Any]:
    """The JSON body of a 200 answer (an httpx response), or an error naming the request."""
    if response.status_code != 200:
        raise RuntimeError(f"{response.request.method} {response.request.url} -> {response.status_code}: "
                           f"{response.text[:300]}")
    body: dict[str, Any] = response.json()
    return body


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def discover(only: set[str] | None = None) -> list[ModuleType]:
    import meterline.bench as package

    modules = []
    for info in pkgutil.iter_modules(package.__path__):
        if info.name.startswith("bench_") and (not only or info.name.removeprefix("bench_") in only):
            modules.append(importlib.import_module(f"meterline.bench.{info.name}"))
    return sorted(modules, key=lambda m: (getattr(m, "ORDER", 100), m.__name__))


def run_all(ctx: BenchContext, only: set[str] | None = None) -> dict[str, object]:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    figures: dict[str, float] = {}
    modules = discover(only)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns) as progress:
        overall = progress.add_task("benchmarks", total=len(modules))
        for module in modules:
            name = module.__name__.rsplit(".", 1)[1].removeprefix("bench_")
            progress.update(overall, description=f"benchmark {name}")
            began, cpu = time.monotonic(), _cpu_times()
            figures.update(module.run(ctx))
            if cpu and (now := _cpu_times()):
                # the share of the machine's CPU time its hypervisor gave to other guests meanwhile: figures
                # measured under much of it (seen: 10-36% on a 2-vCPU machine) are not comparable
                figures[f"{name}_cpu_steal_pct"] = round(100 * (now[1] - cpu[1]) / max(now[0] - cpu[0], 1), 1)
            progress.console.print(f"benchmark {name} done in {time.monotonic() - began:.1f}s")
            progress.advance(overall)
    report: dict[str, object] = {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": _cpus(), "python": platform.python_version()},
        "quick": ctx.quick,
        "figures": figures,
    }
    out = ctx.settings.home / "bench"
    out.mkdir(parents=True, exist_ok=True)
    latest = out / "latest.json"
    previous = json.loads(latest.read_text()) if latest.exists() else {}
    if only and isinstance(previous.get("figures"), dict):  # a partial run keeps the other figures
        report["figures"] = {**previous["figures"], **figures}
    latest.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    return report


def _cpu_times() -> tuple[int, int] | None:
    """(all, stolen) CPU time of the machine so far, in clock ticks (/proc/stat; None elsewhere)."""
    try:
        with open("/proc/stat") as stat:
            fields = [int(n) for n in stat.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    # user nice system idle iowait irq softirq steal [guest guest_nice: already in user and nice]
    return sum(fields[:8]), fields[7] if len(fields) > 7 else 0


def _cpus() -> int:
    import os

    return os.cpu_count() or 0


def print_table(report: dict[str, object], path: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"meterline bench ({'quick' if report['quick'] else 'full'}) → {path}")
    table.add_column("figure")
    table.add_column("value", justify="right")
    figures = report["figures"]
    assert isinstance(figures, dict)
    for name, value in sorted(figures.items()):
        table.add_row(name, f"{value:,.2f}" if isinstance(value, float) else str(value))
    Console().print(table)
