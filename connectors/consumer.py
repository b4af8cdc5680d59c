"""Decoding consumed records of contract topics (:class:`Received`: the value, or the error that prevented
decoding, with its coordinates), the dead-letter record for one, and :func:`read_to_end`, a group-less read of a whole
topic. The stages' batch consumer is :mod:`connectors.batch_source`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Message, TopicPartition

from connectors.kafka_client import LIBRDKAFKA_LOG, client_config
from connectors.topics import TOPIC_NAMES
from driftline.errors import ConfigError, SchemaError, StackError
from driftline.settings import Settings
from driftline.util import now_ms
from schemas.codec import INPUT_TOPICS, TOPIC_RECORDS, Codec

log = logging.getLogger(__name__)
T = TypeVar("T")

# Topics whose records may arrive as JSON: the input topics (any client may publish) and the outputs whose
# encoding is a setting (serving.output_encoding).
JSON_TOPICS = frozenset(INPUT_TOPICS) | {"predictions", "drift"}


@dataclass(frozen=True, slots=True)
class Received:
    """One consumed record: decoded ``value`` or the ``error`` that prevented decoding, plus its
    coordinates."""

    topic: str  # contract name, e.g. "features"
    record: str  # contract record name, e.g. "FeatureEvent"
    value: dict[str, Any] | None
    error: SchemaError | None
    message: Message

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def partition(self) -> int:
        return int(self.message.partition() or 0)

    @property
    def offset(self) -> int:
        return int(self.message.offset() or 0)

    @property
    def key(self) -> bytes | None:
        key = self.message.key()
        return key.encode("utf-8") if isinstance(key, str) else key

    @property
    def timestamp_ms(self) -> int:
        """The Kafka message timestamp (ms), not the record's event time."""
        return int(self.message.timestamp()[1])


def contract_name(settings: Settings, full_topic: str) -> str:
    """``driftline.features`` -> ``features``; raises :class:`ConfigError` for a topic outside the
    contract."""
    prefix = settings.kafka.topic_prefix
    name = full_topic[len(prefix) :] if full_topic.startswith(prefix) else full_topic
    if name not in TOPIC_NAMES:
        raise ConfigError(
            f"topic: {full_topic!r} is not a contract topic under prefix {prefix!r}; "
            f"name one of {', '.join(TOPIC_NAMES)}"
        )
    return name


def decode_message(codec: Codec, topic: str, message: Message, *, allow_json: bool | None = None) -> Received:
    """Decode one Kafka message of contract topic ``topic``; a bad payload becomes ``Received.error``."""
    record = TOPIC_RECORDS[topic]
    data = message.value()
    json_ok = topic in JSON_TOPICS if allow_json is None else allow_json
    try:
        if data is None:
            raise SchemaError(f"{topic}: empty message (no value) at partition {message.partition()}")
        value = codec.decode(record, data, topic=topic, allow_json=json_ok, timestamp=message.timestamp()[1])
        return Received(topic, record, value, None, message)
    except SchemaError as exc:
        return Received(topic, record, None, exc, message)
    except Exception as exc:
        err = SchemaError(f"{topic}: cannot decode {record} at offset {message.offset()}: {exc!r}")
        err.__cause__ = exc
        return Received(topic, record, None, err, message)


def deadletter(item: Received | Message, error: BaseException | str, ts: int | None = None) -> dict[str, Any]:
    """A DeadLetter record for a message that could not be processed (send it to ``deadletter`` keyed by
    ``key``)."""
    msg = item.message if isinstance(item, Received) else item
    key = msg.key()
    value = msg.value()
    return {
        "source_topic": msg.topic() or "",
        "partition": int(msg.partition() or 0),
        "offset": int(msg.offset() or 0),
        "key": key.encode("utf-8") if isinstance(key, str) else key,
        "value": (value.encode("utf-8") if isinstance(value, str) else value) or b"",
        "error": str(error),
        "ts": now_ms() if ts is None else ts,
    }


class IncompleteRead(StackError):
    """:func:`read_to_end` (``strict``) could not read a topic to its end: the caller has only part of it."""


