"""The trainer's learning cost in memory, without Kafka: ``ModelLifecycle.learn_one`` per example and
``learn_batch`` per batch of 500, next to bare River ``learn_one`` on the same examples.

Every label gets the whole guard's evidence in both lifecycle paths (served snapshot, champion, challenger,
probation shadow, drift monitors, prequential metrics); the examples carry the served model's answers, as the join
puts them in a TrainingExample, so the served prediction is not repeated (``answered=False`` makes the lifecycle
predict it too). The machine is shared and noisy, so the three loops run interleaved ``rounds`` times and each
keeps its best (the least disturbed) CPU time of this process: their ratios come from the same minutes.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any

from bench.data import Row
from driftline.config import DriftConfig, GuardConfig, LearnerSpec
from learners.lifecycle import Labelled, ModelLifecycle
from learners.specs import build_learner

BATCH = 500  # the train worker's batch size


def _lifecycle(spec: LearnerSpec) -> ModelLifecycle:
    # As streams.train.new_lifecycle builds it: feature drift is the scorers' job, not the trainer's.
    lc = ModelLifecycle(
        "bench",
        "classification",
        spec,
        None,
        dataclasses.replace(DriftConfig(), feature_drift=False),
        GuardConfig(),
    )
    lc.initial_release()
    return lc


def labelled_examples(spec: LearnerSpec, rows: list[Row], answered: bool = True) -> list[Labelled]:
    """``rows`` as the trainer receives them: with the answer of the version served when each was scored."""
    lc = _lifecycle(spec)
    out = []
    for i, (_, x, y) in enumerate(rows):
        answer: tuple[Any, Any, Any] = (None, None, None)
        if answered:
            pred, proba = lc.served_model.predict_with_proba(x)
            answer = (pred, {str(k): v for k, v in proba.items()} or None, lc.served_version)
        pred, proba, version = answer
        out.append(
            Labelled(x, y, served_prediction=pred, served_version=version, served_proba=proba, index=i)
        )
        lc.learn_one(x, y, index=i)
    return out


def _bare(spec: LearnerSpec, examples: list[Labelled]) -> float:
    model = build_learner(spec).model
    t0 = time.process_time()
    for e in examples:
        model.learn_one(e.x, e.y)
    return time.process_time() - t0


def _one(spec: LearnerSpec, examples: list[Labelled]) -> float:
    lc = _lifecycle(spec)
    t0 = time.process_time()
    for e in examples:
        lc.learn_one(
            e.x,
            e.y,
            served_prediction=e.served_prediction,
            served_version=e.served_version,
            served_proba=e.served_proba,
            index=e.index,
        )
    return time.process_time() - t0


def _batch(spec: LearnerSpec, examples: list[Labelled]) -> float:
    lc = _lifecycle(spec)
    t0 = time.process_time()
    for k in range(0, len(examples), BATCH):
        lc.learn_batch(examples[k : k + BATCH])
    return time.process_time() - t0


def learning_cost(
    spec: LearnerSpec, rows: list[Row], rounds: int = 3, answered: bool = True
) -> dict[str, float]:
    """Examples per second of bare River ``learn_one``, the lifecycle per example and per batch, and the ratios."""
    examples = labelled_examples(spec, rows, answered)
    best = {"bare": math.inf, "one": math.inf, "batch": math.inf}
    for _ in range(rounds):
        for name, loop in (("bare", _bare), ("one", _one), ("batch", _batch)):
            best[name] = min(best[name], loop(spec, examples))
    n = len(examples)
    return {
        "lifecycle_river_learn_eps": n / best["bare"],
        "lifecycle_learn_one_eps": n / best["one"],
        "lifecycle_learn_batch_eps": n / best["batch"],
        "lifecycle_one_vs_river_learn": best["bare"] / best["one"],
        "lifecycle_batch_vs_river_learn": best["bare"] / best["batch"],
    }
