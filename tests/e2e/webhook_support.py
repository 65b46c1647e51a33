"""A webhook receiver for end-to-end tests: a small HTTP server on 127.0.0.1 recording what it gets."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Receiver:
    """A small HTTP receiver on 127.0.0.1 that fails its first `failures` requests with a 500, and takes
    `delay_s` to answer each."""

    def __init__(self, failures: int, delay_s: float = 0.0):
        self.failures = failures
        self.arrived = 0  # requests begun (answered or not yet)
        self.received: list[tuple[dict[str, str], bytes, int]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.arrived += 1
                time.sleep(delay_s)
                status = 500 if len(receiver.received) < receiver.failures else 200
                receiver.received.append((dict(self.headers), body, status))
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(self, count: int, timeout_s: float = 30) -> None:
        deadline = time.monotonic() + timeout_s
        while sum(1 for *_, status in self.received if status == 200) < count:
            assert time.monotonic() < deadline, f"only {self.received!r}"
            time.sleep(0.1)

    def payloads(self, webhook_type: str | None = None) -> list[dict[str, Any]]:
        """The bodies received with a 200, in arrival order (of one webhook type, when given)."""
        bodies = [json.loads(body) for _, body, status in self.received if status == 200]
        return [b for b in bodies if webhook_type is None or b["webhook_type"] == webhook_type]

    def wait_for_type(self, webhook_type: str, count: int, timeout_s: float = 30) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout_s
        while len(self.payloads(webhook_type)) < count:
            assert time.monotonic() < deadline, [b["webhook_type"] for b in self.payloads()]
            time.sleep(0.05)
        return self.payloads(webhook_type)

    def assert_signed(self, hmac_key: str) -> None:
        """Every request carried the HMAC-SHA256 signature of its body with the endpoint's key."""
        for headers, body, _ in self.received:
            expected = base64.b64encode(hmac.new(hmac_key.encode(), body, hashlib.sha256).digest()).decode()
            assert headers["X-Lago-Signature"] == expected
            assert headers["X-Lago-Signature-Algorithm"] == "hmac"
