"""The stack's topics: created once with the configured partitions, refused when an existing one disagrees."""

from __future__ import annotations

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from meterline.stack.proc import StackError
from meterline.stack.topics import ensure_topics
from tests.conftest import Services


def partitions_of(services: Services, topic: str) -> int:
    admin = AdminClient({"bootstrap.servers": services.kafka_bootstrap})
    return len(admin.list_topics(topic, timeout=10).topics[topic].partitions)


def test_the_touched_topic_is_made_like_the_events_and_one_that_disagrees_is_refused(
        services: Services, unique: str) -> None:
    events, rejected, touched = f"events-{unique}", f"rejected-{unique}", f"touched-{unique}"
    ensure_topics(services.kafka_bootstrap, events, rejected, 3, touched)
    assert (partitions_of(services, events), partitions_of(services, touched)) == (3, 3)
    ensure_topics(services.kafka_bootstrap, events, rejected, 3, touched)  # again: nothing to do

    other = f"touched-2-{unique}"
    admin = AdminClient({"bootstrap.servers": services.kafka_bootstrap})
    for future in admin.create_topics([NewTopic(other, num_partitions=1, replication_factor=1)]).values():
        future.result()
    with pytest.raises(StackError, match=rf"^topic {other} has 1 partitions, METERLINE_EVENTS_PARTITIONS says 3"):
        ensure_topics(services.kafka_bootstrap, events, rejected, 3, other)
