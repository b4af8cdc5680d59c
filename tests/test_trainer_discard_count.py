"""``pause --discard``: the labels dropped are not counted as learned in ``labels_learned`` (``models show``), which
README defines as every label learned, each once (no broker: the trainer's status goes to a stand-in for Redis)."""

from __future__ import annotations

import random
from typing import Any

import pytest

from connectors.batch_source import RawRecord
from streams import train, trainer_status
from tests.test_trainer_process_batch import TOPIC, _trainer


def _examples(start: int, n: int) -> list[tuple[RawRecord, dict[str, Any]]]:
    rng = random.Random(start)
    out = []
    for i in range(start, start + n):
        x = {f"f{k}": rng.gauss(0.0, 1.0) for k in range(3)}
        example = {"id": f"e{i}", "model": "default", "features": x, "label": x["f0"] > 0, "event_ts": i}
        out.append((RawRecord(TOPIC, 0, i, b"default", b"", i), example))
    return out


def test_labels_dropped_by_pause_discard_are_not_counted_as_learned(monkeypatch: pytest.MonkeyPatch) -> None:
    published: dict[str, Any] = {}
    monkeypatch.setattr(
        train, "hset_if_newer", lambda client, key, mapping: published.update(mapping) or True
    )

    class _Redis:
        def hgetall(self, key: str) -> dict[str, str]:
            return {k: str(v) for k, v in published.items()}

    monkeypatch.setattr(trainer_status, "redis_client", lambda *a, **k: _Redis())

    trainer, _ = _trainer()
    trainer.process(_examples(0, 120))
    trainer.apply("pause_learning", {"discard": "true"})
    trainer.process(_examples(120, 50))  # scored and monitored, never learned
    trainer.apply("resume_learning", {})
    trainer.process(_examples(170, 30))
    trainer.publish_status()

    status = trainer_status.trainer_status(trainer.ctx.settings)
    assert status is not None
    assert status["n_learned"] == 150
    assert status["labels_learned"] == 150, "labels dropped by pause --discard were counted as learned"
