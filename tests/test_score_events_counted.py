"""``driftline_events_total{stage="score", outcome="ok"}`` counts events once their Predictions are acknowledged
(``Scorer.publish_contexts``), not when they were queued: a batch whose Predictions are never acknowledged is
scored again, and was counted twice (fixes33, item 3). Dead letters count once, when dead-lettered."""

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

    def put_predictions(self, contexts: list[Any], scored_at: int, tokens: list[str]) -> list[Any]:
        self.stored += contexts
        return []


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
    scorer.publish_contexts(scored)  # what the finish step calls once the Predictions are acknowledged
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
    with pytest.raises(redis.ConnectionError):
        scorer.publish_contexts(scorer.process(batch))
    assert _count(scorer, "ok") == 0
    scorer.publish_contexts(scorer.process(batch))  # the batch thread redoes the failed batch
    assert _count(scorer, "ok") == 3 and len(store.stored) == 3
