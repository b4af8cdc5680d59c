"""``EventProducer``: publish contract records on confluent-kafka, with delivery reports checked.

Every record is validated and encoded by the codec (Avro single-object by default, JSON on request). A
delivery that fails is counted and raised from :meth:`EventProducer.flush` / :meth:`EventProducer.close` with
the reason and the count: a record is either acknowledged by the broker (``acks=all``) or reported, never
silently lost.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from types import TracebackType
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from connectors.kafka_client import LIBRDKAFKA_LOG, client_config
from connectors.topics import TOPIC_NAMES
from driftline.errors import ConfigError, DriftlineError
from driftline.settings import Settings
from driftline.util import now_ms
from schemas.codec import TOPIC_RECORDS, Codec, default_codec

log = logging.getLogger(__name__)

# Throughput defaults: small linger to form batches, lz4 (cheap CPU, good ratio on Avro), idempotence so
# retries never duplicate or reorder, murmur2_random so a key lands on the same partition as with Java
# clients.
PRODUCER_DEFAULTS: dict[str, Any] = {
    "linger.ms": 5,
    "batch.size": 1_000_000,
    "batch.num.messages": 10_000,
    "compression.type": "lz4",
    "enable.idempotence": True,
    "acks": "all",
    "partitioner": "murmur2_random",
    "queue.buffering.max.messages": 200_000,
}

ENCODINGS = ("avro", "json")
#: librdkafka's default ``message.max.bytes``, which EventProducer keeps: the client refuses a record whose key and
#: value together are larger, below ``serving.max_record_bytes`` (1 MiB). ``driftline produce`` checks a file's
#: records against it before sending any.
CLIENT_MESSAGE_MAX_BYTES = 1_000_000


class DeliveryError(DriftlineError, RuntimeError):
    """One or more records were not acknowledged by the broker; the message gives the count and a reason."""


class Deliveries:
    """The delivery reports of the records produced inside one ``with producer.tracking()`` block.

    A stage that pipelines its batches (processing batch k+1 while batch k's outputs travel to the broker) waits
    on these with :meth:`EventProducer.wait` before it acknowledges batch k's input. Reports may be served by
    whichever thread polls the producer, hence the lock.
    """

    def __init__(self, producer: EventProducer) -> None:
        self._producer = producer
        self.pending = 0
        self.failed = 0
        self.first_error: str | None = None
        self._lock = threading.Lock()

    def _on_delivery(self, err: KafkaError | None, msg: Message) -> None:
        with self._lock:
            self.pending -= 1
            if err is None:
                self._producer._delivered += 1
            else:
                self.failed += 1
                if self.first_error is None:
                    self.first_error = f"{msg.topic()}: {err.str()} ({err.name()})"

    @property
    def done(self) -> bool:
        """Every record has its report (delivered or failed)."""
        return self.pending <= 0


def _key_bytes(key: str | bytes | None) -> bytes | None:
    if key is None or isinstance(key, bytes):
        return key
    return str(key).encode("utf-8")


class EventProducer:
    """Publish contract records to their topics.

    ``topic`` arguments are contract names (``features``, ``labels``, ...); the configured prefix is added
    here.

    Usage::

        with EventProducer(settings) as producer:
            producer.send_feature("e1", {"x": 1.5})
            producer.send_label("e1", True)
        # leaving the block flushes and raises DeliveryError if anything was lost
    """

    def __init__(
        self,
        settings: Settings,
        codec: Codec | None = None,
        encoding: str = "avro",
        **config: Any,
    ) -> None:
        if encoding not in ENCODINGS:
            raise ConfigError(f"encoding: must be one of {', '.join(ENCODINGS)}, got {encoding!r}")
        self.settings = settings
        self.codec = codec or default_codec()
        self.encoding = encoding
        conf = {**PRODUCER_DEFAULTS, **client_config(settings, logger=LIBRDKAFKA_LOG, **config)}
        self._producer = Producer(conf)
        self._sent = 0
        self._delivered = 0
        self._failed = 0
        self._first_error: str | None = None
        self._closed = False
        # Tracking covers what the thread that opened it produces, nothing else, and each thread has its own:
        # a batch thread tracks its next batch while another thread tracks the join outputs of the one before.
        self._local = threading.local()

    # -- counters
    # ---------------------------------------------------------------------------------------------
    @property
    def sent(self) -> int:
        """Records handed to the client so far."""
        return self._sent

    @property
    def delivered(self) -> int:
        """Records acknowledged by the broker so far."""
        return self._delivered

    @property
    def failed(self) -> int:
        """Records whose delivery failed so far (raised on the next ``flush``/``close``)."""
        return self._failed

    # -- sending
    # ----------------------------------------------------------------------------------------------
    def encode(self, topic: str, record: str | None, value: Mapping[str, Any]) -> bytes:
        """Validate and encode ``value`` as ``record`` (default: the topic's contract record)."""
        record = record or TOPIC_RECORDS[topic]
        if self.encoding == "json":
            return self.codec.encode_json(record, dict(value), topic=topic)
        return self.codec.encode(record, dict(value), topic=topic)

    def send(
        self,
        topic: str,
        record: str | None,
        value: Mapping[str, Any],
        key: str | bytes | None = None,
    ) -> None:
        """Encode ``value`` as ``record`` and queue it for ``topic`` (a contract name) with ``key``.

        Raises :class:`~driftline.errors.SchemaError` if the value does not match the record, and
        :class:`DeliveryError` if the client rejects the message outright (e.g. larger than
        ``message.max.bytes``).
        """
        if topic not in TOPIC_NAMES:
            raise ConfigError(f"topic: {topic!r} is not a contract topic ({', '.join(TOPIC_NAMES)})")
        self.produce_bytes(self.settings.topic(topic), self.encode(topic, record, value), key)

    def produce_bytes(self, full_topic: str, data: bytes, key: str | bytes | None = None) -> None:
        """Queue already-encoded bytes for a full topic name (delivery still checked)."""
        if self._closed:
            raise DeliveryError("producer is closed")
        kb = _key_bytes(key)
        tracking: Deliveries | None = getattr(self._local, "tracking", None)
        on_delivery = self._on_delivery if tracking is None else tracking._on_delivery
        while True:
            try:
                self._producer.produce(full_topic, data, kb, on_delivery=on_delivery)
                break
            except BufferError:
                # Local queue full: serve delivery reports to make room, then retry (backpressure, not loss).
                self._producer.poll(0.05)
            except KafkaException as exc:
                raise DeliveryError(f"cannot produce to {full_topic}: {exc.args[0]}") from exc
        self._sent += 1
        if tracking is not None:
            with tracking._lock:
                tracking.pending += 1
        self._producer.poll(0)

    def produce_many(
        self, full_topic: str, records: Sequence[tuple[bytes, str | bytes | None]]
    ) -> list[DeliveryError | None]:
        """Queue already-encoded ``(bytes, key)`` records for one full topic name, in order, in one call to the
        client (``Producer.produce_batch``): the same partition per key and the same delivery checks as
        :meth:`produce_bytes` record by record, at a third of its cost per record (session 27, BENCHMARKS.md: ~0.7
        against ~2.1 us). Returns, per record, None (queued) or the error that refused it at once (larger than the
        client's ``message.max.bytes``, ...): the caller dead-letters those, as it would have caught
        :meth:`produce_bytes`' exception. A full local queue is waited out (delivery reports served) and the
        refused records queued again, as :meth:`produce_bytes` waits it out.

        Why: the score worker produced its Predictions one call each, with a thread-local lookup, a lock, a counter
        and a ``poll(0)`` per record. A client without ``produce_batch`` (confluent-kafka before 2.13) takes the
        records one by one through :meth:`produce_bytes`."""
        batch_produce = getattr(self._producer, "produce_batch", None)
        if batch_produce is None:
            return [self._produce_one(full_topic, data, key) for data, key in records]
        if self._closed:
            raise DeliveryError("producer is closed")
        tracking: Deliveries | None = getattr(self._local, "tracking", None)
        on_delivery = self._on_delivery if tracking is None else tracking._on_delivery
        messages: list[dict[str, Any]] = [{"value": data, "key": _key_bytes(key)} for data, key in records]
        errors: list[DeliveryError | None] = [None] * len(messages)
        todo = list(range(len(messages)))
        while todo:
            batch = [messages[i] for i in todo]
            if tracking is not None:  # counted before the call: a report served meanwhile finds it counted
                with tracking._lock:
                    tracking.pending += len(batch)
            try:
                batch_produce(full_topic, batch, on_delivery=on_delivery)
            except KafkaException as exc:
                if tracking is not None:
                    with tracking._lock:
                        tracking.pending -= len(batch)
                raise DeliveryError(f"cannot produce to {full_topic}: {exc.args[0]}") from exc
            full: list[int] = []
            for i, message in zip(todo, batch, strict=True):
                err = message.pop("_error", None)
                if err is None:
                    self._sent += 1
                    continue
                if tracking is not None:
                    with tracking._lock:
                        tracking.pending -= 1
                if err.code() == KafkaError._QUEUE_FULL:
                    full.append(i)
                else:
                    errors[i] = DeliveryError(f"cannot produce to {full_topic}: {err}")
            todo = full
            if todo:
                self._producer.poll(0.05)  # serve delivery reports to make room (backpressure, not loss)
        self._producer.poll(0)
        return errors

    def _produce_one(self, full_topic: str, data: bytes, key: str | bytes | None) -> DeliveryError | None:
        try:
            self.produce_bytes(full_topic, data, key)
        except DeliveryError as exc:
            return exc
        return None

    def send_feature(
        self,
        id: str,
        features: Mapping[str, Any],
        ts: int | None = None,
        key: str | None = None,
        model: str | None = None,
    ) -> None:
        """Publish a FeatureEvent (answered by ``model``, else as routed); the Kafka key is the entity ``key`` if
        given, else the event ``id``."""
        value = {
            "id": str(id),
            "ts": now_ms() if ts is None else int(ts),
            "key": key,
            "model": model,
            "features": dict(features),
        }
        self.send("features", "FeatureEvent", value, key if key is not None else str(id))

    def send_label(self, id: str, label: Any, ts: int | None = None) -> None:
        """Publish a Label answering the FeatureEvent ``id`` (keyed by ``id``)."""
        value = {"id": str(id), "ts": now_ms() if ts is None else int(ts), "label": label}
        self.send("labels", "Label", value, str(id))

    # -- delivery
    # ---------------------------------------------------------------------------------------------
    def _on_delivery(self, err: KafkaError | None, msg: Message) -> None:
        if err is None:
            self._delivered += 1
            return
        self._failed += 1
        if self._first_error is None:
            self._first_error = f"{msg.topic()}: {err.str()} ({err.name()})"
        log.debug("delivery failed on %s: %s", msg.topic(), err)

    @contextlib.contextmanager
    def tracking(self) -> Iterator[Deliveries]:
        """Track the deliveries of what is produced inside the block (from this thread) in one object.

        Their failures are reported by :meth:`wait` on that object, not by :meth:`flush`.
        """
        deliveries = Deliveries(self)
        outer = getattr(self._local, "tracking", None)
        self._local.tracking = deliveries
        try:
            yield deliveries
        finally:
            self._local.tracking = outer

    def wait(self, deliveries: Deliveries, timeout: float = 30.0, *, linger: bool = False) -> None:
        """Wait until every record of ``deliveries`` is acknowledged; :class:`DeliveryError` on any failure.

        Records produced later may still be in flight: only these are waited for. When nothing else is queued
        this is a flush (sent at once, without waiting for ``linger.ms``), unless ``linger``: then the records go
        out with the producer's own batching, as everything else it sends. A pipelined stage's finish step waits
        that way (``streams.finisher.PipelinedFinish``): its flush per pass of one to three small batches sent each
        pass as requests of its own, and cost the feature -> prediction p99 several times over (session 22,
        BENCHMARKS.md).
        """
        deadline = time.monotonic() + timeout
        while not deliveries.done:
            left = deadline - time.monotonic()
            if left <= 0:
                raise DeliveryError(
                    f"{deliveries.pending} record(s) still not acknowledged after {timeout:g} s "
                    f"(is Kafka at {self.settings.kafka.bootstrap} up?)"
                )
            if not linger and len(self._producer) <= deliveries.pending:
                self._producer.flush(min(left, 0.1))
            else:
                self._producer.poll(min(left, 0.005))
        if deliveries.failed:
            raise DeliveryError(
                f"{deliveries.failed} record(s) were not delivered; first error: {deliveries.first_error}"
            )

    # -- transactions (a producer created with ``transactional.id``) ----------------------------------------------
    def init_transactions(self, timeout: float = 30.0) -> None:
        """Register the transactional id; fences any older producer with the same id."""
        self._producer.init_transactions(timeout)

    def begin(self) -> None:
        self._producer.begin_transaction()

    def commit(self, offsets: list[Any], group_metadata: Any, timeout: float = 60.0) -> None:
        """Commit the open transaction with the input ``offsets`` of the consumer whose ``group_metadata`` is
        given (the group's generation fences a member that was replaced). Raises on any failed delivery."""
        if offsets:
            self._producer.send_offsets_to_transaction(offsets, group_metadata, timeout)
        self._producer.commit_transaction(timeout)
        self._raise_failures()

    def abort(self, timeout: float = 30.0) -> None:
        """Abort the open transaction: nothing produced in it is ever read by a read_committed consumer."""
        self._producer.abort_transaction(timeout)
        self._failed, self._first_error = 0, None

    def poll(self, timeout: float = 0) -> None:
        """Serve delivery reports (called for you by ``send``; call it when idle between sends)."""
        self._producer.poll(timeout)

    def flush(self, timeout: float = 30.0) -> None:
        """Wait until every queued record is acknowledged; raise :class:`DeliveryError` on any failure or
        timeout."""
        remaining = self._producer.flush(timeout)
        self._raise_failures()
        if remaining:
            raise DeliveryError(
                f"{remaining} record(s) still not acknowledged after {timeout:g} s "
                f"(is Kafka at {self.settings.kafka.bootstrap} up?)"
            )

    def _raise_failures(self) -> None:
        if self._failed:
            failed, reason = self._failed, self._first_error
            # Report each failure once: a caller that handles the error can keep using the producer.
            self._failed, self._first_error = 0, None
            raise DeliveryError(f"{failed} record(s) were not delivered; first error: {reason}")

    def close(self, timeout: float = 30.0) -> None:
        """Flush and stop; raises :class:`DeliveryError` if any record was lost. Safe to call twice."""
        if self._closed:
            return
        try:
            self.flush(timeout)
        finally:
            self._closed = True

    def __enter__(self) -> EventProducer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
            return
        # Already failing (or Ctrl-C): try briefly to deliver what was queued, without masking the error.
        try:
            self.close(timeout=5.0)
        except DriftlineError as close_exc:
            log.warning("while handling %s: %s", exc_type.__name__, close_exc)
