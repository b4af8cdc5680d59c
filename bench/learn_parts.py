"""The LR label's parts in isolation, before and after the seventh session's levers: CPU time per call, each
case run in turn ``ROUNDS`` times and its best kept (``python -m bench.learn_parts [ROUNDS]``; BENCHMARKS.md).

Session 15 adds a frozen Hoeffding tree's answer per row (a sentinel copy's: ``frozen_tree_predictor`` one row at
a time, before) against ``FrozenTreeRows`` over windows of 256 rows (after), per row, on a tree of 4,000 labels.

"before" is the previous session's code for the same part, kept here only to be timed next to the current one:
the flattened LR learn through River's ``VectorDict`` primitives (``learners.live_models._vector_lr_learn``, still
the path for L2), the LR prediction as ``FeatureScaler.transform_one`` then ``VectorDict.dot``, an evaluator
updated per example, and a classification pair whose three e-processes each compute their own bet.
"""

from __future__ import annotations

import math
import random
import sys
import time
from collections.abc import Callable
from typing import Any

import learners.live_models as lm
from bench.data import make_rows
from driftline.config import LearnerSpec
from learners.evaluation import Evaluator
from learners.features import clean_features
from learners.frozen_tree import FrozenTreeRows, frozen_tree_predictor
from learners.guard import PairedEvidence
from learners.specs import Learner, build_learner

ROWS = make_rows(2000, seed=1)
XS = [(dict(x), y) for _, x, y in ROWS]
_rng = random.Random(0)
N = 20_000
YS = [_rng.random() < 0.5 for _ in range(N)]
PREDS = [y if _rng.random() < 0.9 else not y for y in YS]
BASES = [y if _rng.random() < 0.9 else not y for y in YS]


def _model() -> Learner:
    m = build_learner(LearnerSpec("logistic_regression"))
    m.learn_one(ROWS[0][1], True)
    m.learn_one(ROWS[1][1], False)
    return m


def _transform_then_dot(learner: Learner) -> Callable[[dict[str, float]], Any]:
    shape = lm._binary_scaled_lr(learner)
    assert shape is not None
    (c0, c1), _, scaler, lr = shape
    transform = scaler.transform_one

    def predict(xc: dict[str, float]) -> Any:
        p = lr.loss.mean_func(lr._weights.dot(transform(xc)) + lr.intercept)
        return c1 if p > 1.0 - p else c0

    return predict


def _separate_bets(ev: PairedEvidence, y: Any, cand: Any, base: Any) -> None:
    ev.n += 1
    ev.label_counts[y] = ev.label_counts.get(y, 0) + 1
    ev.pred_counts[cand] = ev.pred_counts.get(cand, 0) + 1
    cand_ok, base_ok = bool(cand == y), bool(base == y)
    ev.disagree += cand != base and base is not None
    ev.cand_right += cand_ok
    ev.base_right += base_ok
    ev.cand_only += cand_ok and not base_ok
    ev.base_only += base_ok and not cand_ok
    d = (0.0 if cand_ok else 1.0) - (0.0 if base_ok else 1.0)
    ev.not_worse.add(d)
    ev.better.add(d)
    ev.much_better.add(d)
    ev.sum_d += d
    ev.sum_d2 += d * d
    ev.sum_base += 0.0 if base_ok else 1.0


def _learn(factory: Callable[[Learner], Any]) -> float:
    fn = factory(_model())
    t0 = time.process_time()
    for x, y in XS:
        fn(x, y)
    return (time.process_time() - t0) / len(XS)


def _predict(factory: Callable[[Learner], Any]) -> float:
    m = _model()
    for x, y in XS[:500]:
        m.learn_one(x, y)
    fn = factory(m)
    t0 = time.process_time()
    for x, _ in XS:
        fn(x)
    return (time.process_time() - t0) / len(XS)


def _evaluate(deferred: bool) -> float:
    ev = Evaluator("classification")
    proba = {True: 0.7, False: 0.3}
    t0 = time.process_time()
    if deferred:
        for y, p in zip(YS, PREDS, strict=True):
            ev.defer(y, p, proba)
        ev.flush()
    else:
        for y, p in zip(YS, PREDS, strict=True):
            ev.update(y, p, proba)
    return (time.process_time() - t0) / N


def _pair(shared: bool) -> float:
    ev = PairedEvidence("classification")
    add = ev._add_classification if shared else (lambda y, c, b: _separate_bets(ev, y, c, b))
    t0 = time.process_time()
    for y, p, b in zip(YS, PREDS, BASES, strict=True):
        add(y, p, b)
    return (time.process_time() - t0) / N


def _frozen_tree(rows_ahead: bool) -> float:
    import numpy as np

    data = make_rows(6000, seed=3)
    tree = build_learner(LearnerSpec("hoeffding_tree"))
    for _, x, y in data[:4000]:
        tree.learn_one(x, y)
    xcs = [clean_features(x) for _, x, _ in data[4000:]]
    names = tuple(xcs[0])
    values = np.array([list(x.values()) for x in xcs])
    if rows_ahead:
        rows = FrozenTreeRows(tree)
        t0 = time.process_time()
        for k in range(0, len(xcs), 256):
            rows.predict(xcs[k : k + 256], names, values[k : k + 256])
    else:
        predict = frozen_tree_predictor(tree)
        assert predict is not None
        t0 = time.process_time()
        for xc in xcs:
            predict(xc)
    return (time.process_time() - t0) / len(xcs)


CASES: dict[str, Callable[[], float]] = {
    "bare River pipeline learn_one": lambda: _learn(lambda m: lambda x, y, mm=m.model: mm.learn_one(x, y)),
    "LR learn: Learner.learn_one": lambda: _learn(lambda m: lambda x, y: m.learn_one(x, y, cleaned=True)),
    "LR learn: flattened, VectorDict (before)": lambda: _learn(
        lambda m: lm._vector_lr_learn(m, *lm._binary_scaled_lr(m))  # type: ignore[misc]
    ),
    "LR learn: fused loop (after)": lambda: _learn(lm._fast_binary_lr_learn),
    "LR predict: Learner.predict_one": lambda: _predict(lambda m: lambda x: m.predict_one(x, cleaned=True)),
    "LR predict: transform then dot (before)": lambda: _predict(_transform_then_dot),
    "LR predict: fused loop (after)": lambda: _predict(lm._fast_binary_lr),
    "evaluator: update per example (before)": lambda: _evaluate(False),
    "evaluator: defer, flush (after)": lambda: _evaluate(True),
    "classification pair: separate bets (before)": lambda: _pair(False),
    "classification pair: shared bet (after)": lambda: _pair(True),
    "frozen tree predict: per row (before)": lambda: _frozen_tree(False),
    "frozen tree predict: rows ahead, 256 a pass (after)": lambda: _frozen_tree(True),
}


def main(rounds: int) -> dict[str, float]:
    best = {k: math.inf for k in CASES}
    for _ in range(rounds):
        for name, case in CASES.items():
            best[name] = min(best[name], case())
    return {k: v * 1e6 for k, v in best.items()}


if __name__ == "__main__":
    for name, us in main(int(sys.argv[1]) if len(sys.argv) > 1 else 9).items():
        print(f"| {name} | {us:.2f} |")
