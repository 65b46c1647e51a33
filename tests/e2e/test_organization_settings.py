"""An organization's default payment term (`meterline org payment-term`): an invoice is due `net_payment_term`
days after it is issued, the customer's term when it has one (0 included), else the organization's."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx

from tests.conftest import ROOT
from tests.e2e.invoice_support import bill, create, invoices_of, plan, subscribe


def org(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "meterline.cli", "org", *args], cwd=ROOT,
                          env={**os.environ, **env}, capture_output=True, text=True, timeout=60)


def test_the_payment_term_is_set_shown_and_checked(client: httpx.Client, unique: str) -> None:
    name = f"test-{unique}"
    shown = org("payment-term", name)
    assert (shown.returncode, shown.stdout.strip()) == (0, "0")  # the default
    assert (org("payment-term", name, "30").stdout.strip(), org("payment-term", name).stdout.strip()) == ("30", "30")
    for refused in ("-1", "36501"):
        done = org("payment-term", name, refused)
        assert (done.returncode, done.stderr.strip()) == (2, "error: net_payment_term must be from 0 to 36500 days")
    assert org("payment-term", name, "ten").returncode == 2  # argparse: not a number
    missing = org("payment-term", f"nobody-{unique}", "5")
    assert (missing.returncode, missing.stderr.strip()) == (1, f"no organization named 'nobody-{unique}'")
    assert org("payment-term", name).stdout.strip() == "30"  # nothing refused was written
    away = org("payment-term", name, METERLINE_DATABASE_URL="postgresql://meterline:x@127.0.0.1:1/meterline")
    assert (away.returncode, away.stderr.startswith("error: PostgreSQL cannot be reached: ")) == (1, True)


def test_a_customer_without_its_own_term_gets_the_organizations(client: httpx.Client, unique: str) -> None:
    assert org("payment-term", f"test-{unique}", "3650").returncode == 0
    plan(client, "basic", amount=900, advance=False)
    create(client, "/customers", "customer", {"external_id": f"c-{unique}", "currency": "USD", "timezone": "UTC"})
    create(client, "/customers", "customer", {"external_id": f"d-{unique}", "currency": "USD", "timezone": "UTC",
                                              "net_payment_term": 0})
    for customer_id in (f"c-{unique}", f"d-{unique}"):
        subscribe(client, customer_id, f"s-{customer_id}", "basic", "2026-04-01T00:00:00Z")
    bill("2026-05-01T00:00:00Z", unique)
    (inherited,) = invoices_of(client, f"c-{unique}")
    assert (inherited["net_payment_term"], inherited["payment_due_date"]) == (3650, "2036-04-28")
    (own,) = invoices_of(client, f"d-{unique}")  # its own 0 days
    assert (own["net_payment_term"], own["payment_due_date"]) == (0, "2026-05-01")
    assert client.get(f"/customers/c-{unique}").json()["customer"]["net_payment_term"] is None  # its own: none
