"""The compacted ``changelog`` topic: each model's trainer state, keyed by model name (streams/trainers.py)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition

from connectors.kafka_client import LIBRDKAFKA_LOG, client_config
from connectors.topics import CHANGELOG_MAX_BYTES
from driftline.settings import Settings


def read_changelog(
    settings: Settings,
    partitions: Iterable[int],
    timeout: float = 60.0,
    accept: Callable[[str, bytes | None], bool] | None = None,
    where: dict[str, int] | None = None,
) -> dict[str, bytes]:
    """``{model: sealed state}``: the newest committed record per model on ``partitions`` of ``changelog``.

    Reads to the end each partition had when called, by read position (a transactional topic ends with a commit
    marker that is never delivered); records of a transaction still open are waited for until it ends (at most
    the transaction timeout). A tombstone removes the model. With ``accept``, a record (``None`` for a tombstone)
    it returns False for is passed over: the model keeps the newest accepted record before it, so a forged record
    published after a trainer's committed state does not hide that state (the trainer checks the seal).
    ``where`` (if given) receives the partition each returned state was read from.
    """
    topic = settings.topic("changelog")
    consumer = Consumer(
        client_config(
            settings,
            logger=LIBRDKAFKA_LOG,
            **{
                "group.id": f"driftline-{settings.kafka.topic_prefix}changelog-reader",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
                "fetch.message.max.bytes": CHANGELOG_MAX_BYTES,
            },
        )
    )
    states: dict[str, bytes] = {}
    try:
        ends: dict[int, int] = {}
        for p in partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10, cached=False)
            if high > low:
                ends[p] = high
        if not ends:
            return states
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in ends])
        deadline = time.monotonic() + timeout
        while ends:
            if time.monotonic() > deadline:
                raise KafkaException(
                    KafkaError(KafkaError._TIMED_OUT, f"{topic}: not read to its end in {timeout:g} s")
                )
            for msg in consumer.consume(1000, 0.5):
                if msg.error():
                    continue
                name = (msg.key() or b"").decode("utf-8", "replace")
                if accept is not None and not accept(name, msg.value()):
                    continue
                if msg.value() is None:
                    states.pop(name, None)
                    if where is not None:
                        where.pop(name, None)
                else:
                    states[name] = msg.value() or b""
                    if where is not None:
                        where[name] = msg.partition() or 0
            for tp in consumer.position([TopicPartition(topic, p) for p in list(ends)]):
                if tp.offset >= ends[tp.partition]:
                    ends.pop(tp.partition)
    finally:
        consumer.close()
    return states
