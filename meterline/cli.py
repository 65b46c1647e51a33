"""The `meterline` command."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from core.settings import ConfigError, Settings, load_settings

if TYPE_CHECKING:
    from starlette.applications import Starlette


def cmd_up(settings: Settings, args: argparse.Namespace) -> int:
    from meterline.stack.up import up

    key = up(settings)
    print(f"API key of the default organization (also in {settings.home / 'api-key'}):\n{key}")
    return 0


def cmd_init(settings: Settings, args: argparse.Namespace) -> int:
    from meterline.stack.up import init

    key = init(settings)
    print(f"topics and schema ready; API key of the default organization:\n{key}")
    return 0


def cmd_down(settings: Settings, args: argparse.Namespace) -> int:
    from meterline.stack.up import down

    down(settings)
    return 0


def cmd_status(settings: Settings, args: argparse.Namespace) -> int:
    from meterline.stack.up import status

    states = status(settings)
    for name, pid in states.items():
        print(f"{name:<11} {'running, pid ' + str(pid) if pid else 'not started by meterline'}")
    return 0


def _serve(app: Starlette, host: str, port: int) -> int:
    import uvicorn

    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False, timeout_graceful_shutdown=10,
                log_config=None)  # keep meterline's JSON log handler
    return 0


def cmd_api(settings: Settings, args: argparse.Namespace) -> int:
    from ingest.intake import event_intake
    from ingest.routes import EVENT_ROUTES
    from rater.app import create_app

    return _serve(create_app(settings, EVENT_ROUTES, event_intake), settings.api_host, settings.api_port)


def cmd_ingest(settings: Settings, args: argparse.Namespace) -> int:
    from ingest.app import create_app

    if settings.ingest_workers == 1:
        return _serve(create_app(settings), settings.ingest_host, settings.ingest_port)
    import uvicorn

    # Several processes sharing the port: each builds its app (and Kafka producer) from the environment.
    uvicorn.run("ingest.app:app_from_env", factory=True, workers=settings.ingest_workers,
                host=settings.ingest_host, port=settings.ingest_port, log_level="warning", access_log=False,
                timeout_graceful_shutdown=10, log_config=None)
    return 0


def cmd_aggregator(settings: Settings, args: argparse.Namespace) -> int:
    from core.metrics import serve_metrics

    serve_metrics(settings.aggregator_metrics_host, settings.aggregator_metrics_port)
    if settings.aggregator_runtime == "kafka":
        from aggregator.kafka_loop import run_kafka_loop

        run_kafka_loop(settings)
        return 0
    from aggregator.app import run_worker

    sys.argv = [sys.argv[0]]  # Faust's worker parses argv; it must not see ours
    run_worker(settings)
    return 0


def cmd_alerts(settings: Settings, args: argparse.Namespace) -> int:
    from core.metrics import serve_metrics

    # METERLINE_ALERTS_NICE > 0: below the other processes' priority on a shared machine, where the alerts then
    # wait for the CPU, not the counting (at 10, alerts came ~1.2 s late at 10,000 events/s on two cores)
    os.nice(settings.alerts_nice)
    serve_metrics(settings.alerts_metrics_host, settings.alerts_metrics_port)
    from aggregator.alerts_app import run_alerts_worker

    sys.argv = [sys.argv[0]]  # Faust's worker parses argv; it must not see ours
    run_alerts_worker(settings)
    return 0


def _billing_engine(settings: Settings, connections: int = 10):  # type: ignore[no-untyped-def]
    from core.clients import database

    return database(settings, pool_size=connections, max_overflow=2)


def cmd_biller(settings: Settings, args: argparse.Namespace) -> int:
    import asyncio

    from core.clients import reconnecting_redis
    from core.metrics import serve_metrics
    from rater.biller import record_run, run_loop
    from rater.billing.files import DocumentLinks

    serve_metrics(settings.biller_metrics_host, settings.biller_metrics_port)

    async def main() -> None:
        engine = _billing_engine(settings)
        # its one Redis write is the ops page's last run: a client that retries once after a connection error
        redis = reconnecting_redis(settings.redis_url, timeout_s=5, connect_timeout_s=3)
        try:
            await run_loop(engine, lambda connections: _billing_engine(settings, connections),
                           DocumentLinks.of(settings), args.interval, on_run=lambda report: record_run(redis, report))
        finally:
            await redis.aclose()
            await engine.dispose()

    asyncio.run(main())
    return 0


def cmd_bill(settings: Settings, args: argparse.Namespace) -> int:
    import asyncio
    import json
    from datetime import UTC, datetime

    from rater.biller import organization_named, run_once

    try:
        as_of = datetime.fromisoformat(args.as_of) if args.as_of else datetime.now(UTC)
    except ValueError:
        print(f"--as-of must be an ISO 8601 time, got {args.as_of!r}", file=sys.stderr)
        return 2
    as_of = as_of if as_of.tzinfo else as_of.replace(tzinfo=UTC)

    async def main() -> dict[str, object]:
        engine = _billing_engine(settings)
        try:
            organization_id = await organization_named(engine, args.organization) if args.organization else None
            report = await run_once(engine, as_of, organization_id=organization_id)
        finally:
            await engine.dispose()
        return {"as_of": as_of.isoformat(), "invoices": report.invoices, "skipped": report.skipped,
                "finalized": report.finalized, "overdue": report.overdue}

    try:
        print(json.dumps(asyncio.run(main())))
    except LookupError as exc:
        print(f"error: {exc.args[0]}", file=sys.stderr)
        return 1
    return 0


def cmd_migrate(settings: Settings, args: argparse.Namespace) -> int:
    from core.db.migrate import upgrade

    upgrade(settings.sqlalchemy_url)
    print("database schema is up to date")
    return 0


def cmd_org_create(settings: Settings, args: argparse.Namespace) -> int:
    from meterline.orgs import ensure_organization

    organization_id, key = ensure_organization(settings.sqlalchemy_url, args.name, args.api_key)
    if key is None:
        print(f"organization {args.name!r} already exists ({organization_id}); pass --api-key to add a key",
              file=sys.stderr)
        return 1
    print(key)
    return 0


def cmd_org_key_rotate(settings: Settings, args: argparse.Namespace) -> int:
    from datetime import timedelta

    from meterline.orgs import rotate_key

    def rotate() -> str:
        key, expires_at = rotate_key(settings.sqlalchemy_url, args.name, timedelta(hours=args.grace_hours))
        print(f"the previous keys of {args.name!r} stop working at {expires_at.isoformat()}", file=sys.stderr)
        return key

    return _org_command(args.name, rotate)


def _org_command(name: str, run: Callable[[], str]) -> int:
    """Print what `run` answers; an unknown organization or a database that cannot be reached exits 1, a
    value refused 2."""
    from sqlalchemy.exc import OperationalError

    from meterline.orgs import UnknownOrganization

    try:
        answer = run()
    except UnknownOrganization:
        print(f"no organization named {name!r}", file=sys.stderr)
        return 1
    except OperationalError as exc:
        print(f"error: PostgreSQL cannot be reached: {exc.orig}", file=sys.stderr)
        return 1
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(answer)
    return 0


def cmd_org_payment_term(settings: Settings, args: argparse.Namespace) -> int:
    """`org payment-term NAME [DAYS]`: print the organization's default net_payment_term, after setting it."""
    from meterline.orgs import payment_term_of

    return _org_command(args.name, lambda: str(payment_term_of(settings.sqlalchemy_url, args.name, args.days)))


