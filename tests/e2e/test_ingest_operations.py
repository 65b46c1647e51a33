"""The ingest in operation: revoked keys, the per-organization rate limit, graceful shutdown, and
reading back archived events — against running processes, real Kafka and PostgreSQL."""

from __future__ import annotations

import signal
import threading
import time
from typing import Any

import httpx
import orjson
from sqlalchemy import create_engine, func, update

from core.apikeys import key_hash
from core.db.tables import api_keys
from tests.builders import api, customer_body, metric_body, mtu_event, plan_body, subscription_body
from tests.conftest import Services, Stack
from tests.e2e.ingest_support import new_org, private_ingest
from tests.kafka_reading import end_offsets, read_since

TOPIC = "events"


def batch(n: int, size: int = 100, subscription: str = "sub-1") -> dict[str, Any]:
    return {"events": [{"transaction_id": f"b{n}-{i}", "code": "api_calls", "external_subscription_id": subscription,
                        "timestamp": 1_781_049_600} for i in range(size)]}


def test_revoked_key_gets_401_within_30_s_on_ingest_and_api(services: Services, stack: Stack, unique: str) -> None:
    org = new_org(services, f"test-revoke-{unique}")
    urls = (stack.ingest_url, stack.api_url)
    for url in urls:
        with api(url, org.key) as http:
            assert http.post("/events", json={"event": batch(0, 1)["events"][0]}).status_code == 200
    engine = create_engine(services.sqlalchemy_url)
    with engine.begin() as conn:
        conn.execute(update(api_keys).where(api_keys.c.key_sha256 == key_hash(org.key)).values(expires_at=func.now()))
    engine.dispose()
    revoked_at = time.monotonic()
    pending = set(urls)
    while pending:
        assert time.monotonic() - revoked_at < 30, f"the revoked key still works on {pending} after 30 s"
        for url in list(pending):
            with api(url, org.key) as http:
                response = http.post("/events", json={"event": batch(1, 1)["events"][0]})
            if response.status_code == 401:
                assert response.json() == {"status": 401, "error": "Unauthorized"}
                pending.discard(url)
            else:
                assert response.status_code == 200, response.text
        time.sleep(0.5)


def test_rate_limit_answers_429_with_retry_after_per_organization(services: Services, unique: str) -> None:
    limited, other = new_org(services, f"test-limit-{unique}"), new_org(services, f"test-limit-b-{unique}")
    single = {"event": batch(9, 1)["events"][0]}
    # one worker process, though the buckets are in Redis, shared by every worker and the API: several answer the same
    with private_ingest(METERLINE_INGEST_RATE_LIMIT="0.5", METERLINE_INGEST_RATE_BURST="200",
                        METERLINE_INGEST_WORKERS="1") as ingest, \
            api(ingest.url, limited.key) as http, api(ingest.url, other.key) as http_other:
        assert [http.post("/events/batch", json=batch(n)).status_code for n in range(2)] == [200, 200]
        refused = http.post("/events/batch", json=batch(2))
        assert refused.status_code == 429
        assert refused.json() == {"status": 429, "error": "Too Many Requests", "code": "too_many_requests"}
        assert refused.headers["retry-after"] == "60"  # 100 events at 0.5/s: 200 s, hinted at most 60 s
        refused_single = http.post("/events", json=single)
        assert refused_single.status_code == 429
        assert refused_single.headers["retry-after"] == "2"  # one event at 0.5/s
        assert http_other.post("/events/batch", json=batch(4)).status_code == 200  # its own bucket
        time.sleep(2)
        assert http.post("/events", json=single).status_code == 200


def test_default_rate_limit_is_generous(stack: Stack, services: Services, unique: str) -> None:
    org = new_org(services, f"test-generous-{unique}")
    with api(stack.ingest_url, org.key) as http:
        assert {http.post("/events/batch", json=batch(n)).status_code for n in range(30)} == {200}


