"""Small broker helpers shared by the batch-loop tests: fill a topic, read a group's committed offset."""

from __future__ import annotations

from confluent_kafka import Consumer, Producer, TopicPartition

from connectors.kafka_client import client_config
from driftline.settings import Settings


def fill(settings: Settings, topic: str, n: int, partitions: int = 1) -> None:
    """Produce values ``b"0"``..``b"n-1"``, spread round-robin over ``partitions``."""
    producer = Producer(client_config(settings))
    for i in range(n):
        producer.produce(topic, str(i).encode(), partition=i % partitions)
    assert producer.flush(30) == 0


def committed(settings: Settings, group: str, topic: str) -> int:
    """The offset ``group`` committed on partition 0 of ``topic``."""
    consumer = Consumer(client_config(settings, **{"group.id": group}))
    try:
        (tp,) = consumer.committed([TopicPartition(topic, 0)], timeout=10)
        return tp.offset
    finally:
        consumer.close()