def cmd_org_details(settings: Settings, args: argparse.Namespace) -> int:
    """`org details NAME [--legal-name …] …`: print what the organization's invoice documents show of it (one
    `detail: value` per line), after setting the details given (an empty value clears one)."""
    from meterline.orgs import DOCUMENT_DETAILS, document_details

    changes = {detail: getattr(args, detail) for detail in DOCUMENT_DETAILS if getattr(args, detail) is not None}

    def show() -> str:
        details = document_details(settings.sqlalchemy_url, args.name, changes)
        return "\n".join(f"{detail}: {value if value is not None else ''}" for detail, value in details.items())

    return _org_command(args.name, show)


def cmd_example(settings: Settings, args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from meterline.example import run

    key = args.api_key or (settings.home / "api-key").read_text().strip()
    usage = run(f"http://{settings.api_host}:{settings.api_port}", key, users=args.users)
    table = Table(title=f"Current usage {usage['from_datetime']} → {usage['to_datetime']}")
    for column in ("metric", "charge model", "units", "events", "amount"):
        table.add_column(column, justify="right" if column not in ("metric", "charge model") else "left")
    for line in usage["charges_usage"]:
        table.add_row(line["billable_metric"]["code"], line["charge"]["charge_model"], line["units"],
                      str(line["events_count"]), f"{line['amount_cents'] / 100:,.2f} {line['amount_currency']}")
    table.add_row("total", "", "", "", f"{usage['total_amount_cents'] / 100:,.2f} {usage['currency']}")
    Console().print(table)
    return 0


def cmd_bench(settings: Settings, args: argparse.Namespace) -> int:
    from meterline.bench.run import BenchContext, print_table, run_all

    key = (settings.home / "api-key").read_text().strip()
    report = run_all(BenchContext(settings, key, args.quick), set(args.only) if args.only else None)
    print_table(report, settings.home / "bench" / "latest.json")
    return 0


def cmd_lag(settings: Settings, args: argparse.Namespace) -> int:
    import time

    from rich.console import Console
    from rich.live import Live
    from rich.table import Table

    from core.lag import LagReader, rates, table_rows

    reader = LagReader(settings.kafka_bootstrap, settings.consumer_group, settings.events_topic)

    def render(previous, current) -> Table:  # type: ignore[no-untyped-def]
        table = Table(title=f"consumer group {current.group} on topic {settings.events_topic}")
        for column in ("partition", "committed", "end", "lag", "rate"):
            table.add_column(column, justify="right")
        for row in table_rows(current, rates(previous, current)):
            table.add_row(*row)
        return table

    try:
        previous = reader.read()
        if not args.watch:
            time.sleep(1.0)
            Console().print(render(previous, reader.read()))
            return 0
        with Live(render(None, previous), refresh_per_second=4) as live:
            while True:
                time.sleep(args.interval)
                current = reader.read()
                live.update(render(previous, current))
                previous = current
    except KeyboardInterrupt:
        return 0
    finally:
        reader.close()


def cmd_check_config(settings: Settings, args: argparse.Namespace) -> int:
    for name, value in settings.describe().items():
        print(f"{name} = {value}")
    return 0


def cmd_replay_rejected(settings: Settings, args: argparse.Namespace) -> int:
    from aggregator.replay import parse_since, replay_rejected

    replay_rejected(settings, args.reason, parse_since(args.since) if args.since else None)
    return 0


def cmd_rebuild(settings: Settings, args: argparse.Namespace) -> int:
    import asyncio

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from aggregator.rebuild import RebuildResult, rebuild

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()) as bar:
        task = bar.add_task("subscriptions", total=None)

        def progress(done: int, total: int, result: RebuildResult) -> None:
            bar.update(task, completed=done, total=total,
                       description=f"subscriptions ({result.events} events read, {result.restored} restored)")

        result = asyncio.run(rebuild(settings, args.subscription, progress))
    print(f"rebuilt {result.subscriptions} subscriptions: {result.events} archived events read, "
          f"{result.restored} restored to Redis, outside open periods: {result.skipped or 0}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="meterline", description="Usage metering and billing pipeline.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("up", help="start Kafka, Redis, PostgreSQL and meterline's processes (idempotent)")
    sub.add_parser("down", help="stop what `up` started")
    sub.add_parser("init", help="create topics, migrate the database, bootstrap the default organization")
    sub.add_parser("status", help="which processes of the local stack run")
    sub.add_parser("api", help="run the API (rater) server in the foreground")
    sub.add_parser("ingest", help="run the standalone ingest server in the foreground")
    sub.add_parser("aggregator", help="run the Faust aggregator worker in the foreground")
    sub.add_parser("alerts", help="run the alerts worker (evaluates what each batch changed) in the foreground")
    sub.add_parser("migrate", help="apply database migrations")
    biller = sub.add_parser("biller", help="run the biller loop in the foreground (bills as of now, sends webhooks)")
    biller.add_argument("--interval", type=float, default=30.0, help="seconds between billing rounds")
    bill = sub.add_parser("bill", help="run the biller once as of a time (default now), history included")
    bill.add_argument("--as-of", help="ISO 8601 time, e.g. 2026-07-01T00:00:00Z (UTC when no offset)")
    bill.add_argument("--organization", help="only this organization (its id or name)")
    sub.add_parser("check-config", help="print the resolved settings and exit")
    org = sub.add_parser("org", help="organizations").add_subparsers(dest="org_command", required=True)
    create = org.add_parser("create", help="create an organization and print its API key")
    create.add_argument("name")
    create.add_argument("--api-key", help="use this key instead of generating one")
    key = org.add_parser("key", help="API keys").add_subparsers(dest="key_command", required=True)
    rotate = key.add_parser("rotate", help="print a new API key; the old ones keep working for a while")
    rotate.add_argument("name")
    rotate.add_argument("--grace-hours", type=float, default=24.0,
                        help="how long the previous keys keep working (default 24; 0 revokes them now)")
    term = org.add_parser("payment-term", help="print (or set) the days from an invoice's issuing date to its "
                                                "due date for the organization's customers without their own "
                                                "net_payment_term (default 0)")
    term.add_argument("name")
    term.add_argument("days", type=int, nargs="?", help="the new term, from 0 to 36500")
    details = org.add_parser("details", help="print (or set) what the organization's invoice documents show of "
                                              "it: legal name, email, address, tax id, footer (\"\" clears one)")
    details.add_argument("name")
    for detail in ("legal_name", "email", "address_line1", "address_line2", "city", "zipcode", "state", "country",
                   "tax_identification_number", "invoice_footer"):
        details.add_argument(f"--{detail.replace('_', '-')}", dest=detail, metavar="TEXT")
    example = sub.add_parser("example", help="run the Segment example against the running API")
    example.add_argument("--users", type=int, default=12000)
    example.add_argument("--api-key")
    lag = sub.add_parser("lag", help="consumer lag per partition of the events topic")
    lag.add_argument("--watch", action="store_true", help="refresh live until Ctrl-C")
    lag.add_argument("--interval", type=float, default=1.0, help="seconds between refreshes with --watch")
    bench = sub.add_parser("bench", help="run the benchmarks against the running stack (make bench)")
    bench.add_argument("--quick", action="store_true", help="small sizes, to check the benchmarks work")
    bench.add_argument("--only", nargs="*", help="run only these benchmarks (e.g. ingest aggregator)")
    replay = sub.add_parser("replay-rejected", help="send rejected events (events.rejected) to the aggregator again")
    replay.add_argument("--reason", help="only events rejected for this reason (e.g. unknown_subscription)")
    replay.add_argument("--since", help="only events rejected at or after this instant (ISO 8601 or unix seconds)")
    rebuild = sub.add_parser("rebuild", help="restore open periods' usage state in Redis from the event archive")
    rebuild.add_argument("--subscription", help="only subscriptions with this external_id")
    return parser


COMMANDS = {
    "up": cmd_up, "init": cmd_init, "down": cmd_down, "status": cmd_status, "api": cmd_api, "ingest": cmd_ingest,
    "aggregator": cmd_aggregator, "alerts": cmd_alerts, "migrate": cmd_migrate, "biller": cmd_biller, "bill": cmd_bill,
    "check-config": cmd_check_config,
    "example": cmd_example, "bench": cmd_bench, "lag": cmd_lag,
    "replay-rejected": cmd_replay_rejected, "rebuild": cmd_rebuild,
}


SERVICES = ("api", "ingest", "aggregator", "alerts", "biller")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command in SERVICES:  # long-running processes log JSON lines; commands log for people
        from core.logs import configure

        configure(args.command)
    else:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
        for noisy in ("httpx", "alembic"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    if args.command == "org":
        handler = {"create": cmd_org_create, "key": cmd_org_key_rotate,
                   "payment-term": cmd_org_payment_term, "details": cmd_org_details}[args.org_command]
    else:
        handler = COMMANDS[args.command]
    from meterline.stack.proc import StackError

    try:
        return handler(settings, args)
    except StackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
