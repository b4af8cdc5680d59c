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
