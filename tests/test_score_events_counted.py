"""``driftline_events_total{stage="score", outcome="ok"}`` counts events once their batch's finish pass succeeded
(``Scorer.finish``: Predictions acknowledged, join contexts stored, the joined labels' TrainingExamples acknowledged
and marked joined), not when they were queued: a batch whose pass fails is scored again, and was counted twice
(fixes33, item 3; fixes34, item 6). Dead letters count once, when dead-lettered."""

from __future__ import annotations

from typing import Any

import pytest
import redis

from driftline.settings import load_settings
from streams.metrics import build_metrics
from streams.runtime import WorkerContext
from streams.score import Scorer
from tests.test_fuzz_stages import FakeProducer
from tests.test_score_models import CODEC, Follower, _event


class Store:
    def __init__(self) -> None:
        self.stored: list[Any] = []
        self.joined: list[str] = []
        self.parked: dict[str, bytes] = {}  # labels waiting for their prediction, handed back once

    def put_predictions(self, contexts: list[Any], scored_at: int, tokens: list[str]) -> list[Any]:
        self.stored += contexts
        return [(id_, self.parked.pop(id_)) for id_, _ in contexts if id_ in self.parked]

    def mark_joined(self, ids: list[str]) -> None:
        self.joined += ids


def _count(scorer: Scorer, outcome: str) -> float:
    value = scorer.ctx.metrics.registry.get_sample_value(
        "driftline_events_total", {"stage": "score", "outcome": outcome}
    )
    return value or 0.0


def test_scored_events_count_once_acknowledged_and_a_dead_letter_once() -> None:
    settings = load_settings(environ={}, overrides={"kafka.topic_prefix": "m."})
    follower = Follower()
    follower.release("default", 1)
    ctx = WorkerContext(settings, CODEC, build_metrics(), FakeProducer())  # type: ignore[arg-type]
    store = Store()
    scorer = Scorer(ctx, follower, store=store)  # type: ignore[arg-type]
    batch = [_event(i, {"x": 1.0}) for i in range(3)] + [_event(3, {"x": 1.0}, model="../bad")]
    scored = scorer.process(batch)
    assert len(scored.contexts) == 3
    assert _count(scorer, "ok") == 0  # queued, not acknowledged: a crash now scores them again
    assert _count(scorer, "deadletter") == 1
    scorer.publish_contexts(scored)  # what the finish pass calls once the Predictions are acknowledged
    assert _count(scorer, "ok") == 0  # the pass is not over: its joins may still fail
    scorer.finish(([], len(scored.contexts)))
    assert _count(scorer, "ok") == 3 and len(store.stored) == 3


class DownStore(Store):
    """A Redis that does not answer the first ``failures`` writes of join contexts."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    def put_predictions(self, contexts: list[Any], scored_at: int, tokens: Any = None) -> list[Any]:
        if self.failures:
            self.failures -= 1
            raise redis.ConnectionError("Redis down")
        return super().put_predictions(contexts, scored_at, tokens)


def test_a_batch_whose_contexts_redis_refused_counts_once_when_redone() -> None:
    # The finish step fails (Redis down) after the Predictions were acknowledged: the batch is scored again and its
    # events must count once, when their contexts are stored (they counted before the write, then again).
    settings = load_settings(environ={}, overrides={"kafka.topic_prefix": "m."})
    follower = Follower()
    follower.release("default", 1)
    ctx = WorkerContext(settings, CODEC, build_metrics(), FakeProducer())  # type: ignore[arg-type]
    store = DownStore(failures=1)
    scorer = Scorer(ctx, follower, store=store)  # type: ignore[arg-type]
    batch = [_event(i, {"x": 1.0}) for i in range(3)]
    from streams.app import score_handler  # the worker's own wiring of the score stage

    handle = score_handler(ctx, store, scorer)  # type: ignore[arg-type]
    with pytest.raises(redis.ConnectionError):
        handle(batch)()  # scored, then the finish pass
    assert _count(scorer, "ok") == 0
    handle(batch)()  # the batch thread redoes the failed batch
    assert _count(scorer, "ok") == 3 and len(store.stored) == 3


class MarkDownStore(Store):
    """A Redis that takes the join contexts but does not answer the first ``failures`` ``mark_joined``."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    def mark_joined(self, ids: list[str]) -> None:
        if self.failures:
            self.failures -= 1
            raise redis.ConnectionError("Redis down")
        super().mark_joined(ids)


class LostProducer(FakeProducer):
    """A broker that does not acknowledge the ``fail_at``-th wait of a finish pass (the TrainingExamples')."""

    def __init__(self, fail_at: int) -> None:
        super().__init__()
        self.waits = 0
        self.fail_at = fail_at

    def wait(self, deliveries: Any, timeout: float = 0, *, linger: bool = False) -> None:
        self.waits += 1
        if self.waits == self.fail_at:
            raise RuntimeError("1 TrainingExample not acknowledged")


@pytest.mark.parametrize("fails", ["mark_joined", "training_delivery"])
def test_a_batch_whose_joins_failed_after_its_contexts_were_stored_counts_once_when_redone(
    fails: str,
) -> None:
    # The contexts were stored and counted, then the TrainingExample of a parked label was not acknowledged, or
    # Redis refused mark_joined: the pass failed, the batch was scored again, and its events counted twice.
    settings = load_settings(environ={}, overrides={"kafka.topic_prefix": "m."})
    follower = Follower()
    follower.release("default", 1)
    # The pass's waits: 1 the Predictions, 2 the TrainingExamples of the labels joined.
    producer = LostProducer(fail_at=2 if fails == "training_delivery" else 0)
    ctx = WorkerContext(settings, CODEC, build_metrics(), producer)  # type: ignore[arg-type]
    store = MarkDownStore(failures=1 if fails == "mark_joined" else 0)
    store.parked["e1"] = CODEC.encode("Label", {"id": "e1", "ts": 5, "label": True})
    scorer = Scorer(ctx, follower, store=store)  # type: ignore[arg-type]
    from streams.app import score_handler  # the worker's own wiring of the score stage

    handle = score_handler(ctx, store, scorer)  # type: ignore[arg-type]
    batch = [_event(i, {"x": 1.0}) for i in range(3)]
    with pytest.raises((redis.ConnectionError, RuntimeError)):
        handle(batch)()
    assert len(store.stored) == 3 and producer.on("training"), "the pass did not get as far as the joins"
    assert _count(scorer, "ok") == 0
    store.parked["e1"] = CODEC.encode(
        "Label", {"id": "e1", "ts": 5, "label": True}
    )  # handed back to the redo
    handle(batch)()  # the batch thread redoes the failed batch
    assert _count(scorer, "ok") == 3
    assert store.joined == ["e1"]
