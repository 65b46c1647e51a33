"""The ops page in a real browser (Debian's headless Chromium driven by Playwright) against the running stack."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.builders import customer_body, metric_body, mtu_event, plan_body, subscription_body
from tests.conftest import ROOT, Services, Stack
from tests.kafka_reading import end_offsets

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SCREENSHOT = ROOT / "docs" / "ops-page.png"


@pytest.fixture
def page(stack: Stack) -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium is missing: `make test` installs it (apt-get install chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"],
        )
        try:
            tab = browser.new_page(viewport={"width": 1280, "height": 820})
            yield tab
        finally:
            browser.close()


def number(text: str) -> int:
    return int(text.replace(",", ""))


def test_ops_page_shows_live_pipeline_numbers(page, stack: Stack, services: Services,  # type: ignore[no-untyped-def]
                                               client: httpx.Client, ingest: httpx.Client, unique: str) -> None:
    requests_to_elsewhere: list[str] = []
    page.on("request", lambda r: None if r.url.startswith(stack.api_url) else requests_to_elsewhere.append(r.url))
    page.goto(f"{stack.api_url}/ops")
    # the baseline is the topic's end as Kafka says it, once the page shows it: the page's first
    # numbers can come from a lag snapshot older than the previous test's last events
    accepted_before = sum(end_offsets(services.kafka_bootstrap, "events").values())
    page.wait_for_function(
        f"document.getElementById('accepted').textContent.replaceAll(',', '') == '{accepted_before}'",
        timeout=15_000,
    )
    unknown = "#rejected tr[data-reason='unknown_subscription'] td:nth-child(2)"
    unknown_before = number(page.text_content(unknown)) if page.locator(unknown).count() else 0
    assert page.locator("#partitions tr[data-partition]").count() == 4
    assert page.text_content("#total-lag") != "–"

    client.post("/billable_metrics", json=metric_body()).raise_for_status()
    client.post("/plans", json=plan_body()).raise_for_status()
    client.post("/customers", json=customer_body(f"ops-{unique}")).raise_for_status()
    client.post("/subscriptions", json=subscription_body(f"ops-{unique}", f"sub-ops-{unique}")).raise_for_status()
    events = [mtu_event(f"sub-ops-{unique}", f"tx-{n}", f"user-{n}") for n in range(40)]
    events.append(mtu_event(f"nowhere-{unique}", "tx-lost", "user-x"))  # an unknown subscription
    ingest.post("/events/batch", json={"events": events}).raise_for_status()

    page.wait_for_function(
        f"Number(document.getElementById('accepted').textContent.replaceAll(',', '')) >= {accepted_before + 41}",
        timeout=15_000,
    )
    page.wait_for_function(  # the one unknown subscription's event, counted among the rejects
        f"(document.querySelector(\"{unknown}\")?.textContent ?? '0').replaceAll(',', '') == '{unknown_before + 1}'",
        timeout=15_000,
    )
    time.sleep(1.5)  # one more refresh so the screenshot shows settled numbers
    SCREENSHOT.parent.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOT), full_page=True)
    assert number(page.text_content("#accepted")) == accepted_before + 41
    assert number(page.text_content(unknown)) == unknown_before + 1
    assert requests_to_elsewhere == []  # self-contained: no CDN, works offline
