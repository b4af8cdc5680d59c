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


@pytest.mark.parametrize("batched", [True, False])
def test_labels_whose_learning_raises_are_dead_lettered_not_counted_as_learned(
    monkeypatch: pytest.MonkeyPatch, batched: bool
) -> None:
    """Outside, session 42: a label the learner could not take was dead-lettered **and** counted in
    ``labels_learned`` (read from the served-prediction evaluator's count, updated before learning runs): 401
    learned for 401 labels while 240 dead letters said OverflowError. A learner that raises for ten labels (any
    learner error does the same) leaves them out of the count."""
    from learners import policies
    from schemas.codec import default_codec

    published: dict[str, Any] = {}
    monkeypatch.setattr(
        train, "hset_if_newer", lambda client, key, mapping: published.update(mapping) or True
    )

    class _Redis:
        def hgetall(self, key: str) -> dict[str, str]:
            return {k: str(v) for k, v in published.items()}

    monkeypatch.setattr(trainer_status, "redis_client", lambda *a, **k: _Redis())
    learn = policies.Lineage.learn

    def failing(self: Any, x: Any, y: Any, index: int, *args: Any) -> None:
        if 130 <= index < 140:
            raise ValueError("this learner cannot take it")
        learn(self, x, y, index, *args)

    monkeypatch.setattr(policies.Lineage, "learn", failing)

    trainer, _ = _trainer()
    examples = _examples(0, 200)
    if batched:
        trainer.process(examples)
    else:
        for raw, example in examples:
            trainer.learn(raw, example)
    trainer.publish_status()

    codec = default_codec()
    dead = [codec.decode("DeadLetter", v) for t, v, _ in trainer.ctx.out.sent if t.endswith("deadletter")]
    assert [d["offset"] for d in dead] == list(range(130, 140))
    status = trainer_status.trainer_status(trainer.ctx.settings)
    assert status is not None
    assert status["n_learned"] == 190
    assert status["labels_learned"] == 190, "labels dead-lettered by the learner were counted as learned"
    assert status["unlearned"] == 10
