"""What every worker role shares: settings, codec, metrics, the output producer and dead-lettering.

Outputs go through one confluent-kafka producer (librdkafka batches and compresses in its own thread); a stage
confirms its batch's deliveries with :meth:`WorkerContext.flush` *before* Faust acknowledges the input events, so
an input offset is never committed ahead of the outputs it caused (at-least-once).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from connectors.batch_source import RawRecord
from connectors.producer import CLIENT_MESSAGE_MAX_BYTES, EventProducer
from connectors.topics import max_message_bytes
from driftline.settings import Settings
from driftline.util import now_ms
from learners.fairness import FairnessMonitor
from schemas.codec import TOPIC_RECORDS, Codec, default_codec
from streams.audit import AuditKind, AuditLog, read_topic, topic_publisher
from streams.fairness_metrics import ServedFairness
from streams.metrics import Metrics, build_metrics

log = logging.getLogger(__name__)

#: What a dead letter keeps of an input record's key and value when the whole record would not fit one Kafka message.
DEADLETTER_CUT = 65536
#: Room for the dead letter's other fields and the Kafka record's own overhead.
DEADLETTER_SLACK = 4096


#: How long the dead-letter topic's ``max.message.bytes`` is kept before it is read again (an operator may change it).
DEADLETTER_LIMIT_TTL_S = 60.0
# {(bootstrap, topic): (the largest dead letter it takes, time.monotonic() when read)}, shared by every context.
_deadletter_limits: dict[tuple[str, str], tuple[int, float]] = {}


def deadletter_limit(settings: Settings) -> int:
    """The largest dead letter (key, value and record overhead) the ``deadletter`` topic takes: its
    ``max.message.bytes`` (read once a minute at most), and never above what the output producer sends.

    Why: a ``deadletter`` topic created by an operator with a lower ``max.message.bytes`` refused the dead letter
    at delivery, and the batch was retried every 10 s for good (hostile40, finding 6). When the topic's setting
    cannot be read, the producer's own limit applies (as before)."""
    where = (settings.kafka.bootstrap, settings.topic("deadletter"))
    now = time.monotonic()
    cached = _deadletter_limits.get(where)
    if cached is None or now - cached[1] > DEADLETTER_LIMIT_TTL_S:
        topic_limit = max_message_bytes(settings, "deadletter")
        limit = (
            CLIENT_MESSAGE_MAX_BYTES if topic_limit is None else min(topic_limit, CLIENT_MESSAGE_MAX_BYTES)
        )
        cached = _deadletter_limits[where] = (limit, now)
    return cached[0]


def _cut(key: bytes | None, cut: int = DEADLETTER_CUT) -> bytes | None:
    return None if key is None else key[:cut]


def _cut_note(raw: RawRecord, cut: int = DEADLETTER_CUT) -> str:
    size = "64 KiB" if cut == DEADLETTER_CUT else f"{cut} bytes"
    return f"key of {len(raw.key or b'')} bytes and value of {len(raw.value)} bytes each cut to {size}"


