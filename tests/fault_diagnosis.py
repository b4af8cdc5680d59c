"""What a failed fault run needs for its diagnosis, gathered before pytest rotates its temp dirs and the run's
topics are deleted: transactions still open on the trainer's output topics, the ``models`` topic as a
read_uncommitted and a read_committed reader see it, the trainer's status and every worker's log.

The trainer writes ``models``, ``deadletter``, ``drift``, ``changelog`` (and ``audit``) in Kafka transactions. A
trainer killed with a transaction open leaves it open until the broker aborts it (``transaction.timeout.ms``, 20 s,
streams/trainer_transactions.py), and until then read_committed readers stop at its first record: the last stable
offset (LSO) of the partition stays below its high watermark (README, *Exactly-once learning*).
"""

from __future__ import annotations

import pickle
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, IsolationLevel, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

from connectors.kafka_client import LIBRDKAFKA_LOG, client_config
from driftline.settings import Settings
from schemas.codec import default_codec
from tests.pipeline_helpers import Pipeline

# The trainer's transactional outputs the oracle reads (``changelog`` is read by ``Pipeline.trainer_state``).
TRANSACTIONAL_OUTPUTS = ("models", "deadletter", "changelog")


def open_transactions(
    settings: Settings, names: Iterable[str] = TRANSACTIONAL_OUTPUTS
) -> dict[str, tuple[int, int]]:
    """``{"topic:partition": (last stable offset, high watermark)}`` of the partitions of the contract topics
    ``names`` whose LSO is below the high watermark: a transaction is open there, and read_committed readers do not
    see its records, nor anything after them, until it ends."""
    admin = AdminClient(client_config(settings, logger=LIBRDKAFKA_LOG))
    topics = [settings.topic(n) for n in names]
    meta = admin.list_topics(timeout=10).topics
    parts = [TopicPartition(t, p) for t in topics if t in meta for p in meta[t].partitions]
    if not parts:
        return {}

    def ends(level: IsolationLevel) -> dict[tuple[str, int], int]:
        futures = admin.list_offsets(
            {tp: OffsetSpec.latest() for tp in parts}, isolation_level=level, request_timeout=10
        )
        return {(tp.topic, tp.partition): int(f.result().offset) for tp, f in futures.items()}

    stable, high = ends(IsolationLevel.READ_COMMITTED), ends(IsolationLevel.READ_UNCOMMITTED)
    return {f"{t}:{p}": (stable[(t, p)], high[(t, p)]) for t, p in high if stable[(t, p)] < high[(t, p)]}


def release_log(settings: Settings, isolation: str = "read_uncommitted") -> list[tuple[int, int, str, int]]:
    """``(offset, version, reason, n_learned)`` of every record on ``models`` partition 0 that a reader with
    ``isolation`` sees (read_uncommitted: aborted and still-open transactions' records included)."""
    topic = settings.topic("models")
    consumer = Consumer(
        client_config(
            settings,
            logger=LIBRDKAFKA_LOG,
            **{
                "group.id": f"t-diagnosis-{isolation}",
                "enable.auto.commit": False,
                "isolation.level": isolation,
            },
        )
    )
    try:
        high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10, cached=False)[1]
        consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        out: list[tuple[int, int, str, int]] = []
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            for msg in consumer.consume(500, 0.3):
                if msg.error() or msg.value() is None:
                    continue
                try:
                    r = default_codec().decode("ModelRelease", msg.value() or b"")
                except Exception:  # a diagnosis reads what is there; the oracle judges it
                    continue
                n = int(r["metrics"].get("n_learned", -1))
                out.append((msg.offset() or 0, int(r["version"]), str(r["reason"]), n))
            if consumer.position([TopicPartition(topic, 0)])[0].offset >= high:
                break
        return out
    finally:
        consumer.close()


def dump_topics(pipeline: Pipeline) -> Path:
    """``training`` (in topic order) and ``models`` (decoded, artifacts included) and the workers' environment,
    pickled into the test's state dir, to replay offline after the run's topics are gone:
    ``pickle.load(open(path, "rb"))`` -> ``{"training": [...], "releases": [...], "env": {...}}``."""
    from tests.fault_helpers import training_in_order

    path = pipeline.state_dir / "diagnosis-topics.pkl"
    data = {"training": training_in_order(pipeline), "releases": pipeline.releases(), "env": pipeline.env()}
    path.write_bytes(pickle.dumps(data))
    return path


def diagnosis(pipeline: Pipeline, log_lines: int = 60) -> str:
    """A failed run's evidence, as text for the failure message (see the module docstring)."""
    settings = pipeline.settings()
    parts = ["==== diagnosis (tests/fault_diagnosis.py)"]
    try:
        parts.append(f"topics kept for an offline replay: {dump_topics(pipeline)}")
    except Exception as exc:  # the diagnosis goes on with what it can read
        parts.append(f"cannot keep the topics: {exc!r}")
    try:
        parts.append(f"open transactions (LSO, high watermark): {open_transactions(settings)}")
        uncommitted = release_log(settings, "read_uncommitted")
        committed = {r[0] for r in release_log(settings, "read_committed")}
        parts.append(
            "models, read_uncommitted (offset, version, reason, n_learned; * = read_committed sees it):"
        )
        parts += [f"  {'*' if r[0] in committed else ' '} {r}" for r in uncommitted]
    except KafkaException as exc:
        parts.append(f"cannot read the topics: {exc}")
    status: dict[str, Any] = pipeline.trainer()
    parts.append(f"trainer status: { {k: v for k, v in status.items() if k not in ('metrics', 'settings')} }")
    logs = sorted((pipeline.state_dir / "logs").glob("*.log"))
    for path in logs:  # killed workers' logs too (kill9 forgets the process, its log file stays)
        lines = path.read_text(errors="replace").splitlines()
        parts.append(f"--- {path.name} ({len(lines)} lines, last {log_lines})")
        parts += lines[-log_lines:]
    return "\n".join(parts)
