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


def lever_costs(spec: LearnerSpec, rows: list[Row], rounds: int = 3) -> dict[str, dict[str, float]]:
    """``learn_batch`` in one process with every shortcut of :class:`learners.batch.BatchContext` for learning
    models on, with all of them off, and with each one off, interleaved ``rounds`` times (best CPU time each):
    what each lever is worth on the same examples in the same minutes. The decisions are the same in every
    configuration (tests/test_learners_learn_batch.py); only the time differs."""
    import learners.batch as batch_module
    import learners.live_models as live_module
    from learners.features import clean_features

    examples = labelled_examples(spec, rows)
    names = {
        "lr_predict": "_fast_binary_lr",
        "lr_learn": "_fast_binary_lr_learn",
        "tree_naive_bayes": "learning_tree_predictor",
    }
    originals = {k: getattr(live_module, v) for k, v in names.items()}
    cleaned = batch_module.BatchContext.cleaned

    def per_row(self: Any, pos: int) -> dict[str, float]:
        return clean_features(self.xs[pos])

    def configure(off: set[str]) -> None:
        for k, v in names.items():
            setattr(live_module, v, (lambda _learner: None) if k in off else originals[k])
        batch_module.BatchContext.cleaned = per_row if "batch_cleaning" in off else cleaned  # type: ignore[method-assign]

    levers = [*names, "batch_cleaning"]
    configs = {"all_on": set(), "all_off": set(levers), **{f"without_{k}": {k} for k in levers}}
    best = {"bare": math.inf, **{k: math.inf for k in configs}}
    try:
        for _ in range(rounds):
            best["bare"] = min(best["bare"], _bare(spec, examples))
            for name, off in configs.items():
                configure(off)
                best[name] = min(best[name], _batch(spec, examples))
    finally:
        configure(set())
    n = len(examples)
    return {k: {"eps": n / s, "vs_bare": best["bare"] / s} for k, s in best.items()}


if (
    __name__ == "__main__"
):  # python -m bench.learning KIND [EVENTS] [ROUNDS]: the lever table of BENCHMARKS.md
    import json
    import sys

    from bench.data import make_rows

    kind = sys.argv[1] if len(sys.argv) > 1 else "logistic_regression"
    events = int(sys.argv[2]) if len(sys.argv) > 2 else 10_000
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 5
    print(json.dumps({kind: lever_costs(LearnerSpec(kind), make_rows(events, seed=1), rounds)}, indent=1))
