"""An organization's settings (`meterline org set` / `show`), and its default payment term: an invoice is due
`net_payment_term` days after it is issued, the customer's term when it has one (0 included), else the
organization's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import httpx

from tests.conftest import ROOT
from tests.e2e.invoice_support import bill, create, invoices_of, plan, subscribe


def org(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "meterline.cli", "org", *args], cwd=ROOT,
                          env={**os.environ, **env}, capture_output=True, text=True, timeout=60)


def test_settings_are_set_shown_and_checked(client: httpx.Client, unique: str) -> None:
    name = f"test-{unique}"
    done = org("set", name, "--legal-name", "Acme Analytics, Inc.", "--country", "us", "--tax-identification-number",
               "US12-3456789", "--invoice-footer", "Thank you for your business.", "--net-payment-term", "30")
    assert done.returncode == 0, done.stderr
    settings: dict[str, Any] = json.loads(done.stdout)
    assert (settings["legal_name"], settings["country"], settings["tax_identification_number"],
            settings["invoice_footer"], settings["net_payment_term"]) == (
        "Acme Analytics, Inc.", "US", "US12-3456789", "Thank you for your business.", 30)
    assert org("set", name, "--legal-name", "").returncode == 0
    shown = json.loads(org("show", name).stdout)
    assert (shown["legal_name"], shown["country"]) == (None, "US")  # cleared, kept
    refused = org("set", name, "--net-payment-term", "-1")
    assert (refused.returncode, refused.stderr.strip()) == (2, "error: net_payment_term must be from 0 to 36500 days")
    assert org("set", name, "--country", "USA").returncode == 2
    assert org("set", name).returncode == 2  # nothing to set
    missing = org("show", f"nobody-{unique}")
    assert (missing.returncode, missing.stderr.strip()) == (1, f"no organization named 'nobody-{unique}'")
    assert json.loads(org("show", name).stdout)["net_payment_term"] == 30  # nothing refused was written
    away = org("show", name, METERLINE_DATABASE_URL="postgresql://meterline:x@127.0.0.1:1/meterline")
    assert (away.returncode, away.stderr.startswith("error: PostgreSQL cannot be reached: ")) == (1, True)


def test_a_customer_without_its_own_term_gets_the_organizations(client: httpx.Client, unique: str) -> None:
    assert org("set", f"test-{unique}", "--net-payment-term", "3650").returncode == 0
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
