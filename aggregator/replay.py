"""`meterline replay-rejected`: send rejected events back to the events topic once their cause is fixed.

The rejected topic is read from its beginning to its end at the time of the call, by a consumer
that joins no group and commits nothing (a replay never hides a rejection from the next one).
Each chosen event is produced again exactly as it was first accepted, same transaction_id, so
replaying twice, or replaying an event that was meanwhile applied, changes usage at most once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Producer, TopicPartition

from core.clients import idempotent_producer_config
from core.settings import Settings


@dataclass
class ReplayResult:
    replayed: int = 0
    skipped: int = 0  # filtered out by --reason / --since
    unreplayable: int = 0  # the original was not an events message (reason `malformed`)
    by_reason: dict[str, int] = field(default_factory=dict)


def parse_since(text: str) -> datetime:
    """`--since`: an ISO 8601 instant (UTC when it has no offset) or unix seconds."""
    try:
        return datetime.fromtimestamp(float(text), tz=UTC)
    except ValueError:
        pass
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def choose(message: bytes, reason: str | None) -> tuple[bytes, bytes] | str:
    """The (key, events message) to replay, or why not: 'skipped' or 'unreplayable'."""
    try:
        rejection = orjson.loads(message)
    except orjson.JSONDecodeError:
        return "unreplayable"
    if not isinstance(rejection, dict):
        return "unreplayable"
    if reason is not None and rejection.get("reason") != reason:
        return "skipped"
    original = rejection.get("event")
    if not isinstance(original, dict) or "organization_id" not in original \
            or "external_subscription_id" not in original:
        return "unreplayable"
    key = f"{original['organization_id']}:{original['external_subscription_id']}".encode()
    return key, orjson.dumps(original)


def read_rejected(settings: Settings, since: datetime | None) -> Iterator[bytes]:
    """Every message of the rejected topic up to its current end (not those rejected after since)."""
    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap, "group.id": "meterline-replay",
                         "enable.auto.commit": False, "enable.partition.eof": True, "log_level": 3})
    try:
        metadata = consumer.list_topics(settings.rejected_topic, timeout=30).topics[settings.rejected_topic]
        ends: dict[int, int] = {}
        for partition in metadata.partitions:
            _, high = consumer.get_watermark_offsets(TopicPartition(settings.rejected_topic, partition), timeout=30)
            if high > 0:
                ends[partition] = high
        start = OFFSET_BEGINNING
        if since is not None:
            wanted = [TopicPartition(settings.rejected_topic, p, int(since.timestamp() * 1000)) for p in ends]
            offsets = {tp.partition: tp.offset for tp in consumer.offsets_for_times(wanted, timeout=30)}
        else:
            offsets = {p: start for p in ends}
        live = {p for p, offset in offsets.items() if offset >= 0 or offset == OFFSET_BEGINNING}
        if not live:
            return
        consumer.assign([TopicPartition(settings.rejected_topic, p, offsets[p]) for p in live])
        while live:
            message = consumer.poll(5.0)
            if message is None:
                continue
            error, partition, offset = message.error(), message.partition() or 0, message.offset() or 0
            if error is not None:
                if error.code() == -191:  # _PARTITION_EOF
                    live.discard(partition)
                    continue
                raise KafkaException(error)
            value = message.value()
            if value is not None:
                yield value
            if offset + 1 >= ends[partition]:
                live.discard(partition)
    finally:
        consumer.close()


def replay_rejected(settings: Settings, reason: str | None = None, since: datetime | None = None,
                    say: Callable[[str], None] = print) -> ReplayResult:
    result = ReplayResult()
    producer = Producer(idempotent_producer_config(settings.kafka_bootstrap))
    failures: list[str] = []

    def delivered(error: object, _message: object) -> None:
        if error is not None:
            failures.append(str(error))

    for message in read_rejected(settings, since):
        choice = choose(message, reason)
        if choice == "skipped":
            result.skipped += 1
            continue
        if choice == "unreplayable":
            result.unreplayable += 1
            continue
        assert isinstance(choice, tuple)
        key, value = choice
        producer.produce(settings.events_topic, key=key, value=value, on_delivery=delivered)
        producer.poll(0)
        result.replayed += 1
        rejected_for = orjson.loads(message).get("reason", "?")
        result.by_reason[rejected_for] = result.by_reason.get(rejected_for, 0) + 1
    if producer.flush(30) > 0 or failures:
        raise KafkaException(f"replay not fully acknowledged by Kafka: {failures[:3]}")
    say(f"replayed {result.replayed} rejected events {result.by_reason}; skipped {result.skipped} "
        f"(filter), {result.unreplayable} not replayable (malformed)")
    return result
