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
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from connectors.producer import EventProducer
from schemas.codec import TOPIC_RECORDS, Codec, default_codec
from streams.metrics import Metrics, build_metrics
from streams.settings import Settings

log = logging.getLogger(__name__)


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class RawRecord:
    """One input message as Faust handed it over (bytes untouched, so it can be dead-lettered as it came)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    timestamp_ms: int = 0


@dataclass
class WorkerContext:
    settings: Settings
    codec: Codec = field(default_factory=default_codec)
    metrics: Metrics = field(default_factory=build_metrics)
    producer: EventProducer | None = None

    def __post_init__(self) -> None:
        if self.producer is None:
            self.producer = EventProducer(self.settings, self.codec)

    @property
    def model(self) -> str:
        return self.settings.model.name

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

    def deadletter(self, stage: str, raw: RawRecord, error: BaseException | str) -> None:
        """Send one input record to ``deadletter`` with the reason; the stream goes on."""
        reason = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
        log.warning("%s: dead-lettering %s[%d]@%d: %s", stage, raw.topic, raw.partition, raw.offset, reason)
        value = {
            "source_topic": raw.topic,
            "partition": raw.partition,
            "offset": raw.offset,
            "key": raw.key,
            "value": raw.value,
            "error": reason[:2000],
            "ts": now_ms(),
        }
        try:
            self.emit("deadletter", value, raw.key)
        except Exception as exc:  # a record too large even for the dead-letter topic: keep a truncated copy
            value["value"] = raw.value[:65536]
            value["error"] = f"{reason[:1800]} (value truncated to 64 KiB for the dead-letter topic: {exc})"
            self.emit("deadletter", value, raw.key)
        self.metrics.deadletters.labels(stage=stage, source_topic=raw.topic).inc()
        self.metrics.events.labels(stage=stage, outcome="deadletter").inc()

    async def flush(self, timeout: float = 60.0) -> None:
        """Wait for every queued output to be acknowledged, off the event loop; raises on any loss."""
        await asyncio.get_running_loop().run_in_executor(None, self.out.flush, timeout)

    def audit(self, kind: str, record: dict[str, Any]) -> None:
        """Append an audit record (guard decisions, control commands) to ``<state_dir>/audit/<model>.jsonl``."""
        path = self.state_dir / "audit" / f"{self.settings.kafka.topic_prefix}{self.model}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps({"kind": kind, "ts": now_ms(), "model": self.model, **record}, default=str)
        with path.open("a") as fh:
            fh.write(line + "\n")
        log.info("audit %s: %s", kind, line)


def raw_records(events: Sequence[Any]) -> list[RawRecord]:
    """Faust events -> :class:`RawRecord` (topic, partition, offset, key, value)."""
    out = []
    for event in events:
        m = event.message
        out.append(
            RawRecord(m.topic, m.partition, m.offset, m.key, m.value or b"", int((m.timestamp or 0) * 1000))
        )
    return out
