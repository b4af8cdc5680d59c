"""``EventProducer``: publish contract records on confluent-kafka, with delivery reports checked.

Every record is validated and encoded by the codec (Avro single-object by default, JSON on request). A
delivery that fails is counted and raised from :meth:`EventProducer.flush` / :meth:`EventProducer.close` with
the reason and the count: a record is either acknowledged by the broker (``acks=all``) or reported, never
silently lost.

A client stuck after a broker restart (librdkafka can keep what it holds undelivered for minutes while the broker
answers every other client) is replaced: see :class:`EventProducer`'s ``stuck_after_s``.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from types import TracebackType
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from connectors.kafka_client import LIBRDKAFKA_LOG, client_config
from connectors.producer_recovery import Purged, cluster_takes
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
#: How long a client may hold records without any delivery report while the cluster could take them (every
#: partition of the topics it produced to has a leader and enough in-sync replicas, as a fresh client sees them)
#: before it is replaced. A client that recovers by itself does so 1-7 s after the broker is back (session 38,
#: 8 of 8 restarts at load ~18); a stuck one delivered nothing for 166 s.
STUCK_AFTER_S = 30.0
# Without any delivery report for this long while records are held, ask a fresh client whether the cluster could
# take them (at most once per this interval).
_PROBE_AFTER_S = 2.0


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
        if err is not None and self._producer._purged.take(err, msg, self._on_delivery):
            return  # purged from a stuck client: sent again through its replacement, still pending here
        with self._lock:
            self.pending -= 1
            self._producer._reports += 1
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

    A client that holds records without any delivery report for ``stuck_after_s`` while the cluster could take
    them (a fresh client sees a leader and in-sync replicas for every partition of the topics it produced to) is
    stuck, as librdkafka can be after a broker restart: its records are purged and sent again, in order per
    partition, through a new client, with their original callbacks, keys and timestamps; ``replaced`` and
    ``resent`` count it, ``on_replaced(records)`` is called and a warning says what happened. Records purged in
    flight may already be on the broker, so they can appear twice (at least once, as the contract allows
    predictions; the joiner and trainer drop repeats by id). A transactional producer is never replaced (the
    trainer fences and restarts its own). ``stuck_after_s=None`` turns it off.
    """

    def __init__(
        self,
        settings: Settings,
        codec: Codec | None = None,
        encoding: str = "avro",
        *,
        stuck_after_s: float | None = STUCK_AFTER_S,
        on_replaced: Callable[[int], None] | None = None,
        **config: Any,
    ) -> None:
        if encoding not in ENCODINGS:
            raise ConfigError(f"encoding: must be one of {', '.join(ENCODINGS)}, got {encoding!r}")
        self.settings = settings
        self.codec = codec or default_codec()
        self.encoding = encoding
        conf = {**PRODUCER_DEFAULTS, **client_config(settings, logger=LIBRDKAFKA_LOG, **config)}
        self._conf = conf
        self._producer = self._new_client()
        self._stuck_after = None if "transactional.id" in conf else stuck_after_s
        self._on_replaced = on_replaced
        self._reports = 0  # delivery reports served (either outcome): the client's progress
        self._seen_reports = 0
        self._quiet_since = time.monotonic()
        # Since when a fresh client has seen the cluster able to take the records held (None: not seen).
        self._taking_since: float | None = None
        self._probed = 0.0
        self._probe_thread: threading.Thread | None = None
        self._probe_answer: tuple[float, bool] | None = None  # (asked at, whether the cluster takes records)
        self._topics: set[str] = set()
        self._purged = Purged()
        self._abandoned: list[Producer] = []  # replaced clients, kept (destroying a stuck one can block)
        self._swap = threading.RLock()  # a client call never meets a replacement half done
        self.replaced = 0
        self.resent = 0
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
        self._topics.add(full_topic)
        while True:
            try:
                with self._swap:
                    self._producer.produce(full_topic, data, kb, on_delivery=on_delivery)
                break
            except BufferError:
                # Local queue full: serve delivery reports to make room, then retry (backpressure, not loss).
                self.poll(0.05)
            except KafkaException as exc:
                raise DeliveryError(f"cannot produce to {full_topic}: {exc.args[0]}") from exc
        self._sent += 1
        if tracking is not None:
            with tracking._lock:
                tracking.pending += 1
        if self._sent & 1023:
            self._producer.poll(0)
        else:
            self.poll(0)

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
        self._topics.add(full_topic)
        messages: list[dict[str, Any]] = [{"value": data, "key": _key_bytes(key)} for data, key in records]
        errors: list[DeliveryError | None] = [None] * len(messages)
        todo = list(range(len(messages)))
        while todo:
            batch = [messages[i] for i in todo]
            if tracking is not None:  # counted before the call: a report served meanwhile finds it counted
                with tracking._lock:
                    tracking.pending += len(batch)
            try:
                with self._swap:
                    self._producer.produce_batch(full_topic, batch, on_delivery=on_delivery)
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
                self.poll(0.05)  # serve delivery reports to make room (backpressure, not loss)
        self.poll(0)
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
            self._reports += 1
            return
        if self._purged.take(err, msg, self._on_delivery):
            return
        self._reports += 1
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
            self._watch()
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
        self._watch()

    def flush(self, timeout: float = 30.0) -> None:
        """Wait until every queued record is acknowledged; raise :class:`DeliveryError` on any failure or
        timeout."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = self._producer.flush(max(0.0, min(deadline - time.monotonic(), 0.5)))
            self._watch()
            remaining += sum(len(old) for old in self._abandoned) + len(self._purged)
            if not remaining or time.monotonic() >= deadline:
                break
        self._raise_failures()
        if remaining:
            raise DeliveryError(
                f"{remaining} record(s) still not acknowledged after {timeout:g} s "
                f"(is Kafka at {self.settings.kafka.bootstrap} up?)"
            )

    # -- a stuck client ---------------------------------------------------------------------------------------------
    def _new_client(self) -> Producer:
        return Producer(self._conf)

    def _watch(self) -> None:
        """Replace the client once it has held records with no delivery report for ``stuck_after_s`` while the
        cluster could take them. Cheap when the client reports: a counter compared."""
        if self._stuck_after is None:
            return
        if self._abandoned:
            self._serve_abandoned()
        now = time.monotonic()
        client = self._producer
        if self._reports != self._seen_reports or not len(client):
            self._seen_reports, self._quiet_since, self._taking_since = self._reports, now, None
            return
        if now - self._quiet_since < _PROBE_AFTER_S:
            return
        answer, self._probe_answer = self._probe_answer, None
        if answer is not None and answer[0] >= self._quiet_since:  # asked during this quiet spell
            if not answer[1]:
                self._taking_since = None  # a broker still away: librdkafka's own retries are the remedy
            elif self._taking_since is None:
                self._taking_since = answer[0]
            elif now - self._taking_since >= self._stuck_after:
                self._replace(now, client)
                return
        probing = self._probe_thread is not None and self._probe_thread.is_alive()
        if not probing and now - self._probed >= _PROBE_AFTER_S:
            # In a thread of its own: the metadata round trip (up to seconds on a loaded cluster) never holds up
            # the caller, a stage's finisher or batch thread.
            self._probed = now
            self._probe_thread = threading.Thread(
                target=self._probe, args=(now, sorted(self._topics)), name="producer-probe", daemon=True
            )
            self._probe_thread.start()

    def _probe(self, asked: float, topics: list[str]) -> None:
        self._probe_answer = (asked, cluster_takes(self.settings, topics))

    def _replace(self, now: float, stuck: Producer) -> None:
        quiet = now - self._quiet_since
        with self._swap:
            old = self._producer
            if old is not stuck or self._reports != self._seen_reports:
                return  # another thread replaced it meanwhile, or it reported: nothing to do
            held = len(old)
            self._purged.active = True
            with contextlib.suppress(KafkaException, RuntimeError):
                old.purge(in_queue=True, in_flight=True)
            end = time.monotonic() + 5.0
            while len(old) and time.monotonic() < end:  # serve the purge's reports: each record comes back
                old.poll(0.05)
            self._abandoned.append(old)
            self._producer = self._new_client()
            in_flight_before = self._purged.in_flight
            resent = self._purged.resend(self._producer)
        self.replaced += 1
        self.resent += resent
        self._seen_reports, self._quiet_since, self._taking_since = self._reports, time.monotonic(), None
        log.warning(
            "producer: %d record(s) held with no delivery report for %.0f s while the cluster could take them "
            "(every partition of %s has a leader and in-sync replicas): the client is stuck, as librdkafka can be "
            "after a broker restart; %d sent again through a new client, in order per partition (%d of them were "
            "in flight and may reach the topic twice: at least once); %d still to come back from the old client",
            held, quiet, ", ".join(sorted(self._topics)), resent,
            self._purged.in_flight - in_flight_before, len(old),
        )  # fmt: skip
        if self._on_replaced is not None:
            self._on_replaced(resent)

    def _serve_abandoned(self) -> None:
        """Serve what replaced clients still report (their purged records) and send it again."""
        for old in self._abandoned:
            if len(old):
                old.poll(0)
        if len(self._purged):
            with self._swap:
                self.resent += self._purged.resend(self._producer)

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
