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
    from learners.evaluation import Evaluator
    from learners.features import clean_features
    from learners.guard import PairedEvidence

    examples = labelled_examples(spec, rows)
    names = {
        "lr_predict": "_fast_binary_lr",
        "lr_learn": "_fast_binary_lr_learn",
        "tree_naive_bayes": "learning_tree_predictor",
    }
    originals = {k: getattr(live_module, v) for k, v in names.items()}
    cleaned = batch_module.BatchContext.cleaned
    fused = live_module._fused_lr_learn
    defer = Evaluator.defer
    pair = PairedEvidence._add_classification

    def per_row(self: Any, pos: int) -> dict[str, float]:
        return clean_features(self.xs[pos])

    def separate_bets(self: Any, y: Any, cand: Any, base: Any) -> float:
        # The pair with each e-process betting on its own (the previous session's code), for the lever's cost.
        self.n += 1
        self.label_counts[y] = self.label_counts.get(y, 0) + 1
        self.pred_counts[cand] = self.pred_counts.get(cand, 0) + 1
        cand_ok, base_ok = bool(cand == y), bool(base == y)
        self.disagree += cand != base and base is not None
        self.cand_right += cand_ok
        self.base_right += base_ok
        self.cand_only += cand_ok and not base_ok
        self.base_only += base_ok and not cand_ok
        d = (0.0 if cand_ok else 1.0) - (0.0 if base_ok else 1.0)
        self.not_worse.add(d)
        self.better.add(d)
        self.much_better.add(d)
        self.sum_d += d
        self.sum_d2 += d * d
        self.sum_base += 0.0 if base_ok else 1.0
        return d

    def configure(off: set[str]) -> None:
        for k, v in names.items():
            setattr(live_module, v, (lambda _learner: None) if k in off else originals[k])
        batch_module.BatchContext.cleaned = per_row if "batch_cleaning" in off else cleaned  # type: ignore[method-assign]
        # Off: River's VectorDict primitives for the weights (the previous session's flattened learn).
        live_module._fused_lr_learn = live_module._vector_lr_learn if "lr_fused_loop" in off else fused
        Evaluator.defer = Evaluator.update if "evaluator_defer" in off else defer  # type: ignore[method-assign]
        PairedEvidence._add_classification = separate_bets if "shared_bet" in off else pair  # type: ignore[method-assign]

    levers = [*names, "batch_cleaning", "lr_fused_loop", "evaluator_defer", "shared_bet"]
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


if __name__ == "__main__":  # the lever table of BENCHMARKS.md
    import argparse
    import json

    from bench.data import make_rows

    ap = argparse.ArgumentParser(
        prog="python -m bench.learning",
        description="The trainer's learning cost in memory (no Kafka): ModelLifecycle.learn_one, learn_batch and "
        "bare River learn_one on the same examples, interleaved; prints a JSON record.",
    )
    ap.add_argument(
        "kind", nargs="?", default="logistic_regression", help="learner (default logistic_regression)"
    )
    ap.add_argument("events", nargs="?", type=int, default=10_000, help="examples (default 10000)")
    ap.add_argument(
        "rounds", nargs="?", type=int, default=5, help="interleaved rounds, best kept (default 5)"
    )
    a = ap.parse_args()
    print(
        json.dumps(
            {a.kind: lever_costs(LearnerSpec(a.kind), make_rows(a.events, seed=1), a.rounds)}, indent=1
        )
    )