@dataclass
class WorkerContext:
    settings: Settings
    codec: Codec = field(default_factory=default_codec)
    metrics: Metrics = field(default_factory=build_metrics)
    producer: EventProducer | None = None
    # The trainer group's contexts: audit file copies written when their transaction commits, and the audit
    # topic read once per restore (``audit_source``) instead of once per model.
    audit_deferred: bool = False
    audit_source: Callable[[], Mapping[str, list[Any]]] | None = None
    _audit_logs: dict[str, AuditLog] = field(default_factory=dict, repr=False)
    _fairness: ServedFairness | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        limit = self.settings.serving.max_record_bytes
        if self.codec.max_record_bytes != limit:  # serving.max_record_bytes bounds every input record
            self.codec = Codec(
                self.codec.schema_dir, max_record_bytes=limit, max_json_depth=self.codec.max_json_depth
            )
        if self.producer is None:
            restarts = self.metrics.producer_restarts
            self.producer = EventProducer(
                self.settings, self.codec, on_replaced=lambda _resent: restarts.inc()
            )

    @property
    def model(self) -> str:
        return self.settings.model.name

    def for_model(self, name: str) -> WorkerContext:
        """This context for model ``name``: the same producer, codec and metrics; that model's settings view
        (lineage, status keys, audit chain)."""
        return WorkerContext(
            self.settings.for_model(name),
            self.codec,
            self.metrics,
            self.producer,
            audit_deferred=self.audit_deferred,
            audit_source=self.audit_source,
        )

    def commit_audit(self) -> None:
        for alog in self._audit_logs.values():
            alog.commit()

    def discard_audit(self) -> None:
        for alog in self._audit_logs.values():
            alog.discard()

    @property
    def out(self) -> EventProducer:
        assert self.producer is not None
        return self.producer

    @property
    def state_dir(self) -> Path:
        return Path(self.settings.state_dir).expanduser()

    def encode_output(self, topic: str, value: dict[str, Any]) -> bytes:
        """Encode for an output topic; ``predictions`` and ``drift`` follow ``serving.output_encoding``."""
        record = TOPIC_RECORDS[topic]
        if topic in ("predictions", "drift") and self.settings.serving.output_encoding == "json":
            return self.codec.encode_json(record, value, topic=topic)
        return self.codec.encode(record, value, topic=topic)

    def emit(self, topic: str, value: dict[str, Any], key: str | bytes | None) -> None:
        self.out.produce_bytes(self.settings.topic(topic), self.encode_output(topic, value), key)

    def emit_drift(self, signal: Any, version: int, model: str | None = None) -> None:
        """Publish a DriftEvent of ``model`` (default: this context's) for a :class:`learners.drift.DriftSignal`
        and count the alarm."""
        model = model or self.model
        value = {
            "model": model,
            "version": version,
            "detector": signal.detector,
            "signal": signal.signal,
            "ts": now_ms(),
            "details": {str(k): str(v) for k, v in signal.details.items()},
            "index": int(signal.index),
        }
        self.emit("drift", value, model)
        self.metrics.drift_alarms.labels(model=model, detector=signal.detector, signal=signal.signal).inc()
        log.info("drift alarm for %s: %s on %s (%s)", model, signal.detector, signal.signal, signal.details)

    def deadletter(self, stage: str, raw: RawRecord, error: BaseException | str) -> None:
        """Send one input record to ``deadletter`` with the reason; the stream goes on."""
        reason = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
        log.warning(  # the reason may quote the input: cut as in the record
            "%s: dead-lettering %s[%d]@%d: %s", stage, raw.topic, raw.partition, raw.offset, reason[:2000]
        )
        key, data, error = raw.key, raw.value, reason[:2000]
        # The key travels twice (the record's field and the Kafka key): a record that fit as it came may not fit
        # as a dead letter, and the broker refuses it only at delivery, after which the batch was retried forever.
        limit = deadletter_limit(self.settings)
        room = limit - DEADLETTER_SLACK - len(error)
        cut = DEADLETTER_CUT
        if len(data) + 2 * len(key or b"") > room:
            cut = max(0, min(DEADLETTER_CUT, room // 3))
            key, data = _cut(key, cut), data[:cut]
            below = "" if limit >= CLIENT_MESSAGE_MAX_BYTES else f", whose max.message.bytes is {limit}"
            error = f"{reason[:1800]} ({_cut_note(raw, cut)} for the dead-letter topic{below})"
        value = {
            "source_topic": raw.topic,
            "partition": raw.partition,
            "offset": raw.offset,
            "key": key,
            "value": data,
            "error": error,
            "ts": now_ms(),
            "stage": stage,
        }
        try:
            self.emit("deadletter", value, key)
        except Exception as exc:  # a record too large even for the dead-letter topic: keep a truncated copy
            cut = min(cut, DEADLETTER_CUT)
            key = _cut(key, cut)
            value |= {"key": key, "value": data[:cut]}
            value["error"] = f"{reason[:1800]} ({_cut_note(raw, cut)} for the dead-letter topic: {exc})"
            self.emit("deadletter", value, key)
        self.metrics.deadletters.labels(stage=stage, source_topic=raw.topic).inc()
        self.metrics.events.labels(stage=stage, outcome="deadletter").inc()

    async def flush(self, timeout: float = 60.0) -> None:
        """Wait for every queued output to be acknowledged, off the event loop; raises on any loss."""
        await asyncio.get_running_loop().run_in_executor(None, self.out.flush, timeout)

    def observe_served(self, example: dict[str, Any]) -> None:
        """A TrainingExample as the served model answered it: per-segment fairness rates and gaps (metrics).
        Does nothing unless ``model.segment_feature`` is set."""
        if self._fairness is None:
            if not self.settings.model.segment_feature:
                return
            self._fairness = ServedFairness(self.settings, self.metrics)
        self._fairness.add(example)

    def observes_served(self) -> bool:
        """Whether :meth:`observe_served` does anything (a trainer calls it per label only then)."""
        return self._fairness is not None or bool(self.settings.model.segment_feature)

    def served_fairness(self) -> FairnessMonitor | None:
        """The served-fairness window (for the trainer state: a restarted or moved trainer goes on with it)."""
        return None if self._fairness is None else self._fairness.monitor

    def restore_served_fairness(self, monitor: FairnessMonitor | None) -> None:
        """Go on with a window saved in the trainer state (None: nothing saved; a fresh window starts at the
        first label). Before session 42 a restart or a move to another trainer dropped the last 1,000 labels per
        segment: the gaps vanished until two segments had 30 new ones (docs/experiments/gov42.md, finding 3)."""
        if monitor is None or not self.settings.model.segment_feature:
            return
        self._fairness = ServedFairness(self.settings, self.metrics)
        self._fairness.monitor = monitor
        self._fairness.publish()

    def publish_fairness(self) -> None:
        """Publish the served-fairness gauges now (after a batch; between batches they are published at most once a
        second, so the last examples of a batch would otherwise wait for the next one)."""
        if self._fairness is not None:
            self._fairness.publish()

    def audit(
        self,
        kind: AuditKind,
        record: dict[str, Any],
        *,
        texts: Mapping[str, str] | None = None,
        record_text: str | None = None,
    ) -> None:
        """Append ``record`` to the model's signed audit chain (disk and the ``audit`` topic; see
        :mod:`streams.audit`). Any JSON record is accepted; it is stored under ``record`` in the entry.
        ``texts``, ``record_text``: canonical texts the caller already made (:meth:`streams.audit.AuditLog.append`)."""
        alog = self._audit_logs.get(self.model)
        if alog is None:
            settings, model = self.settings, self.model
            source = self.audit_source or (lambda: read_topic(settings))
            alog = AuditLog(
                settings,
                model,
                topic_publisher(settings, self.out.produce_bytes),
                topic_entries=lambda: source().get(model, []),
                deferred=self.audit_deferred,
            )
            self._audit_logs[model] = alog
        entry = alog.append(kind, record, texts=texts, record_text=record_text)
        if log.isEnabledFor(logging.INFO):  # the JSON is built only for a log that shows it
            log.info("audit %s #%d: %s", kind, entry["seq"], json.dumps(entry["record"], default=str)[:500])
