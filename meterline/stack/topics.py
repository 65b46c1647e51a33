"""Kafka topics of the pipeline, created idempotently with confluent-kafka's admin client."""

from __future__ import annotations

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from meterline.stack.proc import StackError


def ensure_topics(bootstrap: str, events_topic: str, rejected_topic: str, partitions: int, touched_topic: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 3})
    try:
        existing = admin.list_topics(timeout=30).topics
    except KafkaException as exc:
        raise StackError(f"Kafka at {bootstrap} does not answer: {exc}") from exc
    wanted = [
        NewTopic(events_topic, num_partitions=partitions, replication_factor=1,
                 config={"min.insync.replicas": "1", "retention.ms": str(7 * 24 * 3600 * 1000)}),
        NewTopic(rejected_topic, num_partitions=1, replication_factor=1,
                 config={"retention.ms": str(30 * 24 * 3600 * 1000)}),
        # what each batch changed, for the alerts worker (aggregator/alerts_app.py): kept as long as the events
        NewTopic(touched_topic, num_partitions=partitions, replication_factor=1,
                 config={"min.insync.replicas": "1", "retention.ms": str(7 * 24 * 3600 * 1000)}),
    ]
    # the aggregators send each touched pair to partition `hash % partitions` of the touched topic
    for name in (events_topic, touched_topic):
        if name in existing and len(existing[name].partitions) != partitions:
            raise StackError(f"topic {name} has {len(existing[name].partitions)} partitions, "
                             f"METERLINE_EVENTS_PARTITIONS says {partitions}: the two must agree")
    missing = [topic for topic in wanted if topic.topic not in existing]
    if not missing:
        return
    for topic, future in admin.create_topics(missing, request_timeout=30).items():
        try:
            future.result()
        except KafkaException as exc:
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise StackError(f"creating topic {topic} failed: {exc}") from exc