# A topic created a moment ago answers offset lookups with these until its partitions' leaders are elected.
_NOT_SETTLED = frozenset({KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE})


def _settling(call: Callable[[], T], deadline: float) -> T:
    """``call()``, asked again while the broker answers that a partition has no leader yet, until ``deadline``."""
    while True:
        try:
            return call()
        except KafkaException as exc:
            error = exc.args[0] if exc.args else None
            if (
                not isinstance(error, KafkaError)
                or error.code() not in _NOT_SETTLED
                or time.monotonic() >= deadline
            ):
                raise
            time.sleep(0.1)


def read_to_end(
    settings: Settings,
    full_topic: str,
    group_id: str,
    *,
    since_ms: int | None = None,
    timeout: float = 10.0,
    strict: bool = False,
) -> Iterator[Message]:
    """Every message of ``full_topic`` up to the end it had when called (from ``since_ms`` if given, else the
    beginning), without joining a consumer group; gives up after ``timeout`` seconds.

    Giving up is silent unless ``strict``: then :class:`IncompleteRead` is raised after the messages read, when a
    partition was not read to its end in time (a slow or unreachable broker; a transaction still open is not that:
    its first record is the end a read_committed reader sees) or the topic's metadata had an error other than "no
    such topic" (a topic that does not exist is read completely: it is empty). A client call that fails (offsets,
    watermarks: the broker away) raises its KafkaException, or with ``strict`` an :class:`IncompleteRead`."""
    consumer = Consumer(
        client_config(settings, logger=LIBRDKAFKA_LOG, **{"group.id": group_id, "enable.auto.commit": False})
    )
    try:
        meta = consumer.list_topics(full_topic, timeout=timeout).topics.get(full_topic)
        if meta is None or meta.error is not None:
            if strict and meta is not None and meta.error.code() != KafkaError.UNKNOWN_TOPIC_OR_PART:
                raise IncompleteRead(f"could not read {full_topic}: {meta.error.str()}")
            return
        settled = time.monotonic() + timeout  # offset lookups wait this long for new partitions' leaders
        if since_ms is None:
            starts = [TopicPartition(full_topic, p, OFFSET_BEGINNING) for p in meta.partitions]
        else:
            wanted = [TopicPartition(full_topic, p, since_ms) for p in meta.partitions]
            starts = _settling(partial(consumer.offsets_for_times, wanted, timeout=timeout), settled)
        ends = {}
        for tp in starts:
            watermarks = partial(
                consumer.get_watermark_offsets, TopicPartition(full_topic, tp.partition), timeout
            )
            low, high = _settling(watermarks, settled)
            first = low if tp.offset == OFFSET_BEGINNING else tp.offset
            if first >= 0 and high > first:
                ends[tp.partition] = high
        if not ends:
            return
        consumer.assign([tp for tp in starts if tp.partition in ends])
        deadline = time.monotonic() + timeout
        while ends and time.monotonic() < deadline:
            for msg in consumer.consume(1000, 0.5):
                if msg.error():
                    continue
                part, offset = msg.partition() or 0, msg.offset() or 0
                if offset + 1 >= ends.get(part, 0):
                    ends.pop(part, None)
                yield msg
            # A topic written in transactions ends with a commit marker, which is never delivered: the read
            # position (past it) says when a partition is done. Records of a transaction still open are not
            # read (read_committed) until it ends.
            for tp in consumer.position([TopicPartition(full_topic, p) for p in list(ends)]):
                if tp.offset >= 0 and tp.offset >= ends.get(tp.partition, 0):
                    ends.pop(tp.partition, None)
        if strict and ends:
            raise IncompleteRead(
                f"could not read {full_topic} to its end within {timeout:g} s "
                f"(partitions {sorted(ends)} unfinished: a slow or unreachable broker); try again"
            )
    except KafkaException as exc:
        # A client call gave up (metadata, watermarks, offsets: a broker away or just back). A strict caller (the
        # trainer's audit read) keeps an IncompleteRead and tries again later; any other exception killed it.
        if not strict:
            raise
        raise IncompleteRead(f"could not read {full_topic}: {exc}; try again") from exc
    finally:
        consumer.close()
