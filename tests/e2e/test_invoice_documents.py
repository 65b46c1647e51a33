"""Invoice documents, checked as a person would: the PDF downloaded by its signed link without the API key, its text
read back by poppler's pdftotext (the number, the parties, each line with its tiers, the coupon, the taxes, the
total), the same bytes for ever once the invoice is final, DRAFT across a draft's pages, 403 for a link altered
or expired, `invoice.generated`, and Lago's Python client's `invoices.download`."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import httpx
from lago_python_client.client import Client
from sqlalchemy import create_engine, select, update

from core.db.tables import organizations
from rater.billing.signing import document_link
from tests.conftest import ROOT, Services, Stack
from tests.e2e.invoice_support import team_coupon_vat_invoice
from tests.e2e.webhook_support import Receiver

ACME = {"name": "Acme", "legal_name": "Acme Analytics Ltd", "email": "billing@acme.test",
        "address_line1": "1 Market Street", "city": "London", "zipcode": "EC1A 1BB", "country": "GB",
        "tax_identification_number": "GB123456789"}


def org(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "meterline.cli", "org", *args], cwd=ROOT, env=dict(os.environ),
                          capture_output=True, text=True, timeout=60)


def pdf_text(content: bytes, tmp_path: Path, layout: str = "-layout") -> str:
    """The document's text as poppler reads it, laid out as on the page (`-raw`: in the order it was written, so
    the word across a draft's page reads as one)."""
    source = tmp_path / "invoice.pdf"
    source.write_bytes(content)
    done = subprocess.run(["pdftotext", layout, str(source), "-"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return " ".join(done.stdout.split())  # one space between words, as a person reads across columns


def download(client: httpx.Client, lago_id: str) -> dict[str, Any]:
    response = client.post(f"/invoices/{lago_id}/download")
    assert response.status_code == 200, response.text
    invoice: dict[str, Any] = response.json()["invoice"]
    return invoice


def fetch(file_url: str) -> httpx.Response:
    """The link followed as a browser would: no API key."""
    return httpx.get(file_url, timeout=30)


def test_the_pdf_shows_the_team_invoice_to_the_cent_and_never_changes_once_final(
        client: httpx.Client, receiver: Receiver, unique: str, tmp_path: Path) -> None:
    details = org("details", f"test-{unique}", "--legal-name", "Segment Billing Inc.", "--address-line1",
                  "100 California Street", "--city", "San Francisco", "--zipcode", "94111", "--state", "CA",
                  "--country", "us", "--tax-identification-number", "US-EIN-12-3456789",
                  "--email", "billing@segment.test", "--invoice-footer", "Thank you. Wire transfers: IBAN US00 0000.")
    assert details.returncode == 0, details.stderr
    assert "country: US" in details.stdout.splitlines()
    july = team_coupon_vat_invoice(client, unique, **ACME)
    assert july["file_url"] == ""  # no document before it is downloaded

    downloaded = download(client, july["lago_id"])
    assert downloaded["file_url"].startswith(f"{client.base_url.scheme}://{client.base_url.host}:")
    response = fetch(downloaded["file_url"])
    assert (response.status_code, response.headers["content-type"]) == (200, "application/pdf")
    assert response.content.startswith(b"%PDF-")
    text = pdf_text(response.content, tmp_path)
    for expected in (
        f"Invoice number {july['number']}", "Issuing date Jul 1, 2026", "Payment due date Jul 1, 2026",
        "Segment Billing Inc.", "100 California Street", "94111 San Francisco", "CA, US", "Tax ID: US-EIN-12-3456789",
        "Acme Analytics Ltd", "1 Market Street", "EC1A 1BB London", "Tax ID: GB123456789",
        # the fee in advance for July, the usage of June with its graduated tiers
        "Team 1 $120.00 $120.00 Jul 1, 2026 – Jul 31, 2026",
        "Monthly Tracked Users 30,000 $235.00 Jun 1, 2026 – Jun 30, 2026",
        "Units 0 to 10,000 10,000 $0.00 $0.00",
        "Units 10,001 to 25,000 15,000 $0.012 $180.00",
        "Units 25,001 to 100,000 5,000 $0.011 $55.00",
        "Fees $355.00", "Coupon Welcome (welcome) -$10.00", "Sub total excluding taxes $345.00",
        "VAT (20% on $345.00) $69.00 Taxes $69.00", "Sub total including taxes $414.00", "Total $414.00",
        "Thank you. Wire transfers: IBAN US00 0000.", "Page 1 of 1",
    ):
        assert expected in text, (expected, text)
    raw = pdf_text(response.content, tmp_path, "-raw")
    assert "DRAFT" not in raw.split() and "Due" not in raw.split()  # nothing that changes once it is drawn

    # downloaded again: the same document (a final invoice's never changes), a new link to it
    time.sleep(1.1)
    again = download(client, july["lago_id"])
    assert again["file_url"] != downloaded["file_url"]
    assert fetch(again["file_url"]).content == response.content
    assert client.get(f"/invoices/{july['lago_id']}").json()["invoice"]["file_url"].startswith("http")
    listed = client.get("/invoices", params={"external_customer_id": f"c-{unique}"}).json()["invoices"]
    assert listed[0]["file_url"].startswith("http")
    # a payment after it changes the invoice, not its document
    assert client.put(f"/invoices/{july['lago_id']}", json={"invoice": {"payment_status": "succeeded"}}
                      ).status_code == 200
    assert fetch(download(client, july["lago_id"])["file_url"]).content == response.content

    (generated,) = receiver.wait_for_type("invoice.generated", 1)
    time.sleep(1.5)
    assert len(receiver.payloads("invoice.generated")) == 1  # one document made, one webhook
    assert (generated["object_type"], generated["invoice"]["lago_id"]) == ("invoice", july["lago_id"])
    assert generated["invoice"]["file_url"].startswith("http")


def test_a_link_altered_expired_or_naming_no_invoice_is_refused(
        client: httpx.Client, services: Services, stack: Stack, unique: str) -> None:
    july = team_coupon_vat_invoice(client, unique, **ACME)
    link = download(client, july["lago_id"])["file_url"]
    parts = urlsplit(link)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    base = f"{parts.scheme}://{parts.netloc}{parts.path}"

    def status(url: str, **params: str) -> tuple[int, str | None]:
        response = httpx.get(url, params=params or None, timeout=30)  # params={} would drop the link's query
        return response.status_code, response.json().get("code") if response.status_code != 200 else None

    assert status(base, **query) == (200, None)
    refused = (403, "invalid_signature")
    flipped = query["signature"][:-1] + ("0" if query["signature"][-1] != "0" else "1")
    assert status(base, expires=query["expires"], signature=flipped) == refused
    assert status(base, expires=str(int(query["expires"]) + 1), signature=query["signature"]) == refused
    assert status(base, expires=query["expires"]) == refused
    assert status(base) == refused
    assert status(base, expires="soon", signature=query["signature"]) == refused
    assert status(base, expires=query["expires"], signature="é" * 64) == refused
    other = "00000000-0000-4000-8000-000000000000"
    assert status(base.replace(july["lago_id"], other), **query) == refused
    assert status(base.replace(july["lago_id"], "not-a-uuid"), **query) == refused
    for odd in (f"urn:uuid:{july['lago_id']}", f"{{{july['lago_id']}}}", july["lago_id"].replace("-", "")):
        assert status(base.replace(july["lago_id"], odd), **query) == refused, odd  # Python's forms, not PG's

    # signed with the organization's key, but expired a second ago
    engine = create_engine(services.sqlalchemy_url)
    with engine.connect() as conn:
        key = conn.execute(select(organizations.c.document_key).where(
            organizations.c.name == f"test-{unique}")).scalar_one()
    engine.dispose()
    expired = document_link(stack.api_url, key, july["lago_id"], time.time() - 61, 60)
    assert status(expired) == refused
    assert status(document_link(stack.api_url, key, july["lago_id"], time.time(), 60)) == (200, None)
    # the API key is not what opens it, nor a way around the signature
    with_key = client.get(base, params={"expires": query["expires"], "signature": flipped})
    assert with_key.status_code == 403
    assert client.post("/invoices/00000000-0000-4000-8000-000000000000/download").status_code == 404
    assert httpx.post(f"{stack.api_url}/api/v1/invoices/{july['lago_id']}/download", timeout=30).status_code == 401


def test_a_drafts_document_says_draft_and_goes_when_the_draft_changes(
        client: httpx.Client, receiver: Receiver, unique: str, tmp_path: Path) -> None:
    # a grace running past any real now: the stack's biller leaves it a draft
    draft = team_coupon_vat_invoice(client, unique, grace=36500, **ACME)
    assert draft["status"] == "draft"
    first = download(client, draft["lago_id"])["file_url"]
    text = pdf_text(fetch(first).content, tmp_path, "-raw")
    # across the page; a draft takes its coupons when it is finalized: 35,500 + 20% = 42,600
    assert "DRAFT" in text.split() and "Invoice (draft)" in text and "Total $426.00" in text
    assert fetch(first).headers["cache-control"] == "private, no-store"

    assert client.put(f"/invoices/{draft['lago_id']}/refresh").status_code == 200
    gone = fetch(first)  # refreshed: the draft's document no longer shows it
    assert (gone.status_code, gone.json()["code"]) == (404, "document_not_found")
    assert client.get(f"/invoices/{draft['lago_id']}").json()["invoice"]["file_url"] == ""

    finalized = client.put(f"/invoices/{draft['lago_id']}/finalize").json()["invoice"]
    final_text = pdf_text(fetch(download(client, draft["lago_id"])["file_url"]).content, tmp_path, "-raw")
    assert "DRAFT" not in final_text.split() and f"Invoice number {finalized['number']}" in final_text
    assert "Coupon Welcome (welcome) -$10.00" in final_text and "Total $414.00" in final_text
    assert len(receiver.wait_for_type("invoice.generated", 2)) == 2  # the draft's, then the final one


def test_a_page_renders_to_an_a4_picture_and_downloads_at_once_keep_one_document(
        client: httpx.Client, receiver: Receiver, unique: str, tmp_path: Path) -> None:
    july = team_coupon_vat_invoice(client, unique, **ACME)
    with ThreadPoolExecutor(6) as pool:  # six downloads at once: one document drawn and kept, one webhook
        links = list(pool.map(lambda _: download(client, july["lago_id"])["file_url"], range(6)))
    contents = {fetch(link).content for link in links}
    assert len(contents) == 1
    (generated,) = receiver.wait_for_type("invoice.generated", 1)
    time.sleep(1.5)
    assert len(receiver.payloads("invoice.generated")) == 1
    (tmp_path / "invoice.pdf").write_bytes(contents.pop())
    done = subprocess.run(["pdftoppm", "-png", "-r", "72", "-singlefile", str(tmp_path / "invoice.pdf"),
                           str(tmp_path / "page")], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    png = (tmp_path / "page.png").read_bytes()
    width, height = struct.unpack(">II", png[16:24])  # the IHDR chunk: A4 is 595.28 x 841.89 points, at 72 dpi
    assert (png[:8], width, height) == (b"\x89PNG\r\n\x1a\n", 596, 842)  # whole pixels, rounded up


def test_lagos_python_client_downloads_an_invoice(client: httpx.Client, stack: Stack, org_key: str, unique: str
                                                  ) -> None:
    july = team_coupon_vat_invoice(client, unique, **ACME)
    lago = Client(api_key=org_key, api_url=f"{stack.api_url}/")
    downloaded = lago.invoices.download(july["lago_id"])
    assert downloaded is not None and downloaded.lago_id == july["lago_id"]
    assert fetch(downloaded.file_url).content.startswith(b"%PDF-")


def test_org_details_are_checked_and_cleared(client: httpx.Client, unique: str) -> None:
    name = f"test-{unique}"
    assert org("details", name, "--city", "Paris").stdout.splitlines()[4] == "city: Paris"
    assert "city: " in org("details", name, "--city", "").stdout.splitlines()  # an empty value clears it
    for args, error in ((("--country", "Atlantis"), "error: country must be an ISO 3166 alpha-2 code (US, FR, …), "
                                                    "got 'ATLANTIS'"),
                        (("--email", "nobody"), "error: email must be an email address, got 'nobody'"),
                        (("--invoice-footer", "x" * 601), "error: invoice_footer must be at most 600 characters"),
                        (("--legal-name", "a\nb"), "error: legal_name must be one line of at most 255 characters")):
        done = org("details", name, *args)
        assert (done.returncode, done.stderr.strip()) == (2, error)
    missing = org("details", f"nobody-{unique}", "--city", "Paris")
    assert (missing.returncode, missing.stderr.strip()) == (1, f"no organization named 'nobody-{unique}'")


def test_a_number_in_any_script_names_the_file(client: httpx.Client, services: Services, unique: str) -> None:
    draft = team_coupon_vat_invoice(client, unique, grace=36500)  # numbered when finalized, from the name then
    engine = create_engine(services.sqlalchemy_url)
    with engine.begin() as conn:
        conn.execute(update(organizations).where(organizations.c.name == f"test-{unique}")
                     .values(name=f"Тест-{unique}"))
    engine.dispose()
    final = client.put(f"/invoices/{draft['lago_id']}/finalize").json()["invoice"]
    assert final["number"].startswith("ТЕС-")
    response = fetch(download(client, final["lago_id"])["file_url"])
    assert response.status_code == 200, response.text
    assert response.headers["content-disposition"] == (
        f"inline; filename=\"invoice.pdf\"; filename*=UTF-8''{quote(final['number'])}.pdf")