def test_graceful_shutdown_answers_in_flight_requests_and_loses_no_accepted_event(
        services: Services, unique: str) -> None:
    org = new_org(services, f"test-shutdown-{unique}")
    start = end_offsets(services.kafka_bootstrap, TOPIC)
    outcomes: list[tuple[dict[str, Any], int | None, Any]] = []
    stop = threading.Event()

    def send(worker: int, url: str) -> None:
        with api(url, org.key) as http:
            n = 0
            while not stop.is_set():
                body = batch(worker * 100_000 + n, size=50, subscription=f"sub-{worker}")
                try:
                    response = http.post("/events/batch", json=body)
                    outcomes.append((body, response.status_code, response.json()))
                except httpx.TransportError:  # the listening socket is closed: nothing was promised
                    outcomes.append((body, None, None))
                n += 1

    with private_ingest() as ingest:
        threads = [threading.Thread(target=send, args=(w, ingest.url), daemon=True) for w in range(4)]
        for thread in threads:
            thread.start()
        while sum(status == 200 for _, status, _ in outcomes) < 20:
            time.sleep(0.05)
        # SIGTERM: stop accepting, finish the requests in flight, flush Kafka. A single uvicorn process
        # re-raises the signal after its clean shutdown (-SIGTERM); a supervisor of workers exits 0.
        assert ingest.terminate(timeout_s=30) in (0, -signal.SIGTERM)
        accepted_at_exit = sum(status == 200 for _, status, _ in outcomes)
        stop.set()
        for thread in threads:
            thread.join(30)
        log = ingest.log.read_text()
    assert "Kafka producer flushed at shutdown: 0 events not acknowledged" in log, log[-3000:]
    assert "Traceback" not in log, log[-3000:]
    assert {status for _, status, _ in outcomes} <= {200, None}
    accepted = [(body, echoed) for body, status, echoed in outcomes if status == 200]
    assert len(accepted) == accepted_at_exit >= 20
    in_topic = {orjson.loads(r.value)["lago_id"] for r in read_since(services.kafka_bootstrap, TOPIC, start)
                if r.key.startswith(f"{org.id}:".encode())}
    for _, echoed in accepted:
        assert {e["lago_id"] for e in echoed["events"]} <= in_topic


def test_archived_event_is_readable_by_transaction_id_in_its_organization_only(
        services: Services, stack: Stack, unique: str) -> None:
    org, stranger = new_org(services, f"test-archive-{unique}"), new_org(services, f"test-archive-b-{unique}")
    with api(stack.api_url, org.key) as client, api(stack.ingest_url, org.key) as ingest:
        assert client.post("/billable_metrics", json=metric_body()).status_code == 200
        assert client.post("/plans", json=plan_body()).status_code == 200
        customer_id, subscription_id = f"acme-{unique}", f"sub-{unique}"
        customer = client.post("/customers", json=customer_body(customer_id))
        assert customer.status_code == 200, customer.text
        subscription = client.post("/subscriptions", json=subscription_body(customer_id, subscription_id))
        assert subscription.status_code == 200, subscription.text
        sent = mtu_event(subscription_id, f"tx-{unique}", "user-1", timestamp=int(time.time()) - 5)
        assert ingest.get(f"/events/{sent['transaction_id']}").status_code == 404  # not sent, not archived
        accepted = ingest.post("/events", json={"event": sent})
        assert accepted.status_code == 200, accepted.text
        echoed = accepted.json()["event"]
        deadline = time.monotonic() + 30
        while (found := ingest.get(f"/events/{sent['transaction_id']}")).status_code == 404:
            assert found.json() == {"status": 404, "error": "Not Found", "code": "event_not_found"}
            assert time.monotonic() < deadline, "the aggregator did not archive the event within 30 s"
            time.sleep(0.2)
        assert found.status_code == 200, found.text
        expected = {**echoed, "lago_subscription_id": subscription.json()["subscription"]["lago_id"],
                    "lago_customer_id": customer.json()["customer"]["lago_id"]}
        assert found.json() == {"event": expected}
        assert client.get(f"/events/{sent['transaction_id']}").json() == {"event": expected}  # mounted in the API
    with api(stack.ingest_url, stranger.key) as other:
        response = other.get(f"/events/{sent['transaction_id']}")
        assert response.status_code == 404
        assert response.json() == {"status": 404, "error": "Not Found", "code": "event_not_found"}
