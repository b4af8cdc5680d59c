"""``models list``'s trainer lag (:func:`streams.model_registry.trainer_lags`) counts a training partition the
trainer group never committed from its low watermark, where a trainer starts, as ``status`` does: from offset 0
it also counted records deleted before (retention, expired group offsets) and the two disagreed (session 41)."""

from __future__ import annotations

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from connectors.topics import ensure_topics
from driftline.settings import Settings
from streams.model_registry import trainer_group, trainer_lags

pytestmark = pytest.mark.kafka


def _fill(settings: Settings, partition: int, count: int) -> str:
    topic = settings.topic("training")
    producer = Producer({"bootstrap.servers": settings.kafka.bootstrap})
    for i in range(count):
        producer.produce(topic, value=b"x%d" % i, partition=partition)
    assert producer.flush(30) == 0
    return topic


def test_an_uncommitted_partition_counts_from_its_low_watermark_after_a_deletion(settings: Settings) -> None:
    ensure_topics(settings, names=("training",))
    topic = _fill(settings, 0, 10)
    admin = AdminClient({"bootstrap.servers": settings.kafka.bootstrap})
    for future in admin.delete_records([TopicPartition(topic, 0, 6)], request_timeout=30).values():
        assert future.result(60).low_watermark == 6

    lags = trainer_lags(settings)
    assert lags[0] == 4  # offsets 6-9; offset 0 as the start said 10
    assert all(lags[p] == 0 for p in lags if p != 0)


def test_a_committed_partition_counts_from_the_commit(settings: Settings) -> None:
    ensure_topics(settings, names=("training",))
    topic = _fill(settings, 1, 10)
    consumer = Consumer({"bootstrap.servers": settings.kafka.bootstrap, "group.id": trainer_group(settings)})
    try:
        consumer.commit(offsets=[TopicPartition(topic, 1, 7)], asynchronous=False)
    finally:
        consumer.close()

    assert trainer_lags(settings)[1] == 3


def test_a_commit_below_the_low_watermark_counts_from_the_low_watermark_in_models_and_status(
    settings: Settings,
) -> None:
    """A trainer whose commit points at records deleted since (retention while it was down) resets to the earliest
    record (``auto.offset.reset=earliest``): both ``models list`` and ``status`` counted from the stale commit."""
    from connectors.kafka_view import KafkaView

    ensure_topics(settings, names=("training",))
    topic = _fill(settings, 2, 10)
    group = trainer_group(settings)
    consumer = Consumer({"bootstrap.servers": settings.kafka.bootstrap, "group.id": group})
    try:
        consumer.commit(offsets=[TopicPartition(topic, 2, 2)], asynchronous=False)
    finally:
        consumer.close()
    admin = AdminClient({"bootstrap.servers": settings.kafka.bootstrap})
    for future in admin.delete_records([TopicPartition(topic, 2, 6)], request_timeout=30).values():
        assert future.result(60).low_watermark == 6

    assert trainer_lags(settings)[2] == 4  # offsets 6-9; the stale commit said 8
    (info,) = KafkaView(settings, timeout=10.0).describe([group])
    assert info.lag == {topic: 4}
