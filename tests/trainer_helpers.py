"""A train worker's ``Trainer`` without a broker or Redis, for tests of the trainer's own logic: what it would
produce is kept (:class:`CapturedProducer`), no status was written before (:class:`NoStatus`), and its audit
chain is built, signed and dropped (no ``audit`` topic to read or write)."""

from __future__ import annotations

from typing import Any

from driftline.settings import Settings


class CapturedProducer:
    """The producer's place: keeps what is produced, as ``(topic, bytes, key)``."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, Any]] = []

    def produce_bytes(self, topic: str, value: bytes, key: Any = None) -> None:
        self.sent.append((topic, value, key))


class NoStatus:
    """Redis's place: no trainer status written before (a new lineage's first commit count)."""

    def hget(self, key: str, field: str) -> None:
        return None


def offline_trainer(settings: Settings) -> Any:
    """A ``Trainer`` of ``settings``' model, its output in ``trainer.ctx.out.sent`` (not started)."""
    from streams.audit import AuditLog
    from streams.runtime import WorkerContext
    from streams.train import Trainer

    ctx = WorkerContext(settings, producer=CapturedProducer(), audit_deferred=True, audit_source=dict)  # type: ignore[arg-type]
    ctx._audit_logs[ctx.model] = AuditLog(
        settings, ctx.model, lambda data, model: None, topic_entries=list, deferred=True
    )
    return Trainer(ctx, redis_conn=NoStatus())  # type: ignore[arg-type]


def drifting_examples(task: str, n: int, seed: int = 1, start: int = 0) -> list[tuple[Any, dict[str, Any]]]:
    """``n`` (RawRecord, TrainingExample) pairs of mixed features whose concept flips half way (a drift alarm, a
    challenger, probation), for ``task``."""
    import random

    from connectors.batch_source import RawRecord
    from schemas.codec import default_codec

    codec = default_codec()
    rng = random.Random(seed)
    out = []
    for i in range(start, start + n):
        a, b = rng.gauss(0, 1), rng.uniform(-2, 2)
        x: dict[str, Any] = {"a": a, "b": b, "n": i % 7, "flag": i % 3 == 0, "cat": rng.choice("xyz")}
        flip = -1 if i >= start + n // 2 else 1
        y: Any = int(flip * (a + b) > 0) if task == "classification" else flip * (3 * a - b)
        example = {"id": f"e{i}", "model": "default", "key": None, "features": x, "label": y, "prediction": None,
                   "proba": None, "version": 0, "event_ts": i, "label_ts": i}  # fmt: skip
        value = codec.encode("TrainingExample", example)  # a held example is decoded again on resume
        out.append((RawRecord("driftline.training", 0, i, b"default", value, i), example))
    return out


def learned_trainer(spec: Any, task: str, n: int, key: str, state_dir: str) -> Any:
    """An offline trainer of ``spec`` for ``task`` that learned :func:`drifting_examples` (``n``, in batches of 50)
    with a segment feature (the served-fairness window), then paused learning and holds 20 examples: a trainer
    state with most of what one can hold. No broker: the models topic it would read holds nothing."""
    from driftline.settings import load_settings

    overrides: dict[str, Any] = {
        "model.signing_key": key,
        "state_dir": state_dir,
        "model.learner": {"name": spec.name, "params": dict(spec.params)},
        "model.task": task,
        "model.segment_feature": "cat",
        # Nothing may reach a broker or Redis (the defaults belong to another stack).
        "kafka.bootstrap": "127.0.0.1:1",
        "redis.url": "redis://127.0.0.1:1/0",
    }
    trainer = offline_trainer(load_settings(environ={}, overrides=overrides))
    trainer.releases = dict  # the verified releases a rollback looks its parent up in: none offline
    trainer.start(None, 0)
    batch = drifting_examples(task, n)
    for k in range(0, len(batch), 50):
        trainer.process(batch[k : k + 50])
    trainer.apply("pause_learning", {})
    trainer.process(drifting_examples(task, 20, seed=2, start=n))
    return trainer


def label_records(labels: list[Any], start: int = 0) -> list[tuple[Any, dict[str, Any]]]:
    """TrainingExamples of two random features and ``labels``, as the trainer reads them (offsets from ``start``)."""
    import random

    from connectors.batch_source import RawRecord

    rng = random.Random(start)
    out = []
    for k, y in enumerate(labels):
        i = start + k
        x = {"x1": rng.random(), "x2": rng.random()}
        example = {"id": f"e{i}", "model": "default", "features": x, "label": y, "event_ts": 1_000 * i}
        out.append((RawRecord("driftline.training", 0, i, b"default", b"", 1_000 * i), example))
    return out


def dead_letters(trainer: Any) -> list[dict[str, Any]]:
    """The DeadLetters an :func:`offline_trainer` sent, decoded."""
    from schemas.codec import default_codec

    codec = default_codec()
    return [
        codec.decode("DeadLetter", value)
        for topic, value, _ in trainer.ctx.out.sent
        if topic.endswith("deadletter")
    ]
