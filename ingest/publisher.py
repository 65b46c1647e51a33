"""Kafka publishing for the ingest: an idempotent confluent-kafka producer bridged to asyncio.

A request's events are produced together and its future resolves only when the broker has
acknowledged every one of them (acks=all), or fails with the first delivery error. A thread
serves the producer's delivery callbacks; they hand results back to the event loop.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

from confluent_kafka import KafkaError, KafkaException, Producer

from schemas.events import Event, event_to_message


class PublishError(RuntimeError):
    """Kafka did not acknowledge the events in time; the client must retry (nothing was promised)."""


class _RequestAck:
    """Counts acknowledgements of one request's messages; called from the producer's poll thread."""

    def __init__(self, loop: asyncio.AbstractEventLoop, expected: int):
        self.loop = loop
        self.remaining = expected
        self.future: asyncio.Future[None] = loop.create_future()

    def __call__(self, error: KafkaError | None, _message: object) -> None:
        if error is not None:
            self.loop.call_soon_threadsafe(self._fail, error)
            return
        self.remaining -= 1
        if self.remaining == 0:
            self.loop.call_soon_threadsafe(self._done)

    def _done(self) -> None:
        if not self.future.done():
            self.future.set_result(None)

    def _fail(self, error: KafkaError) -> None:
        if not self.future.done():
            self.future.set_exception(PublishError(f"Kafka refused the event: {error.str()}"))


def producer_config(bootstrap: str, timeout_s: float) -> dict[str, object]:
    return {
        "bootstrap.servers": bootstrap,
        "enable.idempotence": True,
        "acks": "all",
        "compression.type": "lz4",
        "linger.ms": 2,
        "batch.num.messages": 10000,
        "queue.buffering.max.kbytes": 256 * 1024,
        "message.timeout.ms": int(timeout_s * 1000),
        "socket.connection.setup.timeout.ms": 3000,
        "reconnect.backoff.max.ms": 1000,
        "log_level": 3,
    }


class EventPublisher:
    def __init__(self, bootstrap: str, topic: str, timeout_s: float):
        self.topic = topic
        self.timeout_s = timeout_s
        self._producer = Producer(producer_config(bootstrap, timeout_s))
        self._stopping = threading.Event()
        self._poller = threading.Thread(target=self._poll, name="kafka-delivery", daemon=True)
        self._poller.start()

    def _poll(self) -> None:
        while not self._stopping.is_set():
            self._producer.poll(0.05)

    async def publish(self, events: Sequence[Event]) -> None:
        """Return once Kafka acknowledged every event; raise PublishError otherwise (within the timeout)."""
        ack = _RequestAck(asyncio.get_running_loop(), len(events))
        try:
            for event in events:
                self._producer.produce(self.topic, event_to_message(event), event.partition_key, on_delivery=ack)
        except (BufferError, KafkaException) as exc:
            raise PublishError(f"the producer cannot take more events now: {exc}") from exc
        try:
            await asyncio.wait_for(asyncio.shield(ack.future), self.timeout_s + 0.5)
        except TimeoutError as exc:
            raise PublishError(f"Kafka did not acknowledge within {self.timeout_s:.0f}s") from exc

    def broker_reachable(self, timeout_s: float = 2.0) -> bool:
        try:
            self._producer.list_topics(self.topic, timeout=timeout_s)
        except KafkaException:
            return False
        return True

    def close(self, timeout_s: float = 10.0) -> int:
        """Flush in-flight events (graceful shutdown); returns how many could not be delivered."""
        remaining = self._producer.flush(timeout_s)
        self._stopping.set()
        self._poller.join(timeout=1)
        return remaining
