"""Read the end of a contract topic without a consumer group: each partition is assigned from ``high watermark -
N`` and read up to the high watermark recorded at the start; the records are merged by timestamp.

Used by ``driftline tail``, the demo's collector and the tests.
"""

from __future__ import annotations

import time

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from connectors.consumer import Received, decode_message
from connectors.kafka_client import LIBRDKAFKA_LOG, client_config
from driftline.errors import DriftlineError, StackError
from driftline.settings import Settings
from schemas.codec import Codec

__all__ = ["assign_tail", "read_first", "read_last", "read_until_end"]


def assign_tail(settings: Settings, name: str, last_n: int | None) -> tuple[Consumer, dict[int, int]]:
    """A group-less consumer assigned to the last ``last_n`` records of each partition (all if ``None``).

    Also returns ``{partition: high watermark}`` for partitions that have something to read.
    """
    topic = settings.topic(name)
    conf = client_config(
        settings,
        **{
            # Required by the client, never used: nothing subscribes or commits.
            "group.id": "driftline-tail",
            "enable.auto.commit": False,
            "enable.partition.eof": False,
            "logger": LIBRDKAFKA_LOG,
        },
    )
    consumer = Consumer(conf)
    try:
        metadata = consumer.list_topics(topic, timeout=10)
    except KafkaException as exc:  # not a StackError: callers take that for "the topic does not exist"
        consumer.close()
        raise DriftlineError(
            f"reading {topic}: the broker at {settings.kafka.bootstrap} did not answer ({exc.args[0].str()}); "
            "is it running? (driftline stack status)"
        ) from exc
    tmeta = metadata.topics.get(topic)
    if tmeta is None or tmeta.error is not None or not tmeta.partitions:
        consumer.close()
        raise StackError(f"topic {topic} does not exist (produce to it first, or check --topic-prefix)")
    assignment, ends = [], {}
    for partition in sorted(tmeta.partitions):
        low, high = _watermarks(consumer, TopicPartition(topic, partition))
        start = low if last_n is None else max(low, high - last_n)
        assignment.append(TopicPartition(topic, partition, start))
        if high > start:
            ends[partition] = high
    consumer.assign(assignment)
    return consumer, ends


def read_last(settings: Settings, codec: Codec, name: str, last_n: int) -> tuple[Consumer, list[Received]]:
    """The last ``last_n`` records of a topic (merged by timestamp) and the consumer positioned after them.

    ``high watermark - N`` counts offsets, not records: on a topic written in transactions (``models``, and what
    the trainer writes) every commit marker takes an offset, and compaction leaves gaps, so the window is widened
    (x4) until it holds ``last_n`` records or reaches the start of every partition.
    """
    window = max(last_n, 1)
    while True:
        consumer, ends = assign_tail(settings, name, window)
        records = read_until_end(consumer, codec, name, ends)
        if len(records) >= last_n or window >= _deepest(consumer):
            return consumer, records[-last_n:] if last_n > 0 else []
        consumer.close()
        window *= 4


def read_first(settings: Settings, codec: Codec, name: str, first_n: int) -> tuple[Consumer, list[Received]]:
    """The first ``first_n`` records of a topic (merged by timestamp) and the consumer.

    Each partition is read only until it gave ``first_n`` records (or its end): the first N of the merge are
    among those as long as each partition's timestamps rise with its offsets (a producer's own records do). It
    read the whole topic to print three records."""
    consumer, ends = assign_tail(settings, name, None)
    return consumer, read_until_end(consumer, codec, name, ends, limit=first_n)[:first_n]


def _deepest(consumer: Consumer) -> int:
    """The most offsets any assigned partition holds (high - low watermark)."""
    return max(
        (high - low for low, high in (_watermarks(consumer, tp) for tp in consumer.assignment())), default=0
    )


# A partition whose leader is moving (a topic just created, a broker restarting) answers these for a moment.
_LEADER_MOVING = (KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE)


def _watermarks(consumer: Consumer, tp: TopicPartition, within_s: float = 30.0) -> tuple[int, int]:
    """``(low, high)`` of ``tp``, asked again while its leader is moving (up to ``within_s``): a tail right after
    ``stack up`` or a broker restart failed with "Not leader for partition" although the next try would answer."""
    deadline = time.monotonic() + within_s
    while True:
        try:
            low, high = consumer.get_watermark_offsets(tp, timeout=10)
            return low, high
        except KafkaException as exc:
            err = exc.args[0] if exc.args else None
            code = err.code() if isinstance(err, KafkaError) else None
            if code not in _LEADER_MOVING or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def read_until_end(
    consumer: Consumer,
    codec: Codec,
    name: str,
    ends: dict[int, int],
    idle_timeout: float = 5.0,
    limit: int | None = None,
) -> list[Received]:
    """Consume until every partition reached the high watermark recorded in ``ends`` (or gave ``limit`` records:
    it is then paused and its later records are not decoded); merged by timestamp.

    ``name`` is the contract topic name; the consumer must already be assigned (see :func:`assign_tail`).
    """
    topic = consumer.assignment()[0].topic if ends else name
    pending = dict(ends)
    counts: dict[int, int] = {}  # records taken per partition (with ``limit``)
    out: list[Received] = []
    last_progress = time.monotonic()
    if limit is not None and limit <= 0:
        pending.clear()
    while pending:
        msgs = consumer.consume(500, 0.2)
        for msg in msgs:
            err = msg.error()
            if err is not None:
                if err.fatal():
                    raise StackError(f"tail {name}: {err.str()}")
                continue
            partition = msg.partition() or 0
            if limit is not None:
                if counts.get(partition, 0) >= limit:
                    continue  # fetched before its partition was paused
                counts[partition] = counts.get(partition, 0) + 1
                if counts[partition] == limit:
                    pending.pop(partition, None)
                    consumer.pause([TopicPartition(topic, partition)])
            out.append(decode_message(codec, name, msg, allow_json=True))
            if partition in pending and (msg.offset() or 0) >= pending[partition] - 1:
                del pending[partition]
        if msgs:
            last_progress = time.monotonic()
            continue
        # Compaction or aborted transactions can leave the last offsets empty: trust the position then.
        for tp in consumer.position([TopicPartition(topic, p) for p in list(pending)]):
            if tp.offset >= pending.get(tp.partition, 0) or tp.error is not None:
                pending.pop(tp.partition, None)
        if time.monotonic() - last_progress > idle_timeout:
            break
    out.sort(key=lambda r: (r.timestamp_ms, r.partition, r.offset))
    return out
