"""What :class:`connectors.producer.EventProducer` needs to replace a client stuck after a broker restart.

librdkafka can keep the records it holds undelivered for minutes after a broker restart while the broker answers
every other client (``new leader-1 not found in cache``: 908 records unacknowledged 166 s after the broker was back,
helper flaky38, session 38, about 1 restart in 17). The producer then asks a fresh client whether the cluster could
take those records now (:func:`cluster_takes`); if it could for a bounded time and the client still reports nothing,
the client's records are purged (each comes back as a delivery report carrying its topic, partition, key, value and
timestamp, :class:`Purged`) and sent again, in their order, through a new client (:meth:`Purged.resend`).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterable
from typing import Any

from confluent_kafka import TIMESTAMP_NOT_AVAILABLE, KafkaError, KafkaException, Message, Producer
from confluent_kafka.admin import AdminClient

from connectors.kafka_client import LIBRDKAFKA_LOG, client_config
from driftline.settings import Settings

PURGED_CODES = (KafkaError._PURGE_QUEUE, KafkaError._PURGE_INFLIGHT)

DeliveryCallback = Callable[[KafkaError | None, Message], None]


def cluster_takes(settings: Settings, topics: Iterable[str], timeout: float = 5.0) -> bool:
    """Whether a fresh client sees every partition of ``topics`` (full names) with a leader and at least
    min(2, replicas) in-sync replicas: a producer with ``acks=all`` could write to all of them now."""
    admin = AdminClient(client_config(settings, logger=LIBRDKAFKA_LOG))
    try:
        metadata = admin.list_topics(timeout=timeout)
    except KafkaException:
        return False
    if not metadata.brokers:
        return False
    for name in topics:
        topic = metadata.topics.get(name)
        if topic is None or topic.error is not None or not topic.partitions:
            return False
        for part in topic.partitions.values():
            if part.error is not None or part.leader < 0 or len(part.isrs) < min(2, len(part.replicas)):
                return False
    return True


class Purged:
    """The records purged from replaced clients, collected from their delivery reports (served by whichever
    thread polls), until they are sent again."""

    def __init__(self) -> None:
        self.active = False  # set once a client was replaced: purge reports before that are not ours
        self._records: list[
            tuple[bool, str, int, bytes | None, bytes | None, int | None, DeliveryCallback]
        ] = []
        self._lock = threading.Lock()
        self.in_flight = 0  # of those sent again so far: purged while in flight (the broker may have them)

    def take(self, err: KafkaError, msg: Message, callback: DeliveryCallback) -> bool:
        """Keep a purged record for :meth:`resend` (True), or leave the report to its callback (False)."""
        if not self.active or err.code() not in PURGED_CODES:
            return False
        kind, ts = msg.timestamp()
        partition = msg.partition()
        record = (
            err.code() == KafkaError._PURGE_INFLIGHT,
            str(msg.topic()),
            -1 if partition is None else int(partition),
            msg.key(),
            msg.value(),
            None if kind == TIMESTAMP_NOT_AVAILABLE else int(ts),
            callback,
        )
        with self._lock:
            self._records.append(record)
        return True

    def __len__(self) -> int:
        return len(self._records)

    def resend(self, client: Producer) -> int:
        """Produce every record kept so far through ``client`` with its original callback, partition, key and
        timestamp; returns how many. Per partition in timestamp order (the order they were produced in, to the
        millisecond); two records of a partition produced in the same millisecond, one purged in flight and one in
        the queue, can still be re-sent out of their order (in flight first)."""
        with self._lock:
            records, self._records = self._records, []
        # Per partition in the order they were produced: by their timestamp (set at produce, in send order), and
        # within a millisecond in-flight first (taken from the front of the queue), then report order (a stable
        # sort). Report order alone is not send order: after a leader's kill -9, a record purged in the queue (a
        # retried batch) came back after a later one purged in flight, and a key's records were re-sent out of
        # order (CI, session 39: 256 before 244).
        records.sort(key=lambda r: (r[1], r[2], math.inf if r[5] is None else r[5], not r[0]))
        for in_flight, topic, partition, key, value, ts, callback in records:
            kwargs: dict[str, Any] = {"on_delivery": callback}
            if partition >= 0:
                kwargs["partition"] = partition
            if ts is not None:
                kwargs["timestamp"] = ts
            while True:
                try:
                    client.produce(topic, value, key, **kwargs)
                    break
                except BufferError:
                    client.poll(0.05)
            self.in_flight += int(in_flight)
        return len(records)
